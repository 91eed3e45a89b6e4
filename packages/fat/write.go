package fat

import (
	"encoding/binary"
	"fmt"
	"io"
)

// bootCode is the x86 code at the boot sector's jump target. It calls
// int 18h, which makes the BIOS try the next boot device, then halts the
// CPU. The partition carries no x86 boot loader.
var bootCode = []byte{0xCD, 0x18, 0xF4, 0xEB, 0xFD}

// WritePartition writes the file system to dst as a partition that starts at
// byte offset, a multiple of SectorSize, and is Options.Size bytes long. It
// writes the boot sector, the FAT, the root directory, every directory and
// file cluster (with zero padding up to the cluster's end) and the last
// sector of the partition. So a partition written to an empty file gives the
// file its full length. WritePartition leaves free clusters untouched, so for
// byte-identical output dst must read as zeros there, as a new or truncated
// file does.
//
// WritePartition may be called more than once, and each call reads every file
// content again.
func (w *Writer) WritePartition(dst io.WriterAt, offset int64) error {
	if offset < 0 || offset%SectorSize != 0 {
		return fmt.Errorf("partition offset %d bytes is not a non-negative multiple of %d bytes", offset, SectorSize)
	}
	hidden := offset / SectorSize
	if hidden > 0xFFFFFFFF {
		return fmt.Errorf("partition offset %d bytes exceeds the 32-bit sector numbers of FAT16", offset)
	}

	fat, err := w.layout()
	if err != nil {
		return err
	}

	out := partitionWriter{dst: dst, base: offset}
	if err := out.writeAt(make([]byte, SectorSize), w.opts.Size-SectorSize, "last sector"); err != nil {
		return err
	}
	if err := out.writeAt(w.bootSector(uint32(hidden)), 0, "boot sector"); err != nil {
		return err
	}
	if err := out.writeAt(fat, w.geo.fatOffset(), "FAT"); err != nil {
		return err
	}
	root := w.encodeDir(w.root, 0, int64(w.opts.RootEntries)*dirEntrySize)
	if err := out.writeAt(root, w.geo.rootOffset(), "root directory"); err != nil {
		return err
	}
	return w.writeDir(&out, w.root, "")
}

// writeDir writes the clusters of the children of dir, whose path is dir.
func (w *Writer) writeDir(out *partitionWriter, dir *node, path string) error {
	for _, child := range sortedChildren(dir) {
		childPath := path + "/" + child.name
		off := w.geo.clusterOffset(child.firstCluster)

		if !child.isDir() {
			if err := w.writeFile(out, child, childPath); err != nil {
				return err
			}
			continue
		}

		capacity := w.dirClusters(child) * w.geo.clusterSize()
		b := w.encodeDir(child, dir.firstCluster, capacity)
		if err := out.writeAt(b, off, "directory "+childPath); err != nil {
			return err
		}
		if err := w.writeDir(out, child, childPath); err != nil {
			return err
		}
	}
	return nil
}

// writeFile copies the content of file n to its clusters and zeros the rest
// of its last cluster.
func (w *Writer) writeFile(out *partitionWriter, n *node, path string) error {
	if n.size == 0 {
		return nil
	}
	off := w.geo.clusterOffset(n.firstCluster)

	rc, err := n.openContent()
	if err != nil {
		return fmt.Errorf("opening content of %s: %w", path, err)
	}
	err = copyExact(io.NewOffsetWriter(out.dst, out.base+off), rc, n.size)
	if closeErr := rc.Close(); err == nil && closeErr != nil {
		err = fmt.Errorf("closing content: %w", closeErr)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}

	padding := w.geo.clustersFor(n.size)*w.geo.clusterSize() - n.size
	return out.writeAt(make([]byte, padding), off+n.size, "padding of "+path)
}

// copyExact copies size bytes from src to dst and fails unless src has
// exactly that many.
func copyExact(dst io.Writer, src io.Reader, size int64) error {
	copied, err := io.Copy(dst, io.LimitReader(src, size))
	if err != nil {
		return err
	}
	if copied < size {
		return fmt.Errorf("content ended after %d bytes, but %d were announced", copied, size)
	}
	var extra [1]byte
	if k, _ := io.ReadFull(src, extra[:]); k > 0 {
		return fmt.Errorf("content is longer than the %d bytes announced", size)
	}
	return nil
}

// partitionWriter writes at offsets relative to the start of the partition.
type partitionWriter struct {
	dst  io.WriterAt
	base int64
}

func (p *partitionWriter) writeAt(b []byte, off int64, what string) error {
	if len(b) == 0 {
		return nil
	}
	if _, err := p.dst.WriteAt(b, p.base+off); err != nil {
		return fmt.Errorf("writing %s at partition offset %d: %w", what, off, err)
	}
	return nil
}

// bootSector returns the boot sector with the FAT16 BIOS parameter block
// ("Boot Sector and BPB"). hidden is the number of sectors before the
// partition.
func (w *Writer) bootSector(hidden uint32) []byte {
	g := w.geo
	b := make([]byte, SectorSize)
	le16 := binary.LittleEndian.PutUint16
	le32 := binary.LittleEndian.PutUint32

	b[0], b[1], b[2] = 0xEB, 0x3C, 0x90 // jmp short 0x3E; nop
	// Microsoft recommends this OEM name for the widest compatibility.
	copy(b[3:11], "MSWIN4.1")
	le16(b[11:], SectorSize)
	b[13] = byte(g.sectorsPerCluster)
	le16(b[14:], uint16(g.reservedSectors))
	// One FAT: gokrazy's reader finds the root directory at
	// (reserved + FAT sectors) * sector size.
	b[16] = 1
	le16(b[17:], uint16(w.opts.RootEntries))
	if g.totalSectors <= 0xFFFF {
		le16(b[19:], uint16(g.totalSectors))
	} else {
		le32(b[32:], g.totalSectors)
	}
	b[21] = mediaFixed
	le16(b[22:], uint16(g.fatSectors))
	// CHS geometry: the usual translation for LBA disks. Nothing that reads
	// this partition uses it.
	le16(b[24:], 63)
	le16(b[26:], 255)
	le32(b[28:], hidden)

	// Extended boot record of FAT12 and FAT16.
	b[36] = 0x80 // drive number: first hard disk
	b[38] = 0x29 // the next three fields are valid
	le32(b[39:], w.opts.VolumeID)
	label := w.label
	if label == newShortName("", "") {
		label = newShortName("NO NAME", "")
	}
	copy(b[43:54], label[:])
	copy(b[54:62], "FAT16   ")

	copy(b[62:], bootCode)
	b[510], b[511] = 0x55, 0xAA
	return b
}
