package flash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"
)

// chunkSize is the size of each write and read-back. Every chunk gets its own
// SHA-256 sum, so verification can name the chunk, and then the byte, where
// the device first differs from the image.
const chunkSize = 4 << 20

// image is an opened disk image.
type image struct {
	file *os.File
	path string
	size int64
}

// imageSums contains the SHA-256 sums of the image and of each chunk of it.
type imageSums struct {
	whole  [sha256.Size]byte
	chunks [][sha256.Size]byte
}

// writeImage copies img to the start of dev in chunks of chunkSize and
// returns the SHA-256 sums of what it wrote. It checks ctx before each chunk.
func writeImage(ctx context.Context, dev *os.File, t target, img image, out io.Writer) (imageSums, error) {
	var sums imageSums
	whole := sha256.New()
	buf := make([]byte, chunkSize)
	prog := newProgress(out, "writing", img.size)
	prog.update(0)

	for off := int64(0); off < img.size; off += chunkSize {
		if err := ctx.Err(); err != nil {
			// Whatever is written so far still reaches the device before Flash returns.
			dev.Sync()
			return imageSums{}, fmt.Errorf("writing %s stopped after %s of %s: %w; the device now contains a partial image, so flash it again before use",
				t.path, formatBytes(off), formatBytes(img.size), err)
		}

		chunk := buf[:min(chunkSize, img.size-off)]
		if _, err := img.file.ReadAt(chunk, off); err != nil {
			return imageSums{}, fmt.Errorf("reading image %s at offset %d: %w", img.path, off, err)
		}
		if _, err := dev.WriteAt(chunk, off); err != nil {
			return imageSums{}, fmt.Errorf("writing %s at offset %d: %w", t.path, off, err)
		}
		if err := writeBack(dev, off, int64(len(chunk))); err != nil {
			return imageSums{}, fmt.Errorf("writing %s at offset %d: %w", t.path, off, err)
		}

		whole.Write(chunk)
		sums.chunks = append(sums.chunks, sha256.Sum256(chunk))
		prog.update(off + int64(len(chunk)))
	}

	prog.finish(img.size)
	copy(sums.whole[:], whole.Sum(nil))
	return sums, nil
}

// writeBack starts writing the chunk at off to the device and waits for the
// chunk before it. This keeps at most two chunks in the page cache, so the
// progress shows the speed of the device rather than of memory, and the final
// fsync has little left to do.
func writeBack(dev *os.File, off, n int64) error {
	fd := int(dev.Fd())
	if err := unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE); err != nil {
		return fmt.Errorf("starting write-back: %w", err)
	}
	if off == 0 {
		return nil
	}
	previous := max(0, off-chunkSize)
	flags := unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WRITE | unix.SYNC_FILE_RANGE_WAIT_AFTER
	if err := unix.SyncFileRange(fd, previous, off-previous, flags); err != nil {
		return fmt.Errorf("waiting for write-back: %w", err)
	}
	return nil
}

// flushTarget makes the written data durable and drops it from the page
// cache, so that verification reads what the device stores.
func flushTarget(dev *os.File, t target) error {
	if err := dev.Sync(); err != nil {
		return fmt.Errorf("flushing %s: %w", t.path, err)
	}
	fd := int(dev.Fd())
	if t.block {
		if err := unix.IoctlSetInt(fd, unix.BLKFLSBUF, 0); err != nil {
			return fmt.Errorf("dropping the buffer cache of %s (BLKFLSBUF): %w", t.path, err)
		}
		return nil
	}
	if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("dropping the page cache of %s: %w", t.path, err)
	}
	return nil
}

// verifyImage reads the image's range back from dev and compares it with
// sums. A mismatch returns an ErrVerify error that names the first offset at
// which dev differs from the image.
func verifyImage(ctx context.Context, dev *os.File, t target, img image, sums imageSums, out io.Writer) error {
	whole := sha256.New()
	buf := make([]byte, chunkSize)
	prog := newProgress(out, "verifying", img.size)
	prog.update(0)

	for i, off := 0, int64(0); off < img.size; i, off = i+1, off+chunkSize {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("verifying %s stopped after %s of %s: %w; the image was written completely but not verified",
				t.path, formatBytes(off), formatBytes(img.size), err)
		}

		chunk := buf[:min(chunkSize, img.size-off)]
		if _, err := dev.ReadAt(chunk, off); err != nil {
			return fmt.Errorf("reading back %s at offset %d: %w", t.path, off, err)
		}
		whole.Write(chunk)
		if sha256.Sum256(chunk) != sums.chunks[i] {
			return mismatchError(t, img, chunk, off)
		}
		prog.update(off + int64(len(chunk)))
	}

	prog.finish(img.size)
	if !bytes.Equal(whole.Sum(nil), sums.whole[:]) {
		return fmt.Errorf("%w: the SHA-256 of %s differs from the image's although every chunk matched; flash again",
			ErrVerify, t.path)
	}
	return nil
}

// mismatchError compares the chunk read back from offset off with the image
// and returns an error that names the first differing byte.
func mismatchError(t target, img image, readBack []byte, off int64) error {
	want := make([]byte, len(readBack))
	if _, err := img.file.ReadAt(want, off); err != nil {
		return fmt.Errorf("%w: %s differs from the image in the %s at offset %d, and reading the image again failed: %w",
			ErrVerify, t.path, formatBytes(chunkSize), off, err)
	}
	for i := range readBack {
		if readBack[i] != want[i] {
			return fmt.Errorf("%w: %s differs from the image at offset %d (byte %#02x, image has %#02x); the card may be faulty or fake, try another one",
				ErrVerify, t.path, off+int64(i), readBack[i], want[i])
		}
	}
	return fmt.Errorf("%w: the image %s changed while it was written; flash again", ErrVerify, img.path)
}

// rereadPartitionTable makes the kernel read the partition table of the block
// device dev again (BLKRRPART), so that the image's partitions show up
// without replugging. A busy device only gets a warning in the log, because
// the image is written and verified by then.
func rereadPartitionTable(dev *os.File, t target, logger *slog.Logger) error {
	err := unix.IoctlSetInt(int(dev.Fd()), unix.BLKRRPART, 0)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EBUSY):
		logger.Warn("partition table not re-read", "device", t.path, "err", err,
			"hint", "a partition is still open; unplug and replug the card to see the new partitions")
		return nil
	case errors.Is(err, unix.EINVAL):
		// Loop devices without partition scanning (losetup without -P) and
		// some other drivers do not support partitions.
		logger.Info("partition table not re-read", "device", t.path, "err", err,
			"reason", "the device does not support partitions")
		return nil
	default:
		return fmt.Errorf("the image was written and verified, but re-reading the partition table of %s (BLKRRPART) failed: %w; unplug and replug the card",
			t.path, err)
	}
}
