package growperm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Layout of the master boot record in sector 0: 440 bytes of boot code, the
// 32-bit disk signature, 2 reserved bytes, four 16-byte partition entries and
// the boot signature 0x55 0xAA.
const (
	mbrSize            = 512
	diskSignatureOff   = 440
	partitionTableOff  = 446
	partitionEntrySize = 16
	bootSignatureOff   = 510
)

// Offsets inside one partition entry.
const (
	entryTypeOff     = 4
	entryLastCHSOff  = 5
	entryFirstLBAOff = 8
	entrySectorsOff  = 12
)

const (
	mib = 1 << 20

	// maxMBREnd is the first sector an MBR partition cannot reach, because
	// start and length are 32-bit sector numbers (2 TiB with 512-byte sectors).
	maxMBREnd = 1 << 32

	// permIndex is the table index of partition 4, the /perm partition.
	permIndex = 3
)

// lbaOnlyCHS is the CHS address written for sectors that CHS cannot express:
// head 254, sector 63, cylinder 1023. Tools and firmware then use the LBA fields.
var lbaOnlyCHS = [3]byte{0xFE, 0xFF, 0xFF}

// Sentinel errors for disks that Grow rejects before it writes anything.
var (
	ErrNoMBR             = errors.New("no MBR boot signature 0x55AA in sector 0")
	ErrNotLast           = errors.New("partition 4 is not the last partition on the disk")
	ErrNoPartition       = errors.New("partition 4 is missing from the MBR")
	ErrUnsupportedLayout = errors.New("partition 4 is not a plain ext4 data partition")
)

// partitionEntry is one decoded entry of the MBR partition table.
type partitionEntry struct {
	Type     byte
	FirstLBA uint32
	Sectors  uint32
}

// End returns the first sector after the partition.
func (e partitionEntry) End() uint64 {
	return uint64(e.FirstLBA) + uint64(e.Sectors)
}

func (e partitionEntry) used() bool {
	return e.Type != 0 && e.Sectors != 0
}

// parseMBR decodes the four primary partition entries of the MBR in sector.
func parseMBR(sector []byte) ([4]partitionEntry, error) {
	var entries [4]partitionEntry
	if len(sector) < mbrSize {
		return entries, fmt.Errorf("reading MBR: got %d bytes, want %d", len(sector), mbrSize)
	}
	if sector[bootSignatureOff] != 0x55 || sector[bootSignatureOff+1] != 0xAA {
		return entries, fmt.Errorf("reading MBR: found %#02x %#02x at byte 510: %w",
			sector[bootSignatureOff], sector[bootSignatureOff+1], ErrNoMBR)
	}
	for i := range entries {
		raw := sector[partitionTableOff+i*partitionEntrySize:][:partitionEntrySize]
		entries[i] = partitionEntry{
			Type:     raw[entryTypeOff],
			FirstLBA: binary.LittleEndian.Uint32(raw[entryFirstLBAOff:]),
			Sectors:  binary.LittleEndian.Uint32(raw[entrySectorsOff:]),
		}
	}
	return entries, nil
}

// diskSignature returns the 32-bit disk signature at byte 440, which Linux
// prints as the first part of an MBR PARTUUID ("1a2b3c4d-02").
func diskSignature(sector []byte) uint32 {
	return binary.LittleEndian.Uint32(sector[diskSignatureOff:])
}

// checkPermEntry rejects tables where partition 4 is missing, is not a plain
// data partition, or does not come after every other partition.
func checkPermEntry(entries [4]partitionEntry) error {
	perm := entries[permIndex]
	if !perm.used() {
		return ErrNoPartition
	}
	if perm.FirstLBA == 0 {
		return fmt.Errorf("partition 4 starts at sector 0, over the MBR itself: %w", ErrUnsupportedLayout)
	}
	switch perm.Type {
	case 0x05, 0x0F, 0x85:
		return fmt.Errorf("partition 4 has type %#02x, an extended partition: %w", perm.Type, ErrUnsupportedLayout)
	case 0xEE:
		return fmt.Errorf("partition 4 has type 0xee, a GPT protective entry (this disk uses GPT, which Grow does not handle): %w", ErrUnsupportedLayout)
	}
	for i, e := range entries[:permIndex] {
		if !e.used() {
			continue
		}
		if e.End() > uint64(perm.FirstLBA) {
			return fmt.Errorf("partition %d ends at sector %d, after partition 4 starts at sector %d: %w",
				i+1, e.End(), perm.FirstLBA, ErrNotLast)
		}
	}
	return nil
}

// growPlan is the change to partition 4 for one disk, in logical sectors.
type growPlan struct {
	Old, New partitionEntry
}

// Grows reports whether the table entry needs rewriting.
func (p growPlan) Grows() bool {
	return p.New.Sectors != p.Old.Sectors
}

// planPermGrowth computes the new size of partition 4 so that it ends at the
// last 1 MiB boundary of the disk, or of the MBR's 2^32-sector limit. Within
// 1 MiB of that end the partition is left as it is.
func planPermGrowth(entries [4]partitionEntry, diskSectors uint64, sectorSize uint32) (growPlan, error) {
	if err := checkPermEntry(entries); err != nil {
		return growPlan{}, err
	}
	perm := entries[permIndex]
	plan := growPlan{Old: perm, New: perm}

	if perm.End() > diskSectors {
		return plan, fmt.Errorf("partition 4 ends at sector %d, beyond the disk's %d sectors: the disk is smaller than the image written to it",
			perm.End(), diskSectors)
	}

	limit := min(diskSectors, maxMBREnd)
	sectorsPerMiB := uint64(mib / sectorSize)
	if limit-perm.End() < sectorsPerMiB {
		return plan, nil
	}

	// The end moves down to a 1 MiB boundary, which keeps the partition
	// aligned to SD card erase blocks; limit-End >= 1 MiB means the aligned
	// end still lies after the current end.
	alignedEnd := limit / sectorsPerMiB * sectorsPerMiB
	plan.New.Sectors = uint32(alignedEnd - uint64(perm.FirstLBA))
	return plan, nil
}

// setEntrySectors rewrites the sector count of the partition entry at index
// in sector and marks its last-sector CHS address as LBA-only. All other bytes,
// including the boot code and the disk signature, stay as they are.
func setEntrySectors(sector []byte, index int, sectors uint32) {
	raw := sector[partitionTableOff+index*partitionEntrySize:][:partitionEntrySize]
	copy(raw[entryLastCHSOff:], lbaOnlyCHS[:])
	binary.LittleEndian.PutUint32(raw[entrySectorsOff:], sectors)
}
