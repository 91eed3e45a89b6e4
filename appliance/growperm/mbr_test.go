package growperm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// makeMBR returns sector 0 with boot code of a recognizable pattern, the disk
// signature and the given partition entries.
func makeMBR(signature uint32, entries [4]partitionEntry) []byte {
	sector := make([]byte, mbrSize)
	for i := range diskSignatureOff {
		sector[i] = byte(i*7 + 1)
	}
	binary.LittleEndian.PutUint32(sector[diskSignatureOff:], signature)
	for i, e := range entries {
		raw := sector[partitionTableOff+i*partitionEntrySize:][:partitionEntrySize]
		if !e.used() {
			continue
		}
		copy(raw[1:4], []byte{0x20, 0x21, 0x00}) // a first-sector CHS value that must survive
		raw[entryTypeOff] = e.Type
		copy(raw[entryLastCHSOff:], []byte{0x12, 0x34, 0x56})
		binary.LittleEndian.PutUint32(raw[entryFirstLBAOff:], e.FirstLBA)
		binary.LittleEndian.PutUint32(raw[entrySectorsOff:], e.Sectors)
	}
	sector[bootSignatureOff] = 0x55
	sector[bootSignatureOff+1] = 0xAA
	return sector
}

// imageEntries is the layout of a Heimwolke image of about 1 GiB: boot FAT,
// two root squashfs partitions and /perm.
var imageEntries = [4]partitionEntry{
	{Type: 0x0C, FirstLBA: 2048, Sectors: 200 * 2048},
	{Type: 0x83, FirstLBA: 201 * 2048, Sectors: 300 * 2048},
	{Type: 0x83, FirstLBA: 501 * 2048, Sectors: 300 * 2048},
	{Type: 0x83, FirstLBA: 801 * 2048, Sectors: 223 * 2048},
}

func TestParseMBR(t *testing.T) {
	sector := makeMBR(0x1a2b3c4d, imageEntries)
	entries, err := parseMBR(sector)
	if err != nil {
		t.Fatalf("parseMBR: %v", err)
	}
	if entries != imageEntries {
		t.Errorf("parseMBR = %+v, want %+v", entries, imageEntries)
	}
	if got := diskSignature(sector); got != 0x1a2b3c4d {
		t.Errorf("diskSignature = %08x, want 1a2b3c4d", got)
	}
}

func TestParseMBRRejectsMissingSignature(t *testing.T) {
	sector := makeMBR(1, imageEntries)
	sector[bootSignatureOff+1] = 0
	if _, err := parseMBR(sector); !errors.Is(err, ErrNoMBR) {
		t.Errorf("parseMBR without 0x55AA: got error %v, want %v", err, ErrNoMBR)
	}
	if _, err := parseMBR(sector[:100]); err == nil {
		t.Error("parseMBR of 100 bytes: got no error, want one")
	}
}

func TestPlanPermGrowth(t *testing.T) {
	const gib = 1 << 30
	permEnd := imageEntries[permIndex].End()
	withPerm := func(perm partitionEntry) [4]partitionEntry {
		entries := imageEntries
		entries[permIndex] = perm
		return entries
	}

	tests := []struct {
		name        string
		entries     [4]partitionEntry
		diskSectors uint64
		sectorSize  uint32
		wantSectors uint32
	}{{
		name:        "32 GiB card",
		entries:     imageEntries,
		diskSectors: 32 * gib / 512,
		sectorSize:  512,
		wantSectors: uint32(32*gib/512 - 801*2048),
	}, {
		name:        "unaligned card end rounds down to MiB",
		entries:     imageEntries,
		diskSectors: 30436*2048 + 1500,
		sectorSize:  512,
		wantSectors: uint32(30436*2048 - 801*2048),
	}, {
		name:        "card the size of the image",
		entries:     imageEntries,
		diskSectors: permEnd,
		sectorSize:  512,
		wantSectors: imageEntries[permIndex].Sectors,
	}, {
		name:        "less than 1 MiB left",
		entries:     imageEntries,
		diskSectors: permEnd + 2047,
		sectorSize:  512,
		wantSectors: imageEntries[permIndex].Sectors,
	}, {
		name:        "exactly 1 MiB left",
		entries:     imageEntries,
		diskSectors: permEnd + 2048,
		sectorSize:  512,
		wantSectors: imageEntries[permIndex].Sectors + 2048,
	}, {
		name:        "3 TiB disk stops at the MBR limit",
		entries:     imageEntries,
		diskSectors: 3 * 1024 * gib / 512,
		sectorSize:  512,
		wantSectors: uint32(maxMBREnd - 801*2048),
	}, {
		name:        "partition already at the MBR limit",
		entries:     withPerm(partitionEntry{Type: 0x83, FirstLBA: 801 * 2048, Sectors: maxMBREnd - 801*2048}),
		diskSectors: 3 * 1024 * gib / 512,
		sectorSize:  512,
		wantSectors: maxMBREnd - 801*2048,
	}, {
		name: "4096-byte sectors",
		entries: [4]partitionEntry{
			{Type: 0x0C, FirstLBA: 256, Sectors: 256},
			{}, {},
			{Type: 0x83, FirstLBA: 512, Sectors: 1000},
		},
		diskSectors: 8*gib/4096 + 100,
		sectorSize:  4096,
		wantSectors: 8*gib/4096 - 512,
	}, {
		name: "empty partition slots before /perm",
		entries: [4]partitionEntry{
			{Type: 0x0C, FirstLBA: 2048, Sectors: 2048},
			{}, {},
			{Type: 0x83, FirstLBA: 4096, Sectors: 2048},
		},
		diskSectors: 16 * 2048,
		sectorSize:  512,
		wantSectors: 14 * 2048,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := planPermGrowth(tt.entries, tt.diskSectors, tt.sectorSize)
			if err != nil {
				t.Fatalf("planPermGrowth: %v", err)
			}
			if plan.New.Sectors != tt.wantSectors {
				t.Errorf("new sectors = %d, want %d", plan.New.Sectors, tt.wantSectors)
			}
			if plan.New.FirstLBA != plan.Old.FirstLBA {
				t.Errorf("new start = %d, want the old start %d", plan.New.FirstLBA, plan.Old.FirstLBA)
			}
			if got, want := plan.Grows(), tt.wantSectors != tt.entries[permIndex].Sectors; got != want {
				t.Errorf("Grows() = %v, want %v", got, want)
			}
		})
	}
}

func TestPlanPermGrowthRejects(t *testing.T) {
	tests := []struct {
		name        string
		entries     [4]partitionEntry
		diskSectors uint64
		want        error
	}{{
		name: "partition 4 before partition 3",
		entries: [4]partitionEntry{
			{Type: 0x0C, FirstLBA: 2048, Sectors: 2048},
			{Type: 0x83, FirstLBA: 4096, Sectors: 2048},
			{Type: 0x83, FirstLBA: 10240, Sectors: 2048},
			{Type: 0x83, FirstLBA: 6144, Sectors: 2048},
		},
		diskSectors: 1 << 20,
		want:        ErrNotLast,
	}, {
		name: "partition 4 overlaps partition 1",
		entries: [4]partitionEntry{
			{Type: 0x0C, FirstLBA: 2048, Sectors: 8192},
			{}, {},
			{Type: 0x83, FirstLBA: 6144, Sectors: 2048},
		},
		diskSectors: 1 << 20,
		want:        ErrNotLast,
	}, {
		name: "no partition 4",
		entries: [4]partitionEntry{
			{Type: 0x0C, FirstLBA: 2048, Sectors: 2048},
		},
		diskSectors: 1 << 20,
		want:        ErrNoPartition,
	}, {
		name: "extended partition 4",
		entries: [4]partitionEntry{
			{Type: 0x0C, FirstLBA: 2048, Sectors: 2048},
			{}, {},
			{Type: 0x0F, FirstLBA: 4096, Sectors: 2048},
		},
		diskSectors: 1 << 20,
		want:        ErrUnsupportedLayout,
	}, {
		name: "GPT protective entry",
		entries: [4]partitionEntry{
			{}, {}, {},
			{Type: 0xEE, FirstLBA: 1, Sectors: 1<<32 - 1},
		},
		diskSectors: 1 << 20,
		want:        ErrUnsupportedLayout,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := planPermGrowth(tt.entries, tt.diskSectors, 512)
			if !errors.Is(err, tt.want) {
				t.Errorf("planPermGrowth: got error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestPlanPermGrowthRejectsDiskSmallerThanImage(t *testing.T) {
	_, err := planPermGrowth(imageEntries, imageEntries[permIndex].End()-1, 512)
	if err == nil {
		t.Fatal("planPermGrowth on a disk that ends inside partition 4: got no error, want one")
	}
}

func TestSetEntrySectors(t *testing.T) {
	sector := makeMBR(0xdeadbeef, imageEntries)
	original := bytes.Clone(sector)

	setEntrySectors(sector, permIndex, 0x01020304)

	if !bytes.Equal(sector[:partitionTableOff], original[:partitionTableOff]) {
		t.Error("boot code, disk signature or reserved bytes changed")
	}
	permOff := partitionTableOff + permIndex*partitionEntrySize
	if !bytes.Equal(sector[partitionTableOff:permOff], original[partitionTableOff:permOff]) {
		t.Error("entries of partitions 1 to 3 changed")
	}
	if !bytes.Equal(sector[bootSignatureOff:], []byte{0x55, 0xAA}) {
		t.Errorf("boot signature = % x, want 55 aa", sector[bootSignatureOff:])
	}

	entry := sector[permOff:][:partitionEntrySize]
	if !bytes.Equal(entry[:entryLastCHSOff], original[permOff:permOff+entryLastCHSOff]) {
		t.Errorf("status, first CHS and type = % x, want the original % x", entry[:entryLastCHSOff], original[permOff:permOff+entryLastCHSOff])
	}
	if got := entry[entryLastCHSOff:entryFirstLBAOff]; !bytes.Equal(got, lbaOnlyCHS[:]) {
		t.Errorf("last CHS = % x, want fe ff ff", got)
	}
	if got := entry[entryFirstLBAOff:entrySectorsOff]; !bytes.Equal(got, original[permOff+entryFirstLBAOff:permOff+entrySectorsOff]) {
		t.Errorf("first LBA = % x, want the original", got)
	}
	if got := binary.LittleEndian.Uint32(entry[entrySectorsOff:]); got != 0x01020304 {
		t.Errorf("sectors = %#x, want 0x01020304", got)
	}

	entries, err := parseMBR(sector)
	if err != nil {
		t.Fatalf("parseMBR after rewrite: %v", err)
	}
	if entries[permIndex].Sectors != 0x01020304 || entries[permIndex].FirstLBA != imageEntries[permIndex].FirstLBA {
		t.Errorf("partition 4 after rewrite = %+v, want start %d and 0x01020304 sectors", entries[permIndex], imageEntries[permIndex].FirstLBA)
	}
}

// FuzzPlanPermGrowth checks that any sector 0 either is rejected or gives a
// plan that keeps the start, only grows, and ends at or before the disk end
// on a 1 MiB boundary.
func FuzzPlanPermGrowth(f *testing.F) {
	f.Add(makeMBR(1, imageEntries), uint64(1<<26))
	f.Add(makeMBR(2, imageEntries), uint64(1<<40))
	f.Add(make([]byte, mbrSize), uint64(1<<26))
	f.Fuzz(func(t *testing.T, sector []byte, diskSectors uint64) {
		entries, err := parseMBR(sector)
		if err != nil {
			return
		}
		plan, err := planPermGrowth(entries, diskSectors, 512)
		if err != nil || !plan.Grows() {
			return
		}
		if plan.New.FirstLBA != plan.Old.FirstLBA {
			t.Fatalf("start moved from %d to %d", plan.Old.FirstLBA, plan.New.FirstLBA)
		}
		if plan.New.Sectors <= plan.Old.Sectors {
			t.Fatalf("sectors went from %d to %d, want growth", plan.Old.Sectors, plan.New.Sectors)
		}
		if end := plan.New.End(); end > min(diskSectors, maxMBREnd) || end%2048 != 0 {
			t.Fatalf("new end %d is beyond the disk's %d sectors or not on a 1 MiB boundary", end, diskSectors)
		}
	})
}
