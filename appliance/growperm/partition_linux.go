package growperm

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// sysfsSectorSize is the unit of the start and size files in sysfs, which is
// 512 bytes whatever the disk's logical sector size.
const sysfsSectorSize = 512

// permPartition is partition 4 in the running kernel's partition table.
type permPartition struct {
	Name       string // kernel name, e.g. mmcblk0p4
	DevicePath string // e.g. /dev/mmcblk0p4
	Mount      string
	StartBytes int64
	Bytes      int64 // current size in the kernel, which may lag behind the MBR
}

// findPermPartition checks that mount is an ext4 mounted from partition 4 of
// disk, starting at entry's first sector, and returns the kernel's record of
// it.
func findPermPartition(disk *os.File, mount string, entry partitionEntry, g geometry) (permPartition, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(mount, &fs); err != nil {
		return permPartition{}, fmt.Errorf("statfs %s: %w", mount, err)
	}
	if fs.Type != unix.EXT4_SUPER_MAGIC {
		return permPartition{}, fmt.Errorf("%s has file system type %#x, not ext4: is partition 4 mounted there? %w", mount, fs.Type, ErrUnsupportedLayout)
	}

	var mountStat, diskStat unix.Stat_t
	if err := unix.Stat(mount, &mountStat); err != nil {
		return permPartition{}, fmt.Errorf("stat %s: %w", mount, err)
	}
	if err := unix.Fstat(int(disk.Fd()), &diskStat); err != nil {
		return permPartition{}, fmt.Errorf("stat %s: %w", disk.Name(), err)
	}

	sysDir, err := filepath.EvalSymlinks(sysfsBlockDir(uint64(mountStat.Dev)))
	if err != nil {
		return permPartition{}, fmt.Errorf("finding the device mounted at %s in sysfs: %w", mount, err)
	}
	nodeDir, err := deviceNodeDir(disk.Name())
	if err != nil {
		return permPartition{}, err
	}
	perm := permPartition{
		Name:       filepath.Base(sysDir),
		DevicePath: filepath.Join(nodeDir, filepath.Base(sysDir)),
		Mount:      mount,
	}
	if err := checkPartitionOf(sysDir, uint64(diskStat.Rdev), disk.Name(), mount); err != nil {
		return permPartition{}, err
	}

	startSectors, err := readSysfsInt(filepath.Join(sysDir, "start"))
	if err != nil {
		return permPartition{}, err
	}
	sizeSectors, err := readSysfsInt(filepath.Join(sysDir, "size"))
	if err != nil {
		return permPartition{}, err
	}
	perm.StartBytes = startSectors * sysfsSectorSize
	perm.Bytes = sizeSectors * sysfsSectorSize
	if want := g.bytesOf(entry.FirstLBA); perm.StartBytes != want {
		return permPartition{}, fmt.Errorf("kernel has partition %s starting at byte %d, but the MBR of %s has partition 4 at byte %d: reboot so the kernel reads the table again",
			perm.Name, perm.StartBytes, disk.Name(), want)
	}
	return perm, nil
}

// checkPartitionOf checks that the block device in sysDir is partition 4 of
// the disk whose device number is diskDev.
func checkPartitionOf(sysDir string, diskDev uint64, diskName, mount string) error {
	number, err := readSysfsInt(filepath.Join(sysDir, "partition"))
	if os.IsNotExist(err) {
		return fmt.Errorf("%s is mounted from %s, which is not a partition: mount partition 4 of %s there", mount, filepath.Base(sysDir), diskName)
	}
	if err != nil {
		return err
	}

	parentDev, err := os.ReadFile(filepath.Join(filepath.Dir(sysDir), "dev"))
	if err != nil {
		return fmt.Errorf("reading the disk of %s: %w", filepath.Base(sysDir), err)
	}
	want := fmt.Sprintf("%d:%d", unix.Major(diskDev), unix.Minor(diskDev))
	if got := strings.TrimSpace(string(parentDev)); got != want || number != permIndex+1 {
		return fmt.Errorf("%s is mounted from %s (partition %d of device %s), not from partition 4 of %s (device %s): pass the disk that holds /perm",
			mount, filepath.Base(sysDir), number, got, diskName, want)
	}
	return nil
}

// deviceNodeDir returns the folder of the disk's device node, where the
// partition nodes are too: /dev for /dev/mmcblk0 or for a symbolic link to it
// such as /dev/disk/by-id/mmc-SD32G_0x1234.
func deviceNodeDir(disk string) (string, error) {
	resolved, err := filepath.EvalSymlinks(disk)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", disk, err)
	}
	return filepath.Dir(resolved), nil
}

func sysfsBlockDir(dev uint64) string {
	return fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(dev), unix.Minor(dev))
}

func readSysfsInt(path string) (int64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", path, err)
	}
	return n, nil
}
