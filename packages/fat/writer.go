package fat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// ErrNoSpace is wrapped by the errors that report content too large for the
// partition or for its fixed root directory.
var ErrNoSpace = errors.New("no space left in FAT partition")

// maxFileSize is the largest file FAT can describe: the size field of a
// directory entry has 32 bits.
const maxFileSize = 0xFFFFFFFF

// maxDirEntries is the largest number of 32-byte entries in one
// subdirectory ("FAT Directory Structure").
const maxDirEntries = 65536

// Options configures a new file system.
type Options struct {
	// Size is the partition size in bytes, a multiple of SectorSize. FAT16
	// needs about 2 MiB to 2 GiB.
	Size int64

	// VolumeLabel is stored in the boot sector and in the root directory:
	// up to 11 ASCII characters, stored in upper case. Empty means no label,
	// which the boot sector records as "NO NAME".
	VolumeLabel string

	// VolumeID is the volume serial number, which Linux shows as the UUID
	// "XXXX-XXXX" of the file system.
	VolumeID uint32

	// ModTime is the creation and modification time of every file and
	// directory. FAT stores local time without a zone, so the fields of
	// ModTime are stored as they are, in 2-second steps. It must lie in 1980
	// to 2107. The zero value means 1980-01-01 00:00:00.
	ModTime time.Time

	// RootEntries is the number of 32-byte entries in the fixed-size root
	// directory, a multiple of 16. A file takes one entry, plus one per 13
	// characters of its name unless the name fits 8.3. Zero means
	// DefaultRootEntries.
	RootEntries int
}

// Writer collects the files and directories of a FAT16 file system and
// writes the file system out in one pass.
// Files are stored in contiguous clusters, because gokrazy's update code
// rewrites /cmdline.txt through an offset and a length. A Writer is not safe
// for concurrent use.
type Writer struct {
	opts  Options
	geo   geometry
	label shortName
	stamp timestamp
	root  *node
}

// node is a file or directory in the tree that the Writer builds.
type node struct {
	name     string
	children map[string]*node // keyed by foldName, nil for a file

	size int64
	open func() (io.ReadCloser, error)
	data []byte // set instead of open by AddFile

	// Set by layout.
	short        shortName
	caseFlags    byte
	longName     bool
	firstCluster uint32
}

func (n *node) isDir() bool { return n.children != nil }

// NewWriter returns a Writer for an empty file system described by opts.
func NewWriter(opts Options) (*Writer, error) {
	if opts.RootEntries == 0 {
		opts.RootEntries = DefaultRootEntries
	}
	if opts.RootEntries < 16 || opts.RootEntries%16 != 0 || opts.RootEntries > 0xFFF0 {
		return nil, fmt.Errorf("root directory size %d entries is invalid: use a multiple of 16 between 16 and 65520", opts.RootEntries)
	}

	geo, err := newGeometry(opts.Size, opts.RootEntries)
	if err != nil {
		return nil, err
	}
	label, err := parseLabel(opts.VolumeLabel)
	if err != nil {
		return nil, err
	}
	stamp, err := newTimestamp(opts.ModTime)
	if err != nil {
		return nil, err
	}

	return &Writer{
		opts:  opts,
		geo:   geo,
		label: label,
		stamp: stamp,
		root:  &node{children: map[string]*node{}},
	}, nil
}

// parseLabel checks a volume label and returns it padded with spaces. An
// empty label returns all spaces.
func parseLabel(label string) (shortName, error) {
	var s shortName
	upper := strings.ToUpper(label)
	if len(upper) > len(s) {
		return s, fmt.Errorf("volume label %q is longer than %d characters", label, len(s))
	}
	for i, r := range upper {
		if !isShortNameChar(r) && !(r == ' ' && i > 0) {
			return s, fmt.Errorf("volume label %q contains %q: use ASCII letters, digits, inner spaces and $%%'-_@~`!(){}^#&", label, r)
		}
	}
	copy(s[:], fmt.Sprintf("%-11s", upper))
	return s, nil
}

// MkdirAll creates the directory path and any parents that do not exist yet.
// Paths use "/" as separator, and a leading "/" is ignored. An existing
// directory is no error.
func (w *Writer) MkdirAll(path string) error {
	_, err := w.insert(path, nil)
	return err
}

// AddFile adds a file with the content data, creating missing parent
// directories. The Writer keeps data without copying it, so the caller must
// not change it before the last WritePartition call returns.
func (w *Writer) AddFile(path string, data []byte) error {
	if int64(len(data)) > maxFileSize {
		return fmt.Errorf("adding %q: %d bytes exceed FAT's maximum file size of %d bytes", path, len(data), int64(maxFileSize))
	}
	_, err := w.insert(path, &node{size: int64(len(data)), data: data})
	return err
}

// AddFileFrom adds a file of size bytes, creating missing parent
// directories. Each WritePartition call reads the content from a reader that
// it gets from open, and closes that reader. It fails when the reader does
// not return exactly size bytes.
func (w *Writer) AddFileFrom(path string, size int64, open func() (io.ReadCloser, error)) error {
	if size < 0 || size > maxFileSize {
		return fmt.Errorf("adding %q: size %d bytes is outside FAT's file sizes of 0 to %d bytes", path, size, int64(maxFileSize))
	}
	if open == nil {
		return fmt.Errorf("adding %q: open function is nil", path)
	}
	_, err := w.insert(path, &node{size: size, open: open})
	return err
}

// insert creates the directories along path and, unless leaf is nil, adds
// leaf as the file at path. It undoes its changes when the result does not
// fit in the partition.
func (w *Writer) insert(path string, leaf *node) (*node, error) {
	parts, err := splitPath(path)
	if err != nil {
		return nil, err
	}

	dir := w.root
	var created *node // the first directory or file that insert adds
	var createdIn *node
	for i, part := range parts {
		key := foldName(part)
		child, exists := dir.children[key]
		last := i == len(parts)-1

		switch {
		case exists && last && leaf != nil:
			return nil, fmt.Errorf("adding %q: %q already exists (FAT names are case-insensitive)", path, child.name)
		case exists && !child.isDir():
			return nil, fmt.Errorf("adding %q: %q is a file, not a directory", path, child.name)
		case !exists:
			if last && leaf != nil {
				child = leaf
				child.name = part
			} else {
				child = &node{name: part, children: map[string]*node{}}
			}
			dir.children[key] = child
			if created == nil {
				created, createdIn = child, dir
			}
		}
		dir = child
	}

	if created != nil {
		if err := w.checkSpace(); err != nil {
			delete(createdIn.children, foldName(created.name))
			if leaf != nil {
				return nil, fmt.Errorf("adding %q (%d bytes): %w", path, leaf.size, err)
			}
			return nil, fmt.Errorf("adding %q: %w", path, err)
		}
	}
	return dir, nil
}

// splitPath checks path and returns its components.
func splitPath(path string) ([]string, error) {
	trimmed := strings.TrimPrefix(path, "/")
	if trimmed == "" {
		return nil, fmt.Errorf("path %q names the root directory: give a file or directory below it", path)
	}
	parts := strings.Split(trimmed, "/")
	for _, part := range parts {
		if err := validateName(part); err != nil {
			return nil, fmt.Errorf("invalid path %q: %w", path, err)
		}
	}
	return parts, nil
}

// checkSpace reports an error wrapping ErrNoSpace when the tree does not fit
// in the root directory, in a subdirectory or in the data clusters.
func (w *Writer) checkSpace() error {
	rootEntries := w.dirEntries(w.root)
	if rootEntries > w.opts.RootEntries {
		return fmt.Errorf("root directory needs %d entries, but has %d: raise Options.RootEntries or move files into a subdirectory: %w",
			rootEntries, w.opts.RootEntries, ErrNoSpace)
	}

	clusters, err := w.treeClusters(w.root)
	if err != nil {
		return err
	}
	if clusters > int64(w.geo.clusters) {
		cs := w.geo.clusterSize()
		return fmt.Errorf("content needs %d clusters of %d bytes (%d bytes), but the %d-byte partition has %d (%d bytes): raise Options.Size or add less: %w",
			clusters, cs, clusters*cs, w.opts.Size, w.geo.clusters, int64(w.geo.clusters)*cs, ErrNoSpace)
	}
	return nil
}

// treeClusters returns the number of data clusters that the files and
// subdirectories below dir occupy.
func (w *Writer) treeClusters(dir *node) (int64, error) {
	var sum int64
	for _, child := range dir.children {
		if !child.isDir() {
			sum += w.geo.clustersFor(child.size)
			continue
		}

		entries := w.dirEntries(child)
		if entries > maxDirEntries {
			return 0, fmt.Errorf("directory %q needs %d entries, but FAT allows %d: %w", child.name, entries, maxDirEntries, ErrNoSpace)
		}
		sum += w.dirClusters(child)
		below, err := w.treeClusters(child)
		if err != nil {
			return 0, err
		}
		sum += below
	}
	return sum, nil
}

// dirEntries returns the number of 32-byte entries in directory dir: the
// label in the root, "." and ".." in a subdirectory, and each child's short
// entry and long-name entries.
func (w *Writer) dirEntries(dir *node) int {
	n := 2
	if dir == w.root {
		n = 0
		if w.label != newShortName("", "") {
			n = 1
		}
	}
	for _, child := range dir.children {
		n += 1 + child.longNameEntryCount()
	}
	return n
}

// dirClusters returns the clusters that subdirectory dir occupies: at least
// one, since it contains "." and "..".
func (w *Writer) dirClusters(dir *node) int64 {
	return w.geo.clustersFor(int64(w.dirEntries(dir)) * dirEntrySize)
}

// longNameEntryCount returns how many long-name entries n needs, which
// depends on its name alone.
func (n *node) longNameEntryCount() int {
	b := makeShortBasis(n.name)
	if _, ok := caseFlags(n.name, b); ok {
		return 0
	}
	return longNameEntries(n.name)
}

// sortedChildren returns the children of dir ordered by name, which fixes
// the order of directory entries, short-name tails and clusters.
func sortedChildren(dir *node) []*node {
	children := make([]*node, 0, len(dir.children))
	for _, child := range dir.children {
		children = append(children, child)
	}
	slices.SortFunc(children, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	return children
}

// openContent returns a reader for the content of file n.
func (n *node) openContent() (io.ReadCloser, error) {
	if n.open == nil {
		return io.NopCloser(bytes.NewReader(n.data)), nil
	}
	return n.open()
}
