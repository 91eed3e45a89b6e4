// Package squashfs writes SquashFS 4.0 images with zlib compression, the
// read-only root file system format that the gokrazy kernels mount. It
// writes regular files, directories and symlinks owned by root with one
// modification time, and is not a reader.
package squashfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/bits"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Options configures a Writer. A nil *Options means all defaults.
type Options struct {
	// BlockSize is the size of the data blocks files are split into, a
	// power of two from MinBlockSize to MaxBlockSize. Zero means
	// DefaultBlockSize (128 KiB).
	BlockSize int
}

// Writer builds a SquashFS image. File data is compressed and written as
// AddFile reads it, the inode and directory tables and the superblock when
// Flush is called.
//
// The same calls with the same time give the same bytes. Directory entries
// are sorted by name, so the order of Mkdir and Symlink calls does not
// matter, but file data lies in the order of the AddFile calls.
//
// The image has no fragments, so a file's last block may be short. It has
// no extended attributes, no export table and no hard links, and every
// inode has uid and gid 0. A Writer is not safe for concurrent use.
type Writer struct {
	w         io.WriterAt
	modTime   uint32
	blockSize int
	blockLog  uint16

	root   *node
	offset int64 // end of the data written so far

	workers     sync.Pool // *blockWorker
	maxInFlight int       // data blocks read ahead of the one being written

	// err is set by a failed read or write, after which the image is
	// incomplete and every call returns it.
	err      error
	finished bool
}

// ErrFinished is returned by calls after a successful Flush.
var ErrFinished = errors.New("squashfs: image already flushed")

// NewWriter returns a Writer that writes an image to w from offset 0 on;
// use io.NewOffsetWriter to place it inside a larger file. Every inode and
// the superblock get modTime, truncated to whole seconds.
func NewWriter(w io.WriterAt, modTime time.Time, opts *Options) (*Writer, error) {
	if opts == nil {
		opts = &Options{}
	}
	blockSize := opts.BlockSize
	if blockSize == 0 {
		blockSize = DefaultBlockSize
	}
	if blockSize < MinBlockSize || blockSize > MaxBlockSize || bits.OnesCount(uint(blockSize)) != 1 {
		return nil, fmt.Errorf("squashfs: block size %d is invalid: use a power of two from %d to %d", blockSize, MinBlockSize, MaxBlockSize)
	}
	seconds := modTime.Unix()
	if seconds < 0 || seconds > math.MaxUint32 {
		return nil, fmt.Errorf("squashfs: modification time %v is outside the format's range of 1970 to 2106", modTime)
	}

	sw := &Writer{
		w:           w,
		modTime:     uint32(seconds),
		blockSize:   blockSize,
		blockLog:    uint16(bits.TrailingZeros(uint(blockSize))),
		root:        newDir("", 0o755),
		offset:      superblockSize,
		maxInFlight: runtime.GOMAXPROCS(0) + 1,
	}
	sw.workers.New = func() any {
		return &blockWorker{buffer: make([]byte, blockSize), comp: newCompressor()}
	}
	return sw, nil
}

// usable returns the error that prevents further calls, if any.
func (w *Writer) usable() error {
	if w.finished {
		return ErrFinished
	}
	return w.err
}

// Mkdir adds a directory at path, a slash-separated path relative to the
// root whose parent directory must already exist. Only the permission,
// setuid, setgid and sticky bits of mode are stored; fs.ModeDir may be set.
// The root directory always exists, with mode 0755.
func (w *Writer) Mkdir(path string, mode fs.FileMode) error {
	if err := w.usable(); err != nil {
		return err
	}
	perm, err := permissionBits(mode, fs.ModeDir)
	if err != nil {
		return fmt.Errorf("squashfs: adding directory %q: %w", path, err)
	}
	parent, name, err := w.resolveNew(path)
	if err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	parent.children[name] = newDir(name, perm)
	return nil
}

// AddFile adds a regular file at path with the size bytes that it reads
// from r, which must return exactly size bytes. The data is compressed
// and written before AddFile returns, so r can be closed then. An error
// from reading r or writing the image leaves the Writer unusable.
func (w *Writer) AddFile(path string, mode fs.FileMode, size int64, r io.Reader) error {
	if err := w.usable(); err != nil {
		return err
	}
	perm, err := permissionBits(mode, 0)
	if err != nil {
		return fmt.Errorf("squashfs: adding file %q: %w", path, err)
	}
	if size < 0 {
		return fmt.Errorf("squashfs: adding file %q: size %d is negative: %w", path, size, fs.ErrInvalid)
	}
	parent, name, err := w.resolveNew(path)
	if err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}

	start, blockSizes, err := w.writeFileData(size, r)
	if err != nil {
		w.err = fmt.Errorf("squashfs: adding file %q: %w", path, err)
		return w.err
	}
	if size == 0 {
		// No block is read, so the start is arbitrary. Zero keeps empty
		// files in basic inodes however large the image grows.
		start = 0
	}
	parent.children[name] = &node{
		kind:       kindFile,
		name:       name,
		mode:       perm,
		dataStart:  start,
		size:       size,
		blockSizes: blockSizes,
	}
	return nil
}

// Symlink adds a symbolic link at path that points to target, like
// os.Symlink. Its mode is 0777, as on Linux.
func (w *Writer) Symlink(target, path string) error {
	if err := w.usable(); err != nil {
		return err
	}
	if target == "" || len(target) > maxSymlinkLen {
		return fmt.Errorf("squashfs: adding symlink %q: target length %d is invalid: use 1 to %d bytes: %w", path, len(target), maxSymlinkLen, fs.ErrInvalid)
	}
	if strings.IndexByte(target, 0) >= 0 {
		return fmt.Errorf("squashfs: adding symlink %q: target %q contains a NUL byte: %w", path, target, fs.ErrInvalid)
	}
	parent, name, err := w.resolveNew(path)
	if err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	parent.children[name] = &node{kind: kindSymlink, name: name, mode: 0o777, target: target}
	return nil
}

// Flush writes the inode, directory and id tables after the file data,
// pads the image with zeros to a multiple of 4 KiB and then writes the
// superblock, so an image whose Flush did not finish has no valid
// superblock. It returns the padded image size. Later calls return
// ErrFinished.
func (w *Writer) Flush() (size int64, err error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	size, err = w.writeTables()
	if err != nil {
		w.err = fmt.Errorf("squashfs: %w", err)
		return 0, w.err
	}
	w.finished = true
	return size, nil
}
