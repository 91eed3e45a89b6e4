// Package mbr writes the classic DOS partition table (master boot record) that
// the Heimwolke image uses: four primary partitions addressed by LBA, and the
// disk signature that Linux shows as PARTUUID=<signature>-<partition number>.
package mbr

import (
	"encoding/binary"
	"fmt"
)

// SectorSize is the only logical sector size the image uses.
const SectorSize = 512

// Partition types used by the image.
const (
	TypeFAT16LBA = 0x0e
	TypeLinux    = 0x83
)

// Partition is one primary partition entry, in 512-byte sectors.
type Partition struct {
	Type     byte
	Bootable bool
	Start    uint32 // first sector
	Sectors  uint32 // length in sectors
}

// End returns the first sector after the partition.
func (p Partition) End() uint64 { return uint64(p.Start) + uint64(p.Sectors) }

// Table is a partition table with up to four primary partitions. Unused
// entries have Type 0.
type Table struct {
	// DiskSignature is written at byte 440; Linux names partitions
	// PARTUUID=%08x-%02d after it.
	DiskSignature uint32
	Partitions    [4]Partition
}

// Marshal returns the 512-byte boot sector: empty boot code, the disk
// signature, the four partition entries and the 0x55AA boot signature. It
// rejects overlapping or out-of-order partitions.
func (t Table) Marshal() ([]byte, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	b := make([]byte, SectorSize)
	binary.LittleEndian.PutUint32(b[440:], t.DiskSignature)
	for i, p := range t.Partitions {
		if p.Type == 0 {
			continue
		}
		e := b[446+16*i : 446+16*(i+1)]
		if p.Bootable {
			e[0] = 0x80
		}
		// CHS addresses are meaningless for disks of this size, so both are
		// 0xFE 0xFF 0xFF, which makes readers use the LBA fields, as fdisk does.
		copy(e[1:4], []byte{0xfe, 0xff, 0xff})
		e[4] = p.Type
		copy(e[5:8], []byte{0xfe, 0xff, 0xff})
		binary.LittleEndian.PutUint32(e[8:], p.Start)
		binary.LittleEndian.PutUint32(e[12:], p.Sectors)
	}
	b[510], b[511] = 0x55, 0xaa
	return b, nil
}

func (t Table) validate() error {
	var prevEnd uint64 = 1
	for i, p := range t.Partitions {
		if p.Type == 0 {
			continue
		}
		if p.Sectors == 0 {
			return fmt.Errorf("partition %d: size is zero", i+1)
		}
		if uint64(p.Start) < prevEnd {
			return fmt.Errorf("partition %d starts at sector %d, before the end of the previous one (%d)", i+1, p.Start, prevEnd)
		}
		if p.End() > 1<<32 {
			return fmt.Errorf("partition %d ends at sector %d, beyond the 2 TiB limit of an MBR", i+1, p.End())
		}
		prevEnd = p.End()
	}
	return nil
}

// PartUUID returns the PARTUUID that Linux derives for partition number n
// (1-based) from the disk signature, as used in root=PARTUUID=... .
func (t Table) PartUUID(n int) string {
	return fmt.Sprintf("%08x-%02d", t.DiskSignature, n)
}
