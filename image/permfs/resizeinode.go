package permfs

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Fields of the superblock and of an inode that the resize inode repair
// reads, from the ext4 disk layout in the Linux kernel's
// Documentation/filesystems/ext4.
const (
	sbFeatureCompat     = 0x5c
	sbFeatureIncompat   = 0x60
	sbReservedGdtBlocks = 0xce
	sbBlocksCountHi     = 0x150

	compatResizeInode   = 0x10
	incompat64Bit       = 0x80
	roCompatSparseSuper = 0x01

	resizeIno           = 7
	inodeSizeLo         = 0x04
	inodeBlock          = 0x28 // i_block[15], 4 bytes each
	inodeSizeHigh       = 0x6c
	doubleIndirectIndex = 13
	directBlocks        = 12
)

// fsGeometry is the block group layout of an ext4 file system, read from its
// superblock and group 0's descriptor.
type fsGeometry struct {
	blockSize      uint64
	firstDataBlock uint64
	blocksPerGroup uint64
	blocksCount    uint64
	groups         uint64
	descBlocks     uint64 // blocks of group descriptors after the superblock
	reservedGDT    uint64 // s_reserved_gdt_blocks
	resizeInode    bool
	sparseSuper    bool
	inodeSize      uint64
	inodeTable0    uint64 // first block of group 0's inode table
}

// addrPerBlock returns the number of block numbers an indirect block holds.
func (g fsGeometry) addrPerBlock() uint64 { return g.blockSize / 4 }

// primaryReserved returns the block number of reserved GDT block r of group 0.
func (g fsGeometry) primaryReserved(r uint64) uint64 {
	return g.firstDataBlock + 1 + g.descBlocks + r
}

// readFSGeometry reads the superblock at byte 1024 and group 0's descriptor.
func readFSGeometry(dev readWriterAt) (fsGeometry, error) {
	sb := make([]byte, 1024)
	if _, err := dev.ReadAt(sb, 1024); err != nil {
		return fsGeometry{}, err
	}
	le := binary.LittleEndian
	if le.Uint16(sb[sbMagic:]) != 0xef53 {
		return fsGeometry{}, fmt.Errorf("no ext4 superblock at byte 1024")
	}
	g := fsGeometry{
		blockSize:      1024 << le.Uint32(sb[sbLogBlockSize:]),
		firstDataBlock: uint64(le.Uint32(sb[sbFirstDataBlock:])),
		blocksPerGroup: uint64(le.Uint32(sb[sbBlocksPerGroup:])),
		reservedGDT:    uint64(le.Uint16(sb[sbReservedGdtBlocks:])),
		resizeInode:    le.Uint32(sb[sbFeatureCompat:])&compatResizeInode != 0,
		sparseSuper:    le.Uint32(sb[sbFeatureRoCompat:])&roCompatSparseSuper != 0,
		inodeSize:      uint64(le.Uint16(sb[sbInodeSize:])),
	}
	if g.blocksPerGroup == 0 || g.inodeSize == 0 {
		return fsGeometry{}, fmt.Errorf("superblock has %d blocks per group and inode size %d, want both nonzero", g.blocksPerGroup, g.inodeSize)
	}

	g.blocksCount = uint64(le.Uint32(sb[sbBlocksCountLo:]))
	descSize := uint64(32)
	is64Bit := le.Uint32(sb[sbFeatureIncompat:])&incompat64Bit != 0
	if is64Bit {
		g.blocksCount |= uint64(le.Uint32(sb[sbBlocksCountHi:])) << 32
		descSize = max(descSize, uint64(le.Uint16(sb[sbDescSize:])))
	}
	g.groups = ceilDiv(g.blocksCount-g.firstDataBlock, g.blocksPerGroup)
	g.descBlocks = ceilDiv(g.groups*descSize, g.blockSize)

	desc := make([]byte, descSize)
	if _, err := dev.ReadAt(desc, int64((g.firstDataBlock+1)*g.blockSize)); err != nil {
		return fsGeometry{}, fmt.Errorf("reading group 0 descriptor: %w", err)
	}
	g.inodeTable0 = uint64(le.Uint32(desc[8:]))
	if is64Bit && descSize >= 64 {
		g.inodeTable0 |= uint64(le.Uint32(desc[0x28:])) << 32
	}
	return g, nil
}

// fixResizeInode rewrites the double-indirect block of the resize inode in
// the order that Linux expects, and sets the inode's size as mke2fs does.
//
// The resize inode maps each reserved GDT block of group 0 as an indirect
// block, whose entries are that block's backups in the groups with a
// superblock copy. Linux's online resize (reserve_backup_gdb in
// fs/ext4/resize.c) looks up reserved GDT block r at index
// (GDT blocks + r) mod (block size / 4) of the double-indirect block and
// fails with EINVAL when another block is there. go-diskfs v1.9.4 wraps the
// index at 256 instead, which is right only for 1 KiB blocks: with 4 KiB
// blocks, one GDT block and 256 reserved ones, block 257 lands at index 0
// instead of 256. e2fsck does not notice, because it checks only the first
// quarter of the entries.
//
// fixResizeInode only reorders the entries, so block counts and bitmaps stay
// right. It returns an error if the last block group is too small for its
// backup of the superblock and GDT, if the double-indirect block holds other
// blocks than the reserved GDT blocks, or if a reserved GDT block does not
// list its backups, because then go-diskfs made another layout than the one
// this repair expects.
func fixResizeInode(dev readWriterAt) error {
	g, err := readFSGeometry(dev)
	if err != nil {
		return err
	}
	if !g.resizeInode || g.reservedGDT == 0 {
		return nil
	}
	if !g.sparseSuper {
		return fmt.Errorf("file system lacks sparse_super, so every group has a backup, which this repair does not handle")
	}

	if err := checkLastGroupFits(g); err != nil {
		return err
	}

	inode := make([]byte, g.inodeSize)
	inodeOff := int64(g.inodeTable0*g.blockSize + (resizeIno-1)*g.inodeSize)
	if _, err := dev.ReadAt(inode, inodeOff); err != nil {
		return fmt.Errorf("reading resize inode: %w", err)
	}
	dindBlock := uint64(binary.LittleEndian.Uint32(inode[inodeBlock+4*doubleIndirectIndex:]))
	if dindBlock == 0 {
		return fmt.Errorf("resize inode has no double-indirect block")
	}
	dind := make([]byte, g.blockSize)
	if _, err := dev.ReadAt(dind, int64(dindBlock*g.blockSize)); err != nil {
		return fmt.Errorf("reading resize inode's double-indirect block %d: %w", dindBlock, err)
	}

	want := g.resizeDoubleIndirect()
	if err := checkSamePointers(dind, want); err != nil {
		return fmt.Errorf("resize inode's double-indirect block %d: %w", dindBlock, err)
	}
	if err := checkBackupLists(dev, g); err != nil {
		return err
	}
	if _, err := dev.WriteAt(want, int64(dindBlock*g.blockSize)); err != nil {
		return fmt.Errorf("writing resize inode's double-indirect block %d: %w", dindBlock, err)
	}

	// mke2fs (ext2fs_create_resize_inode) sizes the inode to cover every
	// block its double-indirect block can map; go-diskfs stops short of the
	// logical blocks behind index 256.
	size := (g.addrPerBlock()*g.addrPerBlock() + g.addrPerBlock() + directBlocks) * g.blockSize
	binary.LittleEndian.PutUint32(inode[inodeSizeLo:], uint32(size))
	binary.LittleEndian.PutUint32(inode[inodeSizeHigh:], uint32(size>>32))
	if _, err := dev.WriteAt(inode, inodeOff); err != nil {
		return fmt.Errorf("writing resize inode: %w", err)
	}
	return nil
}

// resizeDoubleIndirect returns the double-indirect block that Linux expects:
// reserved GDT block r at index (descBlocks + r) mod addrPerBlock.
func (g fsGeometry) resizeDoubleIndirect() []byte {
	block := make([]byte, g.blockSize)
	for r := range g.reservedGDT {
		index := (g.descBlocks + r) % g.addrPerBlock()
		binary.LittleEndian.PutUint32(block[4*index:], uint32(g.primaryReserved(r)))
	}
	return block
}

// checkSamePointers returns an error unless the indirect blocks got and want
// hold the same nonzero block numbers, in any order.
func checkSamePointers(got, want []byte) error {
	gotBlocks, wantBlocks := blockNumbers(got), blockNumbers(want)
	if !slices.Equal(gotBlocks, wantBlocks) {
		return fmt.Errorf("got %d block numbers (%v), want the %d reserved GDT blocks %v",
			len(gotBlocks), abbreviate(gotBlocks), len(wantBlocks), abbreviate(wantBlocks))
	}
	return nil
}

// blockNumbers returns the nonzero 32-bit block numbers in an indirect
// block, sorted.
func blockNumbers(block []byte) []uint32 {
	var list []uint32
	for i := 0; i+4 <= len(block); i += 4 {
		if n := binary.LittleEndian.Uint32(block[i:]); n != 0 {
			list = append(list, n)
		}
	}
	slices.Sort(list)
	return list
}

// abbreviate shortens a list of block numbers for an error message.
func abbreviate(list []uint32) string {
	if len(list) <= 6 {
		return fmt.Sprint(list)
	}
	return fmt.Sprintf("%v ... %v", list[:3], list[len(list)-3:])
}

// checkBackupLists checks that every reserved GDT block of group 0 lists its
// backups in the groups with a superblock copy, ascending, followed by
// zeros, which verify_reserved_gdb in Linux's fs/ext4/resize.c requires.
func checkBackupLists(dev readWriterAt, g fsGeometry) error {
	backups := backupGroups(g.groups)
	block := make([]byte, g.blockSize)
	for r := range g.reservedGDT {
		primary := g.primaryReserved(r)
		if _, err := dev.ReadAt(block, int64(primary*g.blockSize)); err != nil {
			return fmt.Errorf("reading reserved GDT block %d: %w", primary, err)
		}
		for i := range g.addrPerBlock() {
			want := uint64(0)
			if i < uint64(len(backups)) {
				want = primary + backups[i]*g.blocksPerGroup
			}
			if got := uint64(binary.LittleEndian.Uint32(block[4*i:])); got != want {
				return fmt.Errorf("reserved GDT block %d: entry %d is %d, want %d", primary, i, got, want)
			}
		}
	}
	return nil
}

// checkLastGroupFits returns an error if the last block group holds a
// superblock backup but ends before its reserved GDT blocks do. go-diskfs
// v1.9.4 writes such a group, which e2fsck rejects, where mke2fs would
// leave the group out and make the file system smaller.
func checkLastGroupFits(g fsGeometry) error {
	last := g.groups - 1
	if !slices.Contains(backupGroups(g.groups), last) {
		return nil
	}
	start := g.firstDataBlock + last*g.blocksPerGroup
	need := 1 + g.descBlocks + g.reservedGDT
	if have := g.blocksCount - start; have < need {
		return fmt.Errorf("last block group %d has %d blocks, fewer than the %d of its superblock and GDT backup: "+
			"choose a size that is a multiple of %d bytes or leaves the last group at least %d blocks",
			last, have, need, g.blocksPerGroup*g.blockSize, need)
	}
	return nil
}

// backupGroups returns the groups below groups that hold a superblock
// backup under sparse_super: 1 and the powers of 3, 5 and 7, ascending.
func backupGroups(groups uint64) []uint64 {
	var list []uint64
	for _, base := range []uint64{3, 5, 7} {
		for g := uint64(1); g < groups; g *= base {
			if !slices.Contains(list, g) {
				list = append(list, g)
			}
		}
	}
	slices.Sort(list)
	return list
}

func ceilDiv(a, b uint64) uint64 {
	return (a + b - 1) / b
}
