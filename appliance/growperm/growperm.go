// Package growperm grows the /perm partition (MBR partition 4, ext4) and its
// mounted file system to the end of the disk at boot, so that an image flashed
// to a larger SD card uses the whole card. It needs neither a shell nor
// e2fsprogs: the kernel resizes the mounted file system online.
package growperm

// Result describes what Grow found and changed. Sizes are in bytes.
type Result struct {
	Disk      string // the whole-disk device, e.g. /dev/mmcblk0
	Partition string // the kernel name of partition 4, e.g. mmcblk0p4; empty for a disk image file
	DiskBytes int64

	// OldPartitionBytes and NewPartitionBytes are the size of partition 4 in
	// the MBR before and after Grow. They are equal when the table needed no
	// change.
	OldPartitionBytes int64
	NewPartitionBytes int64

	// OldFileSystemBytes and NewFileSystemBytes are the ext4 block count
	// times the block size, before and after Grow. Both are zero when the
	// disk is an image file, because no file system is mounted from it.
	OldFileSystemBytes int64
	NewFileSystemBytes int64

	TableRewritten    bool // partition 4's MBR entry was rewritten
	KernelUpdated     bool // BLKPG_RESIZE_PARTITION set the kernel's size of partition 4
	FileSystemResized bool // the mounted ext4 was resized
}

// Changed reports whether Grow changed anything. False means there was
// nothing to do.
func (r Result) Changed() bool {
	return r.TableRewritten || r.KernelUpdated || r.FileSystemResized
}
