package build

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/heimwolke/heimwolke/image/mbr"
	"github.com/heimwolke/heimwolke/image/permfs"
)

// Partition sizes of the image. gokrazy fixes the numbering: 1 boot, 2 and 3
// the A and B root file systems, 4 /perm.
const (
	mib = 1 << 20
	// firstPartitionOffset leaves room before partition 1, aligned for SD
	// cards' erase blocks.
	firstPartitionOffset = 4 * mib
	bootSize             = 100 * mib
	// rootSize holds a root file system of today's size several times over,
	// so that later updates still fit.
	rootSize = 256 * mib
	// permSize is what the image carries; the box grows /perm to the end of
	// the card at first boot.
	permSize = permfs.MinSize
)

// Layout is where each partition starts in the image, in bytes.
type Layout struct {
	Table              mbr.Table
	Boot, RootA, RootB int64
	Perm, Size         int64
	BootSize, RootSize int64
	PermSize           int64
	RootPartUUID       string
}

// newLayout returns the layout of an image for target. The disk signature is
// derived from the target name, so builds are reproducible and an update
// keeps the signature that root=PARTUUID= refers to.
func newLayout(target string) Layout {
	sum := sha256.Sum256([]byte("heimwolke disk " + target))
	l := Layout{
		Boot:     firstPartitionOffset,
		BootSize: bootSize,
		RootSize: rootSize,
		PermSize: permSize,
	}
	l.RootA = l.Boot + bootSize
	l.RootB = l.RootA + rootSize
	l.Perm = l.RootB + rootSize
	l.Size = l.Perm + permSize

	l.Table.DiskSignature = binary.LittleEndian.Uint32(sum[:4])
	sector := func(b int64) uint32 { return uint32(b / mbr.SectorSize) }
	l.Table.Partitions[0] = mbr.Partition{Type: mbr.TypeFAT16LBA, Bootable: true, Start: sector(l.Boot), Sectors: sector(bootSize)}
	l.Table.Partitions[1] = mbr.Partition{Type: mbr.TypeLinux, Start: sector(l.RootA), Sectors: sector(rootSize)}
	l.Table.Partitions[2] = mbr.Partition{Type: mbr.TypeLinux, Start: sector(l.RootB), Sectors: sector(rootSize)}
	l.Table.Partitions[3] = mbr.Partition{Type: mbr.TypeLinux, Start: sector(l.Perm), Sectors: sector(permSize)}
	l.RootPartUUID = l.Table.PartUUID(2)
	return l
}
