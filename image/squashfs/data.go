package squashfs

import (
	"errors"
	"fmt"
	"io"
)

// dataBlock is one block of file data on its way to the image. Blocks are
// compressed concurrently but written in file order, so the output does not
// depend on scheduling.
type dataBlock struct {
	raw  []byte // uncompressed data, a slice of worker.buffer
	comp *compressor
	// Set by compress before done is closed: the zlib stream, or nil when
	// the block is stored uncompressed.
	compressed []byte
	err        error
	done       chan struct{}
}

// blockWorker is the reusable state of one in-flight block.
type blockWorker struct {
	buffer []byte
	comp   *compressor
}

func (b *dataBlock) compress() {
	b.compressed, b.err = b.comp.compress(b.raw)
	close(b.done)
}

// writeFileData streams size bytes from r into data blocks at the end of
// the image and returns where they start and the block list entries.
func (w *Writer) writeFileData(size int64, r io.Reader) (start int64, blockSizes []uint32, err error) {
	start = w.offset
	blockCount := (size + int64(w.blockSize) - 1) / int64(w.blockSize)
	blockSizes = make([]uint32, 0, min(blockCount, 1<<16))

	var queue []*dataBlock
	// Every started block must finish before its buffers go back to the
	// pool, also when reading or writing failed.
	defer func() {
		for _, b := range queue {
			<-b.done
			w.releaseBlock(b)
		}
	}()

	for remaining := size; remaining > 0; {
		n := min(int64(w.blockSize), remaining)
		b := w.acquireBlock(int(n))
		if _, err := io.ReadFull(r, b.raw); err != nil {
			w.releaseBlock(b)
			return 0, nil, fmt.Errorf("reading file data at byte %d of %d: %w", size-remaining, size, unexpectedEOF(err))
		}
		remaining -= n
		go b.compress()
		queue = append(queue, b)

		if len(queue) >= w.maxInFlight {
			blockSize, err := w.writeBlock(queue[0])
			queue = queue[1:]
			if err != nil {
				return 0, nil, err
			}
			blockSizes = append(blockSizes, blockSize)
		}
	}
	for len(queue) > 0 {
		blockSize, err := w.writeBlock(queue[0])
		queue = queue[1:]
		if err != nil {
			return 0, nil, err
		}
		blockSizes = append(blockSizes, blockSize)
	}

	if err := expectEOF(r, size); err != nil {
		return 0, nil, fmt.Errorf("reading file data: %w", err)
	}
	return start, blockSizes, nil
}

// writeBlock waits for b's compression, writes it at the end of the image,
// releases it and returns its block list entry.
func (w *Writer) writeBlock(b *dataBlock) (uint32, error) {
	<-b.done
	defer w.releaseBlock(b)
	if b.err != nil {
		return 0, b.err
	}

	body := b.compressed
	entry := uint32(len(body))
	if body == nil {
		body = b.raw
		entry = uint32(len(body)) | dataUncompressed
	}
	if _, err := w.w.WriteAt(body, w.offset); err != nil {
		return 0, fmt.Errorf("writing data block at byte %d: %w", w.offset, err)
	}
	w.offset += int64(len(body))
	return entry, nil
}

func (w *Writer) acquireBlock(n int) *dataBlock {
	worker := w.workers.Get().(*blockWorker)
	return &dataBlock{raw: worker.buffer[:n], comp: worker.comp, done: make(chan struct{})}
}

// releaseBlock returns b's buffers to the pool. It is safe to call twice.
func (w *Writer) releaseBlock(b *dataBlock) {
	if b.comp == nil {
		return
	}
	w.workers.Put(&blockWorker{buffer: b.raw[:cap(b.raw)], comp: b.comp})
	b.comp = nil
}

// expectEOF returns an error unless r has no more data after size bytes,
// which catches a source that grew after its size was taken.
func expectEOF(r io.Reader, size int64) error {
	var probe [1]byte
	n, err := io.ReadFull(r, probe[:])
	if n > 0 {
		return fmt.Errorf("the source contains more than the given size of %d bytes: pass its exact size", size)
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the source ended before the given size: %w", io.ErrUnexpectedEOF)
	}
	return err
}
