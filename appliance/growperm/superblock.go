package growperm

import (
	"encoding/binary"
	"fmt"
)

// The ext4 superblock starts 1024 bytes into the partition. Field offsets
// follow the Linux kernel's Documentation/filesystems/ext4/super.rst.
const (
	superblockOff  = 1024
	superblockSize = 1024

	sbBlocksCountLo    = 0x04
	sbFirstDataBlock   = 0x14
	sbLogBlockSize     = 0x18
	sbLogClusterSize   = 0x1C
	sbBlocksPerGroup   = 0x20
	sbInodesPerGroup   = 0x28
	sbMagic            = 0x38
	sbInodeSize        = 0x58
	sbFeatureIncompat  = 0x60
	sbFeatureROCompat  = 0x64
	sbReservedGDT      = 0xCE
	sbDescSize         = 0xFE
	sbBlocksCountHi    = 0x150
	ext4Magic          = 0xEF53
	incompat64Bit      = 0x80
	roCompatBigalloc   = 0x200
	minGroupDescSize   = 32
	maxLogBlockSize    = 6 // 64 KiB blocks
	ext4BlockSizeShift = 10
)

// superblock holds the ext4 superblock fields that decide whether an online
// resize would grow the file system.
type superblock struct {
	BlocksCount       uint64
	BlockSize         uint64
	FirstDataBlock    uint64
	BlocksPerGroup    uint64
	InodesPerGroup    uint64
	InodeSize         uint64
	ClusterRatio      uint64
	DescSize          uint64
	ReservedGDTBlocks uint64
}

// Bytes returns the size of the file system.
func (sb superblock) Bytes() int64 {
	return int64(sb.BlocksCount * sb.BlockSize)
}

// parseSuperblock decodes the 1024-byte ext4 superblock in raw.
func parseSuperblock(raw []byte) (superblock, error) {
	if len(raw) < superblockSize {
		return superblock{}, fmt.Errorf("reading ext4 superblock: got %d bytes, want %d", len(raw), superblockSize)
	}
	le := binary.LittleEndian
	if magic := le.Uint16(raw[sbMagic:]); magic != ext4Magic {
		return superblock{}, fmt.Errorf("reading ext4 superblock: magic is %#04x, want %#04x: %w", magic, ext4Magic, ErrUnsupportedLayout)
	}

	logBlock := le.Uint32(raw[sbLogBlockSize:])
	logCluster := le.Uint32(raw[sbLogClusterSize:])
	if logBlock > maxLogBlockSize || logCluster > maxLogBlockSize+16 {
		return superblock{}, fmt.Errorf("reading ext4 superblock: invalid log block size %d or log cluster size %d", logBlock, logCluster)
	}
	sb := superblock{
		BlocksCount:       uint64(le.Uint32(raw[sbBlocksCountLo:])),
		BlockSize:         1 << (ext4BlockSizeShift + logBlock),
		FirstDataBlock:    uint64(le.Uint32(raw[sbFirstDataBlock:])),
		BlocksPerGroup:    uint64(le.Uint32(raw[sbBlocksPerGroup:])),
		InodesPerGroup:    uint64(le.Uint32(raw[sbInodesPerGroup:])),
		InodeSize:         uint64(le.Uint16(raw[sbInodeSize:])),
		ClusterRatio:      1,
		DescSize:          minGroupDescSize,
		ReservedGDTBlocks: uint64(le.Uint16(raw[sbReservedGDT:])),
	}
	if le.Uint32(raw[sbFeatureIncompat:])&incompat64Bit != 0 {
		sb.BlocksCount |= uint64(le.Uint32(raw[sbBlocksCountHi:])) << 32
		sb.DescSize = max(uint64(le.Uint16(raw[sbDescSize:])), minGroupDescSize)
	}
	if le.Uint32(raw[sbFeatureROCompat:])&roCompatBigalloc != 0 && logCluster >= logBlock {
		sb.ClusterRatio = 1 << (logCluster - logBlock)
	}
	if sb.BlocksPerGroup == 0 || sb.InodeSize == 0 || sb.BlocksCount == 0 {
		return superblock{}, fmt.Errorf("reading ext4 superblock: blocks count %d, blocks per group %d or inode size %d is zero",
			sb.BlocksCount, sb.BlocksPerGroup, sb.InodeSize)
	}
	return sb, nil
}

// growSlack returns the number of blocks an online resize to newBlocks may
// leave unused at the end. Linux (fs/ext4/resize.c, ext4_resize_fs) drops a
// last block group too small for its own metadata: the superblock backup,
// group descriptors, reserved GDT blocks, two bitmaps and the inode table.
// A gap of at most this size is what a finished resize looks like, so Grow
// does not resize again at every boot.
func (sb superblock) growSlack(newBlocks uint64) uint64 {
	groups := ceilDiv(newBlocks-min(newBlocks, sb.FirstDataBlock), sb.BlocksPerGroup)
	gdtBlocks := ceilDiv(groups*sb.DescSize, sb.BlockSize)
	inodeTableBlocks := ceilDiv(sb.InodesPerGroup*sb.InodeSize, sb.BlockSize)
	const superblockAndBitmaps = 3
	return superblockAndBitmaps + gdtBlocks + sb.ReservedGDTBlocks + inodeTableBlocks + sb.ClusterRatio
}

// needsGrowth reports whether a partition of partBytes has room for the file
// system to grow by more than growSlack.
func (sb superblock) needsGrowth(partBytes int64) bool {
	partBlocks := uint64(partBytes) / sb.BlockSize
	if partBlocks <= sb.BlocksCount {
		return false
	}
	return partBlocks-sb.BlocksCount > sb.growSlack(partBlocks)
}

func ceilDiv(a, b uint64) uint64 {
	return (a + b - 1) / b
}
