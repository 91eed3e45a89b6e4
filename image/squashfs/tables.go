package squashfs

import (
	"encoding/binary"
	"fmt"
	"math"
)

var le = binary.LittleEndian

// tableBuilder writes the inode and directory tables of a finished tree.
// Inodes are written children first, because a directory inode needs the
// location of its listing, and the listing needs its children's inodes.
type tableBuilder struct {
	inodes  *metadataWriter
	dirs    *metadataWriter
	modTime uint32
}

// numberInodes assigns inode numbers from 1, the root first and then each
// directory's children as one consecutive run, so that the numbers in one
// directory listing stay close together. It returns the number of inodes.
func numberInodes(root *node) uint32 {
	next := uint32(1)
	root.number = next
	next++
	queue := []*node{root}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		for _, child := range dir.sortedChildren() {
			child.number = next
			next++
			if child.kind == kindDir {
				queue = append(queue, child)
			}
		}
	}
	return next - 1
}

// writeDir writes the inodes of dir's subtree, dir's listing and then dir's
// own inode, and returns that inode's location.
func (b *tableBuilder) writeDir(dir *node, parentNumber uint32) (metadataRef, error) {
	children := dir.sortedChildren()
	entries := make([]dirEntry, len(children))
	subdirs := 0
	for i, child := range children {
		var ref metadataRef
		var err error
		switch child.kind {
		case kindDir:
			ref, err = b.writeDir(child, dir.number)
			subdirs++
		case kindFile:
			ref, err = b.writeFileInode(child)
		case kindSymlink:
			ref, err = b.writeSymlinkInode(child)
		}
		if err != nil {
			return metadataRef{}, err
		}
		entries[i] = dirEntry{name: child.name, inode: ref, number: child.number, inodeType: child.basicType()}
	}

	listing := b.dirs.position()
	size, index, err := writeListing(b.dirs, entries)
	if err != nil {
		return metadataRef{}, err
	}
	return b.writeDirInode(dir, dirInode{
		listing:   listing,
		size:      size + dirSizeOffset,
		linkCount: uint32(2 + subdirs),
		parent:    parentNumber,
		index:     index,
	})
}

func (b *tableBuilder) inodeHeader(inodeType uint16, n *node) []byte {
	buf := make([]byte, 0, 64)
	buf = le.AppendUint16(buf, inodeType)
	buf = le.AppendUint16(buf, n.mode)
	buf = le.AppendUint16(buf, 0) // uid: index 0 of the id table, which holds 0
	buf = le.AppendUint16(buf, 0) // gid: likewise
	buf = le.AppendUint32(buf, b.modTime)
	buf = le.AppendUint32(buf, n.number)
	return buf
}

// writeInode appends an encoded inode and returns its location.
func (b *tableBuilder) writeInode(buf []byte) (metadataRef, error) {
	ref := b.inodes.position()
	if err := b.inodes.write(buf); err != nil {
		return metadataRef{}, fmt.Errorf("writing inode table: %w", err)
	}
	return ref, nil
}

type dirInode struct {
	listing   metadataRef
	size      uint32 // listing size plus dirSizeOffset
	linkCount uint32
	parent    uint32
	index     []dirIndexEntry
}

// writeDirInode writes a basic directory inode, or an extended one when
// the listing is too long for a 16-bit size or has an index.
func (b *tableBuilder) writeDirInode(dir *node, d dirInode) (metadataRef, error) {
	if len(d.index) == 0 && d.size <= math.MaxUint16 {
		buf := b.inodeHeader(inodeTypeDir, dir)
		buf = le.AppendUint32(buf, d.listing.block)
		buf = le.AppendUint32(buf, d.linkCount)
		buf = le.AppendUint16(buf, uint16(d.size))
		buf = le.AppendUint16(buf, d.listing.offset)
		buf = le.AppendUint32(buf, d.parent)
		return b.writeInode(buf)
	}

	if len(d.index) > math.MaxUint16 {
		return metadataRef{}, fmt.Errorf("directory %q needs %d index entries, more than the format's 65535: split it", dir.name, len(d.index))
	}
	buf := b.inodeHeader(inodeTypeExtDir, dir)
	buf = le.AppendUint32(buf, d.linkCount)
	buf = le.AppendUint32(buf, d.size)
	buf = le.AppendUint32(buf, d.listing.block)
	buf = le.AppendUint32(buf, d.parent)
	buf = le.AppendUint16(buf, uint16(len(d.index)))
	buf = le.AppendUint16(buf, d.listing.offset)
	buf = le.AppendUint32(buf, noXattr)
	for _, e := range d.index {
		buf = le.AppendUint32(buf, e.listingOffset)
		buf = le.AppendUint32(buf, e.block)
		buf = le.AppendUint32(buf, uint32(len(e.name)-1))
		buf = append(buf, e.name...)
	}
	return b.writeInode(buf)
}

// writeFileInode writes a basic file inode, or an extended one when the
// data starts or the file ends beyond 4 GiB.
func (b *tableBuilder) writeFileInode(f *node) (metadataRef, error) {
	var buf []byte
	if f.dataStart <= math.MaxUint32 && f.size <= math.MaxUint32 {
		buf = b.inodeHeader(inodeTypeFile, f)
		buf = le.AppendUint32(buf, uint32(f.dataStart))
		buf = le.AppendUint32(buf, noFragment)
		buf = le.AppendUint32(buf, 0) // offset in the fragment
		buf = le.AppendUint32(buf, uint32(f.size))
	} else {
		buf = b.inodeHeader(inodeTypeExtFile, f)
		buf = le.AppendUint64(buf, uint64(f.dataStart))
		buf = le.AppendUint64(buf, uint64(f.size))
		buf = le.AppendUint64(buf, 0) // bytes saved by sparse blocks
		buf = le.AppendUint32(buf, 1) // link count
		buf = le.AppendUint32(buf, noFragment)
		buf = le.AppendUint32(buf, 0) // offset in the fragment
		buf = le.AppendUint32(buf, noXattr)
	}
	for _, size := range f.blockSizes {
		buf = le.AppendUint32(buf, size)
	}
	return b.writeInode(buf)
}

func (b *tableBuilder) writeSymlinkInode(l *node) (metadataRef, error) {
	buf := b.inodeHeader(inodeTypeSymlink, l)
	buf = le.AppendUint32(buf, 1) // link count
	buf = le.AppendUint32(buf, uint32(len(l.target)))
	buf = append(buf, l.target...)
	return b.writeInode(buf)
}
