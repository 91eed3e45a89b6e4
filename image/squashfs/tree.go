package squashfs

import (
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

type nodeKind int

const (
	kindDir nodeKind = iota
	kindFile
	kindSymlink
)

// node is one file, directory or symlink of the tree being written.
type node struct {
	kind nodeKind
	name string
	mode uint16 // permission, setuid, setgid and sticky bits as stored
	// number is the inode number, assigned when the tables are written.
	number uint32

	children map[string]*node // directories only

	// Regular files only: where the data blocks start, the file size and
	// each block's size as stored in the block list.
	dataStart  int64
	size       int64
	blockSizes []uint32

	target string // symlinks only
}

func newDir(name string, mode uint16) *node {
	return &node{kind: kindDir, name: name, mode: mode, children: make(map[string]*node)}
}

// sortedChildren returns a directory's children in byte order of their
// names. Readers depend on this order: the kernel ends a lookup at the
// first greater name and scans the directory index comparing bytes.
func (n *node) sortedChildren() []*node {
	names := slices.Sorted(maps.Keys(n.children))
	children := make([]*node, len(names))
	for i, name := range names {
		children[i] = n.children[name]
	}
	return children
}

// basicType returns the inode type stored in directory entries.
func (n *node) basicType() uint16 {
	switch n.kind {
	case kindDir:
		return inodeTypeDir
	case kindFile:
		return inodeTypeFile
	default:
		return inodeTypeSymlink
	}
}

// splitPath validates a slash-separated path relative to the root and
// returns its parent directory and last element.
func splitPath(path string) (dir, name string, err error) {
	if path == "" || path == "." {
		return "", "", fmt.Errorf("path %q names the root directory, which always exists: %w", path, fs.ErrInvalid)
	}
	if strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") {
		return "", "", fmt.Errorf("path %q starts or ends with a slash, but it must be relative to the root without a trailing slash: %w", path, fs.ErrInvalid)
	}
	for element := range strings.SplitSeq(path, "/") {
		if err := validateName(element); err != nil {
			return "", "", fmt.Errorf("path %q: %w", path, err)
		}
	}
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return "", path, nil
	}
	return path[:i], path[i+1:], nil
}

func validateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty path element (a double slash): %w", fs.ErrInvalid)
	case name == "." || name == "..":
		return fmt.Errorf("path element %q is not allowed, because readers add . and .. to every directory themselves: %w", name, fs.ErrInvalid)
	case len(name) > maxNameLen:
		return fmt.Errorf("name %.20q... is %d bytes long, more than the maximum of %d: %w", name, len(name), maxNameLen, fs.ErrInvalid)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("name %q contains a NUL byte: %w", name, fs.ErrInvalid)
	case !utf8.ValidString(name):
		return fmt.Errorf("name %q is not valid UTF-8: %w", name, fs.ErrInvalid)
	}
	return nil
}

// lookupDir returns the directory at path, where "" is the root.
func (w *Writer) lookupDir(path string) (*node, error) {
	dir := w.root
	if path == "" {
		return dir, nil
	}
	for element := range strings.SplitSeq(path, "/") {
		child, ok := dir.children[element]
		if !ok {
			return nil, fmt.Errorf("parent directory %q not found, so create it with Mkdir first: %w", path, fs.ErrNotExist)
		}
		if child.kind != kindDir {
			return nil, fmt.Errorf("parent %q is not a directory: %w", path, fs.ErrInvalid)
		}
		dir = child
	}
	return dir, nil
}

// resolveNew validates path for a new entry and returns the directory
// that will contain it and its name, without changing the tree.
func (w *Writer) resolveNew(path string) (parent *node, name string, err error) {
	dirPath, name, err := splitPath(path)
	if err != nil {
		return nil, "", err
	}
	parent, err = w.lookupDir(dirPath)
	if err != nil {
		return nil, "", fmt.Errorf("adding %q: %w", path, err)
	}
	if _, ok := parent.children[name]; ok {
		return nil, "", fmt.Errorf("adding %q: an entry of that name was already added: %w", path, fs.ErrExist)
	}
	return parent, name, nil
}

// permissionBits converts the permission, setuid, setgid and sticky bits
// of mode to the 12 bits an inode stores. Any file type bit other than
// allowedType is rejected.
func permissionBits(mode fs.FileMode, allowedType fs.FileMode) (uint16, error) {
	if extra := mode.Type() &^ allowedType; extra != 0 {
		return 0, fmt.Errorf("mode %v has the file type bits %v, which this call does not create: %w", mode, extra, fs.ErrInvalid)
	}
	bits := uint16(mode.Perm())
	if mode&fs.ModeSetuid != 0 {
		bits |= 0o4000
	}
	if mode&fs.ModeSetgid != 0 {
		bits |= 0o2000
	}
	if mode&fs.ModeSticky != 0 {
		bits |= 0o1000
	}
	return bits, nil
}
