package squashfs

import (
	"fmt"
)

// superblock holds the superblock fields that vary between images.
type superblock struct {
	inodeCount      uint32
	rootInode       metadataRef
	bytesUsed       uint64
	idTableStart    uint64
	inodeTableStart uint64
	dirTableStart   uint64
	// fragmentTableStart is the position of the fragment table. There is
	// none, so it is the end of the directory table, because unsquashfs
	// (4.5.1) reads the directory table up to this position.
	fragmentTableStart uint64
}

// writeTables writes everything after the file data and then the
// superblock, in the order the kernel expects: inode table, directory
// table, id table. It returns the padded image size.
func (w *Writer) writeTables() (int64, error) {
	comp := newCompressor()
	b := &tableBuilder{
		inodes:  newMetadataWriter(comp),
		dirs:    newMetadataWriter(comp),
		modTime: w.modTime,
	}
	inodeCount := numberInodes(w.root)
	// The root's parent is stored as one past the last inode number, as
	// mksquashfs (4.5.1) stores it.
	rootRef, err := b.writeDir(w.root, inodeCount+1)
	if err != nil {
		return 0, err
	}
	inodeTable, err := b.inodes.finish()
	if err != nil {
		return 0, err
	}
	dirTable, err := b.dirs.finish()
	if err != nil {
		return 0, err
	}
	idTable, idIndexOffset, err := encodeIDTable(comp)
	if err != nil {
		return 0, err
	}

	sb := superblock{inodeCount: inodeCount, rootInode: rootRef}
	pos := w.offset
	sb.inodeTableStart = uint64(pos)
	if err := w.writeAt(inodeTable, &pos, "inode table"); err != nil {
		return 0, err
	}
	sb.dirTableStart = uint64(pos)
	if err := w.writeAt(dirTable, &pos, "directory table"); err != nil {
		return 0, err
	}
	sb.fragmentTableStart = uint64(pos)
	idStart := pos
	// The id table's index holds the absolute position of its one block.
	le.PutUint64(idTable[idIndexOffset:], uint64(idStart))
	if err := w.writeAt(idTable, &pos, "id table"); err != nil {
		return 0, err
	}
	sb.idTableStart = uint64(idStart) + uint64(idIndexOffset)
	sb.bytesUsed = uint64(pos)

	padded := (pos + imageAlignment - 1) / imageAlignment * imageAlignment
	if err := w.writeAt(make([]byte, padded-pos), &pos, "padding"); err != nil {
		return 0, err
	}
	if _, err := w.w.WriteAt(w.encodeSuperblock(sb), 0); err != nil {
		return 0, fmt.Errorf("writing superblock: %w", err)
	}
	return padded, nil
}

func (w *Writer) writeAt(p []byte, pos *int64, part string) error {
	if _, err := w.w.WriteAt(p, *pos); err != nil {
		return fmt.Errorf("writing %s at byte %d: %w", part, *pos, err)
	}
	*pos += int64(len(p))
	return nil
}

// encodeIDTable returns the uid/gid table, which maps the 16-bit ids in
// inodes to 32-bit ids: one metadata block with the single id 0, followed
// by its index, one 64-bit block position that the caller fills in at
// idIndexOffset.
func encodeIDTable(comp *compressor) (table []byte, idIndexOffset int, err error) {
	ids := newMetadataWriter(comp)
	if err := ids.write(le.AppendUint32(nil, 0)); err != nil {
		return nil, 0, err
	}
	block, err := ids.finish()
	if err != nil {
		return nil, 0, err
	}
	table = append(block, make([]byte, 8)...)
	return table, len(block), nil
}

func (w *Writer) encodeSuperblock(sb superblock) []byte {
	buf := make([]byte, 0, superblockSize)
	buf = le.AppendUint32(buf, superblockMagic)
	buf = le.AppendUint32(buf, sb.inodeCount)
	buf = le.AppendUint32(buf, w.modTime)
	buf = le.AppendUint32(buf, uint32(w.blockSize))
	buf = le.AppendUint32(buf, 0) // fragment count
	buf = le.AppendUint16(buf, compressionZlib)
	buf = le.AppendUint16(buf, w.blockLog)
	buf = le.AppendUint16(buf, flagNoFragments|flagNoXattrs)
	buf = le.AppendUint16(buf, 1) // id count
	buf = le.AppendUint16(buf, versionMajor)
	buf = le.AppendUint16(buf, versionMinor)
	buf = le.AppendUint64(buf, sb.rootInode.inodeRef())
	buf = le.AppendUint64(buf, sb.bytesUsed)
	buf = le.AppendUint64(buf, sb.idTableStart)
	buf = le.AppendUint64(buf, noTable) // xattr id table
	buf = le.AppendUint64(buf, sb.inodeTableStart)
	buf = le.AppendUint64(buf, sb.dirTableStart)
	buf = le.AppendUint64(buf, sb.fragmentTableStart)
	buf = le.AppendUint64(buf, noTable) // export table
	return buf
}
