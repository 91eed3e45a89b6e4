package mbr

import (
	"encoding/binary"
	"testing"
)

func TestMarshalLayout(t *testing.T) {
	tab := Table{DiskSignature: 0x1a2b3c4d}
	tab.Partitions[0] = Partition{Type: TypeFAT16LBA, Bootable: true, Start: 8192, Sectors: 2048}
	tab.Partitions[3] = Partition{Type: TypeLinux, Start: 10240, Sectors: 4096}
	b, err := tab.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint32(b[440:]); got != 0x1a2b3c4d {
		t.Errorf("disk signature = %#x, want 0x1a2b3c4d", got)
	}
	if b[510] != 0x55 || b[511] != 0xaa {
		t.Errorf("boot signature = %#x %#x, want 0x55 0xaa", b[510], b[511])
	}
	if b[446] != 0x80 || b[446+4] != TypeFAT16LBA {
		t.Errorf("entry 1: flag %#x type %#x, want 0x80 0x0e", b[446], b[446+4])
	}
	if got := binary.LittleEndian.Uint32(b[446+48+8:]); got != 10240 {
		t.Errorf("entry 4 start = %d, want 10240", got)
	}
	if b[446+16+4] != 0 {
		t.Errorf("entry 2 type = %#x, want 0 (unused)", b[446+16+4])
	}
	if got, want := tab.PartUUID(2), "1a2b3c4d-02"; got != want {
		t.Errorf("PartUUID(2) = %q, want %q", got, want)
	}
}

func TestMarshalRejectsOverlap(t *testing.T) {
	tab := Table{}
	tab.Partitions[0] = Partition{Type: TypeLinux, Start: 2048, Sectors: 4096}
	tab.Partitions[1] = Partition{Type: TypeLinux, Start: 4096, Sectors: 4096}
	if _, err := tab.Marshal(); err == nil {
		t.Fatal("Marshal of overlapping partitions succeeded, want an error")
	}
}
