package flash

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// host names the kernel interfaces that the safety checks read. Tests point
// it at a fake sysfs tree and fake proc files.
type host struct {
	sysfs     string
	mountinfo string
	swaps     string
}

func localHost() host {
	return host{sysfs: "/sys", mountinfo: "/proc/self/mountinfo", swaps: "/proc/swaps"}
}

// blockDir returns the sysfs folder of the block device name, such as
// /sys/class/block/sdb1. It is a symlink into /sys/devices, where a
// partition's folder sits inside its disk's folder.
func (h host) blockDir(name string) string {
	return filepath.Join(h.sysfs, "class", "block", name)
}

// nameOf returns the kernel name of the block device with the given number,
// read from the /sys/dev/block/MAJOR:MINOR symlink.
func (h host) nameOf(major, minor uint32) (string, error) {
	link, err := os.Readlink(filepath.Join(h.sysfs, "dev", "block", fmt.Sprintf("%d:%d", major, minor)))
	if err != nil {
		return "", fmt.Errorf("finding block device %d:%d in sysfs: %w", major, minor, err)
	}
	return filepath.Base(link), nil
}

// nameOfPath returns the kernel name of the block device at path, after
// resolving symlinks. It returns "" when path is not a block device.
func (h host) nameOfPath(path string) (string, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", err
	}
	info, err := os.Stat(resolved)
	if err != nil {
		return "", err
	}
	if !isBlockDevice(info) {
		return "", nil
	}
	major, minor := deviceNumber(info)
	return h.nameOf(major, minor)
}

// isPartition reports whether name is a partition, which sysfs marks with
// a "partition" attribute holding the partition number.
func (h host) isPartition(name string) bool {
	_, err := os.Stat(filepath.Join(h.blockDir(name), "partition"))
	return err == nil
}

// wholeDisk returns the disk that contains the partition name, or name
// itself when it is not a partition.
func (h host) wholeDisk(name string) (string, error) {
	if !h.isPartition(name) {
		return name, nil
	}
	dir, err := filepath.EvalSymlinks(h.blockDir(name))
	if err != nil {
		return "", fmt.Errorf("finding the disk of partition %s: %w", name, err)
	}
	return filepath.Base(filepath.Dir(dir)), nil
}

// partitions returns the names of the partitions on disk.
func (h host) partitions(disk string) ([]string, error) {
	entries, err := os.ReadDir(h.blockDir(disk))
	if err != nil {
		return nil, fmt.Errorf("listing the partitions of %s: %w", devPath(disk), err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), disk) && h.isPartition(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// links returns the names in the sysfs folder "slaves" (the devices that a
// device mapper or md RAID device name is built on) or "holders" (the devices
// built on name).
func (h host) links(name, folder string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(h.blockDir(name), folder))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s of %s: %w", folder, devPath(name), err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

// attribute returns the trimmed content of the sysfs file rel below the
// device's folder, or "" when it cannot be read.
func (h host) attribute(name, rel string) string {
	content, err := os.ReadFile(filepath.Join(h.blockDir(name), rel))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(content))
}

// devPath returns the usual /dev path of the block device name. Sysfs writes
// a "/" in a device name as "!", as in cciss!c0d0.
func devPath(name string) string {
	return "/dev/" + strings.ReplaceAll(name, "!", "/")
}

func isBlockDevice(info fs.FileInfo) bool {
	return info.Mode()&fs.ModeDevice != 0 && info.Mode()&fs.ModeCharDevice == 0
}

func deviceNumber(info fs.FileInfo) (major, minor uint32) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0
	}
	return unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
}
