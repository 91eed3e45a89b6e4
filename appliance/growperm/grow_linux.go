package growperm

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ext4IOCResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64) in the kernel's
// fs/ext4/ext4.h. The direction bits of _IOW are 0x40000000 on amd64, arm and
// arm64 but 0x80000000 on mips and powerpc, so they are copied from
// FS_IOC_SETFLAGS, another _IOW('f', ...) request.
const ext4IOCResizeFS = unix.FS_IOC_SETFLAGS&0xE0000000 | 8<<16 | 'f'<<8 | 16

// Grow extends partition 4 of disk to the end of the disk and then grows the
// ext4 file system mounted from it at permMount. Each step first checks
// whether it is still needed, so Grow is safe to call at every boot and
// finishes the work of a run that was cut short by a power cut:
//
//  1. Rewrite partition 4's MBR entry to end at the disk's last 1 MiB boundary,
//     then fsync the disk.
//  2. Tell the kernel the new partition size with BLKPG_RESIZE_PARTITION.
//  3. Resize the mounted ext4 with EXT4_IOC_RESIZE_FS.
//
// Before writing anything, Grow checks that sector 0 holds an MBR, that
// partition 4 comes last, and that permMount is an ext4 mounted from that
// partition. If disk is a regular file (a disk image), Grow does only step 1
// and ignores permMount.
func Grow(ctx context.Context, disk, permMount string, log *slog.Logger) (Result, error) {
	result := Result{Disk: disk}
	f, err := os.OpenFile(disk, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return result, fmt.Errorf("opening disk: %w", err)
	}
	defer f.Close()

	geometry, err := readGeometry(f)
	if err != nil {
		return result, fmt.Errorf("reading size of %s: %w", disk, err)
	}
	result.DiskBytes = geometry.Bytes

	sector := make([]byte, mbrSize)
	if _, err := f.ReadAt(sector, 0); err != nil {
		return result, fmt.Errorf("reading sector 0 of %s: %w", disk, err)
	}
	entries, err := parseMBR(sector)
	if err != nil {
		return result, fmt.Errorf("%s: %w", disk, err)
	}
	plan, err := planPermGrowth(entries, geometry.Sectors(), geometry.SectorSize)
	if err != nil {
		return result, fmt.Errorf("%s: %w", disk, err)
	}
	result.OldPartitionBytes = geometry.bytesOf(plan.Old.Sectors)
	result.NewPartitionBytes = geometry.bytesOf(plan.New.Sectors)

	if !geometry.BlockDevice {
		return growImage(f, sector, plan, result, log)
	}

	perm, err := findPermPartition(f, permMount, plan.Old, geometry)
	if err != nil {
		return result, err
	}
	result.Partition = perm.Name
	return growMounted(ctx, f, sector, plan, perm, result, log)
}

// growImage rewrites the partition table of a disk image file.
func growImage(f *os.File, sector []byte, plan growPlan, result Result, log *slog.Logger) (Result, error) {
	if !plan.Grows() {
		log.Info("perm partition already spans disk", "disk", result.Disk, "partition_bytes", result.OldPartitionBytes, "disk_bytes", result.DiskBytes)
		return result, nil
	}
	if err := writePermEntry(f, sector, plan); err != nil {
		return result, err
	}
	result.TableRewritten = true
	log.Info("perm partition table entry grown", "disk", result.Disk,
		"old_bytes", result.OldPartitionBytes, "new_bytes", result.NewPartitionBytes)
	return result, nil
}

// growMounted runs the three steps of Grow on a block device whose partition 4
// is mounted.
func growMounted(ctx context.Context, f *os.File, sector []byte, plan growPlan, perm permPartition, result Result, log *slog.Logger) (Result, error) {
	sb, err := readSuperblock(perm.DevicePath)
	if err != nil {
		return result, err
	}
	result.OldFileSystemBytes = sb.Bytes()
	result.NewFileSystemBytes = sb.Bytes()
	log = log.With("disk", result.Disk, "partition", perm.Name)

	if plan.Grows() {
		if err := ctx.Err(); err != nil {
			return result, err
		}
		if err := writePermEntry(f, sector, plan); err != nil {
			return result, err
		}
		result.TableRewritten = true
		log.Info("perm partition table entry grown", "old_bytes", result.OldPartitionBytes, "new_bytes", result.NewPartitionBytes)
	}

	switch {
	case perm.Bytes < result.NewPartitionBytes:
		if err := ctx.Err(); err != nil {
			return result, err
		}
		if err := resizeKernelPartition(f, perm, result.NewPartitionBytes); err != nil {
			return result, err
		}
		result.KernelUpdated = true
		log.Info("perm partition resized in kernel", "old_bytes", perm.Bytes, "new_bytes", result.NewPartitionBytes)
	case perm.Bytes > result.NewPartitionBytes:
		return result, fmt.Errorf("kernel has partition %s at %d bytes, more than the %d bytes in the MBR: reboot so the kernel reads the table again",
			perm.Name, perm.Bytes, result.NewPartitionBytes)
	}

	if !sb.needsGrowth(result.NewPartitionBytes) {
		if !result.Changed() {
			log.Info("perm already spans disk", "partition_bytes", result.NewPartitionBytes, "filesystem_bytes", sb.Bytes())
		}
		return result, nil
	}
	if err := ctx.Err(); err != nil {
		return result, err
	}
	return resizeFileSystem(perm, sb, result, log)
}

// resizeFileSystem grows the ext4 mounted at perm.Mount to fill the partition
// and reads the new size back from the superblock.
func resizeFileSystem(perm permPartition, sb superblock, result Result, log *slog.Logger) (Result, error) {
	blocks := uint64(result.NewPartitionBytes) / sb.BlockSize
	log.Info("perm file system resizing", "old_bytes", sb.Bytes(), "new_bytes", int64(blocks*sb.BlockSize))
	if err := resizeExt4(perm.Mount, blocks); err != nil {
		return result, err
	}

	grown, err := readSuperblock(perm.DevicePath)
	if err != nil {
		return result, err
	}
	result.NewFileSystemBytes = grown.Bytes()
	result.FileSystemResized = grown.BlocksCount > sb.BlocksCount
	if !result.FileSystemResized {
		log.Warn("perm file system did not grow", "filesystem_bytes", grown.Bytes(), "partition_bytes", result.NewPartitionBytes)
		return result, nil
	}
	log.Info("perm file system resized", "old_bytes", sb.Bytes(), "new_bytes", grown.Bytes())
	return result, nil
}

// geometry is the size of a disk or disk image.
type geometry struct {
	Bytes       int64
	SectorSize  uint32 // logical sector size, the unit of MBR sector numbers
	BlockDevice bool
}

func (g geometry) Sectors() uint64 {
	return uint64(g.Bytes) / uint64(g.SectorSize)
}

func (g geometry) bytesOf(sectors uint32) int64 {
	return int64(sectors) * int64(g.SectorSize)
}

// readGeometry returns the size of a block device (BLKGETSIZE64, BLKSSZGET)
// or of a regular file, which counts in 512-byte sectors.
func readGeometry(f *os.File) (geometry, error) {
	info, err := f.Stat()
	if err != nil {
		return geometry{}, err
	}
	if info.Mode().IsRegular() {
		return geometry{Bytes: info.Size(), SectorSize: 512}, nil
	}
	if info.Mode()&os.ModeDevice == 0 || info.Mode()&os.ModeCharDevice != 0 {
		return geometry{}, fmt.Errorf("%s is neither a block device nor a regular file", f.Name())
	}

	size, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		return geometry{}, fmt.Errorf("BLKGETSIZE64: %w", err)
	}
	sectorSize, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		return geometry{}, fmt.Errorf("BLKSSZGET: %w", err)
	}
	if sectorSize < 512 || sectorSize > mib || sectorSize&(sectorSize-1) != 0 {
		return geometry{}, fmt.Errorf("logical sector size %d is not a power of two from 512", sectorSize)
	}
	return geometry{Bytes: int64(size), SectorSize: uint32(sectorSize), BlockDevice: true}, nil
}

// writePermEntry writes sector 0 back with partition 4's new size and
// flushes it to the disk.
func writePermEntry(f *os.File, sector []byte, plan growPlan) error {
	updated := append([]byte(nil), sector...)
	setEntrySectors(updated, permIndex, plan.New.Sectors)
	if _, err := f.WriteAt(updated, 0); err != nil {
		return fmt.Errorf("writing MBR of %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("flushing MBR of %s: %w", f.Name(), err)
	}
	return nil
}

// resizeKernelPartition sets the kernel's length of partition 4 with
// BLKPG_RESIZE_PARTITION (include/uapi/linux/blkpg.h). The kernel allows this
// while the partition is mounted, as long as the start stays the same and the
// partition overlaps no other.
func resizeKernelPartition(disk *os.File, perm permPartition, newBytes int64) error {
	partition := unix.BlkpgPartition{
		Start:  perm.StartBytes,
		Length: newBytes,
		Pno:    permIndex + 1,
	}
	arg := unix.BlkpgIoctlArg{
		Op:      unix.BLKPG_RESIZE_PARTITION,
		Datalen: int32(unsafe.Sizeof(partition)),
		Data:    (*byte)(unsafe.Pointer(&partition)),
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, disk.Fd(), unix.BLKPG, uintptr(unsafe.Pointer(&arg)))
	runtime.KeepAlive(&partition)
	if errno != 0 {
		return fmt.Errorf("resizing partition %s in the kernel to %d bytes (BLKPG_RESIZE_PARTITION): %w", perm.Name, newBytes, errno)
	}
	return nil
}

// resizeExt4 grows the ext4 file system mounted at mount to blocks file
// system blocks (EXT4_IOC_RESIZE_FS). The kernel adds block groups, using the
// reserved GDT blocks of the resize_inode feature or switching to meta_bg
// when there are none left.
//
// NOTE: Linux rejects the resize with EINVAL for an ext4 that go-diskfs
// v1.9.4 made with resize_inode and 4 KiB blocks, because its resize inode
// maps the last reserved GDT block at the wrong index. Without resize_inode
// the same file system grows.
func resizeExt4(mount string, blocks uint64) error {
	dir, err := os.OpenFile(mount, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s to resize its file system: %w", mount, err)
	}
	defer dir.Close()

	_, _, errno := unix.Syscall(unix.SYS_IOCTL, dir.Fd(), ext4IOCResizeFS, uintptr(unsafe.Pointer(&blocks)))
	if errno != 0 {
		return fmt.Errorf("resizing ext4 at %s to %d blocks (EXT4_IOC_RESIZE_FS): %w; the kernel log names the cause", mount, blocks, errno)
	}
	return nil
}

// readSuperblock reads the ext4 superblock from the partition device.
// Reading through the partition's own device node shares the page cache in
// which the mounted ext4 keeps its superblock, so the values are current.
func readSuperblock(device string) (superblock, error) {
	f, err := os.Open(device)
	if err != nil {
		return superblock{}, fmt.Errorf("opening %s to read the ext4 superblock: %w", device, err)
	}
	defer f.Close()
	raw := make([]byte, superblockSize)
	if _, err := f.ReadAt(raw, superblockOff); err != nil {
		return superblock{}, fmt.Errorf("reading ext4 superblock of %s: %w", device, err)
	}
	sb, err := parseSuperblock(raw)
	if err != nil {
		return superblock{}, fmt.Errorf("%s: %w", device, err)
	}
	return sb, nil
}
