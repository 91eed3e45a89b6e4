package squashfs

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"math"
)

// compressionLevel is the zlib level for data and metadata blocks. It is
// zlib's default of 6, not the 9 that mksquashfs uses by default. On a
// 15 MB Go binary (the go command of Go 1.26), Go's compress/flate took
// about ten times as long at level 9 for an output only 0.1 % smaller,
// measured on a shared two-core AMD EPYC virtual machine.
const compressionLevel = zlib.DefaultCompression

// compressor turns blocks into zlib streams, reusing its buffers between
// blocks. It is not safe for concurrent use.
type compressor struct {
	zw  *zlib.Writer
	out bytes.Buffer
}

func newCompressor() *compressor {
	c := &compressor{}
	// NewWriterLevel fails only for an invalid level, and this one is valid.
	c.zw, _ = zlib.NewWriterLevel(&c.out, compressionLevel)
	return c
}

// compress returns the zlib stream of p, or nil when the stream is not
// smaller than p, so that the caller stores p uncompressed. The result is
// valid until the next call.
func (c *compressor) compress(p []byte) ([]byte, error) {
	c.out.Reset()
	c.zw.Reset(&c.out)
	if _, err := c.zw.Write(p); err != nil {
		return nil, fmt.Errorf("compressing block: %w", err)
	}
	if err := c.zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing block: %w", err)
	}
	if c.out.Len() >= len(p) {
		return nil, nil
	}
	return c.out.Bytes(), nil
}

// metadataRef is the location of a byte in a metadata table: the position
// of its block's length header relative to the start of the table, and the
// offset inside the uncompressed block.
type metadataRef struct {
	block  uint32
	offset uint16
}

// inodeRef packs a reference the way superblocks and directories store
// inode locations: block position above bit 16, offset below.
func (r metadataRef) inodeRef() uint64 {
	return uint64(r.block)<<16 | uint64(r.offset)
}

// metadataWriter builds a table of metadata blocks (the inode or the
// directory table) in memory. Every block except the last holds exactly
// metadataBlockSize uncompressed bytes, because readers locate a byte by
// its uncompressed offset modulo that size.
type metadataWriter struct {
	table   bytes.Buffer // finished blocks, each with its length header
	pending []byte       // uncompressed bytes of the open block
	blocks  int64        // number of finished blocks
	comp    *compressor
}

func newMetadataWriter(comp *compressor) *metadataWriter {
	return &metadataWriter{comp: comp, pending: make([]byte, 0, metadataBlockSize)}
}

// position returns where the next byte written will be.
func (m *metadataWriter) position() metadataRef {
	return metadataRef{block: uint32(m.table.Len()), offset: uint16(len(m.pending))}
}

// streamOffset returns the uncompressed offset of the next byte written,
// counted from the start of the table.
func (m *metadataWriter) streamOffset() int64 {
	return m.blocks*metadataBlockSize + int64(len(m.pending))
}

// write appends p, closing each block as soon as it is full so that a
// position never points past the end of a block.
func (m *metadataWriter) write(p []byte) error {
	for len(p) > 0 {
		n := min(len(p), metadataBlockSize-len(m.pending))
		m.pending = append(m.pending, p[:n]...)
		p = p[n:]
		if len(m.pending) == metadataBlockSize {
			if err := m.closeBlock(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *metadataWriter) closeBlock() error {
	if m.table.Len() > math.MaxUint32 {
		return fmt.Errorf("metadata table exceeds 4 GiB: the tree has too many entries for one image")
	}
	compressed, err := m.comp.compress(m.pending)
	if err != nil {
		return err
	}
	header := uint16(len(compressed))
	body := compressed
	if compressed == nil {
		header = uint16(len(m.pending)) | metadataUncompressed
		body = m.pending
	}
	m.table.Write(binary.LittleEndian.AppendUint16(nil, header))
	m.table.Write(body)
	m.pending = m.pending[:0]
	m.blocks++
	return nil
}

// finish closes the last, partial block and returns the whole table.
func (m *metadataWriter) finish() ([]byte, error) {
	if len(m.pending) > 0 {
		if err := m.closeBlock(); err != nil {
			return nil, err
		}
	}
	return m.table.Bytes(), nil
}
