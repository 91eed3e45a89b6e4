package flash

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// inspectTarget resolves path and describes the device behind it. It rejects
// a missing path, a partition, anything that is neither a block device nor a
// regular file, and a regular file unless allowRegularFile is set.
func (h host) inspectTarget(path string, allowRegularFile bool) (target, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		return target{}, fmt.Errorf("%w: %s does not exist; lsblk lists the disks", ErrNotFound, path)
	}
	if err != nil {
		return target{}, fmt.Errorf("resolving device %s: %w", path, err)
	}
	info, err := os.Stat(resolved)
	if err != nil {
		return target{}, fmt.Errorf("inspecting device %s: %w", path, err)
	}
	t := target{path: path, resolved: resolved, info: info}

	switch {
	case info.Mode().IsRegular() && allowRegularFile:
		t.size = info.Size()
		t.model = "regular file"
		return t, nil
	case info.Mode().IsRegular():
		return target{}, fmt.Errorf("%w: %s is a regular file; name the whole disk of the SD card or USB stick, such as /dev/sdb (lsblk lists the disks)",
			ErrNotBlockDevice, path)
	case !isBlockDevice(info):
		return target{}, fmt.Errorf("%w: %s is a %s; name the whole disk of the SD card or USB stick, such as /dev/sdb (lsblk lists the disks)",
			ErrNotBlockDevice, path, describeMode(info.Mode()))
	}
	return h.inspectBlockDevice(t)
}

func (h host) inspectBlockDevice(t target) (target, error) {
	t.block = true
	major, minor := deviceNumber(t.info)
	name, err := h.nameOf(major, minor)
	if err != nil {
		return target{}, fmt.Errorf("inspecting device %s: %w", t.path, err)
	}
	t.name = name

	if h.isPartition(name) {
		disk, err := h.wholeDisk(name)
		if err != nil {
			return target{}, err
		}
		return target{}, fmt.Errorf("%w: %s is a partition of %s; name the whole disk %s, because the image brings its own partition table",
			ErrPartition, t.path, devPath(disk), devPath(disk))
	}

	t.size, err = h.deviceSize(name)
	if err != nil {
		return target{}, fmt.Errorf("inspecting device %s: %w", t.path, err)
	}
	t.model = h.deviceModel(name)
	return t, nil
}

// deviceSize returns the capacity of the block device name. It reads sysfs
// rather than opening the device, because a sandbox may forbid opening the
// system disk. The sysfs "size" attribute counts 512-byte sectors whatever the
// device's logical block size.
func (h host) deviceSize(name string) (int64, error) {
	text := h.attribute(name, "size")
	sectors, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("reading the size of %s from sysfs: invalid sector count %q", devPath(name), text)
	}
	return sectors * 512, nil
}

// deviceModel returns the model that the device reports in sysfs. A loop
// device reports none, so it is described by its backing file instead.
func (h host) deviceModel(name string) string {
	if model := h.attribute(name, "device/model"); model != "" {
		return model
	}
	if backing := h.attribute(name, "loop/backing_file"); backing != "" {
		return "loop device backed by " + backing
	}
	return ""
}

func describeMode(mode fs.FileMode) string {
	switch {
	case mode.IsDir():
		return "folder"
	case mode&fs.ModeCharDevice != 0:
		return "character device"
	case mode&fs.ModeNamedPipe != 0:
		return "named pipe"
	case mode&fs.ModeSocket != 0:
		return "socket"
	default:
		return "file of type " + mode.Type().String()
	}
}

// openTarget opens t for reading and writing. A block device is opened with
// O_EXCL, which the kernel refuses while anything else holds the device
// exclusively, such as a mount that began after the checks.
func openTarget(t target) (*os.File, error) {
	flags := os.O_RDWR
	if t.block {
		flags |= unix.O_EXCL
	}
	f, err := os.OpenFile(t.resolved, flags, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, fmt.Errorf("%w: the kernel reports %s busy, so something mounted or claimed it; unmount it and try again: %w",
			ErrInUse, t.path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening device %s for writing: %w", t.path, err)
	}
	return f, nil
}
