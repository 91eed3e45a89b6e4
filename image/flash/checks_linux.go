package flash

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// checkBlockDevice rejects the block device t when it contains the running
// system, is in use or is smaller than the image.
func (h host) checkBlockDevice(t target, imageSize int64) error {
	mounts, err := h.readMounts()
	if err != nil {
		return err
	}
	if err := h.checkNotSystemDisk(t, mounts); err != nil {
		return err
	}
	if err := h.checkNotInUse(t, mounts); err != nil {
		return err
	}
	if t.size == 0 {
		return fmt.Errorf("%w: %s has a size of 0 bytes, which a card reader without a card reports; insert the card and try again",
			ErrTooSmall, t.path)
	}
	if t.size < imageSize {
		return fmt.Errorf("%w: %s has %s (%d bytes), the image needs %s (%d bytes); use a larger card or stick",
			ErrTooSmall, t.path, formatBytes(t.size), t.size, formatBytes(imageSize), imageSize)
	}
	return nil
}

func (h host) checkNotSystemDisk(t target, mounts []mount) error {
	system, err := h.systemDevices(mounts)
	if err != nil {
		return err
	}
	if system[t.name] {
		return fmt.Errorf("%w: the root file system of this computer is on %s; choose the SD card or USB stick instead (lsblk lists the disks)",
			ErrSystemDisk, t.path)
	}
	return nil
}

// systemDevices returns the names of the block devices that the root file
// system depends on. These are the device mounted on "/" and the devices
// below it that device mapper or md RAID combine (their "slaves" in sysfs),
// each with the whole disk that contains it. The set is empty when "/" is not
// on a block device, as in a container whose root is an overlay.
func (h host) systemDevices(mounts []mount) (map[string]bool, error) {
	devices := make(map[string]bool)
	var root *mount
	for i := range mounts {
		// A later mount on "/" hides the earlier ones.
		if mounts[i].mountPoint == "/" {
			root = &mounts[i]
		}
	}
	if root == nil {
		return devices, nil
	}
	name := h.mountDeviceName(*root)
	if name == "" {
		return devices, nil
	}
	if err := h.addLowerDevices(devices, name); err != nil {
		return nil, fmt.Errorf("finding the disks behind the root file system: %w", err)
	}
	return devices, nil
}

// addLowerDevices adds name, the devices it is built on and their whole disks
// to devices.
func (h host) addLowerDevices(devices map[string]bool, name string) error {
	if devices[name] {
		return nil
	}
	devices[name] = true

	slaves, err := h.links(name, "slaves")
	if err != nil {
		return err
	}
	for _, slave := range slaves {
		if err := h.addLowerDevices(devices, slave); err != nil {
			return err
		}
	}

	disk, err := h.wholeDisk(name)
	if err != nil {
		return err
	}
	return h.addLowerDevices(devices, disk)
}

// checkNotInUse rejects t when it, one of its partitions or a device built on
// them is mounted or used as swap, or when device mapper or md RAID holds t or
// a partition of it.
func (h host) checkNotInUse(t target, mounts []mount) error {
	upper, err := h.upperDevices(t.name)
	if err != nil {
		return err
	}

	for _, m := range mounts {
		name := h.mountDeviceName(m)
		if name != "" && upper[name] {
			return fmt.Errorf("%w: %s is mounted on %s, so %s cannot be overwritten; unmount it first (umount %q)",
				ErrInUse, devPath(name), m.mountPoint, t.path, m.mountPoint)
		}
	}

	if err := h.checkNoSwap(t, upper); err != nil {
		return err
	}
	return h.checkNoHolders(t)
}

// upperDevices returns name, its partitions and every device built on them.
func (h host) upperDevices(name string) (map[string]bool, error) {
	parts, err := h.partitions(name)
	if err != nil {
		return nil, err
	}
	devices := make(map[string]bool)
	for _, n := range append([]string{name}, parts...) {
		if err := h.addUpperDevices(devices, n); err != nil {
			return nil, err
		}
	}
	return devices, nil
}

func (h host) addUpperDevices(devices map[string]bool, name string) error {
	if devices[name] {
		return nil
	}
	devices[name] = true
	holders, err := h.links(name, "holders")
	if err != nil {
		return err
	}
	for _, holder := range holders {
		if err := h.addUpperDevices(devices, holder); err != nil {
			return err
		}
	}
	return nil
}

func (h host) checkNoSwap(t target, upper map[string]bool) error {
	swaps, err := h.readSwaps()
	if err != nil {
		return err
	}
	for _, path := range swaps {
		name, err := h.nameOfPath(path)
		if err != nil || name == "" {
			// A swap file, or a path that no longer resolves, is not a device of t.
			continue
		}
		if upper[name] {
			return fmt.Errorf("%w: %s is used as swap, so %s cannot be overwritten; turn it off first (swapoff %s)",
				ErrInUse, devPath(name), t.path, devPath(name))
		}
	}
	return nil
}

// checkNoHolders rejects t when a device mapper (LVM, dm-crypt) or md RAID
// device is built on it or on one of its partitions, even when nothing is mounted.
func (h host) checkNoHolders(t target) error {
	parts, err := h.partitions(t.name)
	if err != nil {
		return err
	}
	for _, name := range append([]string{t.name}, parts...) {
		holders, err := h.links(name, "holders")
		if err != nil {
			return err
		}
		if len(holders) > 0 {
			return fmt.Errorf("%w: %s is part of %s (device mapper, LVM, dm-crypt or md RAID), so %s cannot be overwritten; stop or close %s first",
				ErrInUse, devPath(name), devPath(holders[0]), t.path, devPath(holders[0]))
		}
	}
	return nil
}

// mountDeviceName returns the kernel name of the block device behind m, or ""
// when there is none. File systems such as btrfs report an anonymous device
// number (major 0), so then the mount source path is looked up instead.
func (h host) mountDeviceName(m mount) string {
	if m.major != 0 {
		if name, err := h.nameOf(m.major, m.minor); err == nil {
			return name
		}
	}
	if !strings.HasPrefix(m.source, "/") {
		return ""
	}
	name, err := h.nameOfPath(m.source)
	if err != nil {
		return ""
	}
	return name
}

func (h host) readMounts() ([]mount, error) {
	f, err := os.Open(h.mountinfo)
	if err != nil {
		return nil, fmt.Errorf("reading the mount table: %w", err)
	}
	defer f.Close()
	mounts, err := parseMountinfo(f)
	if err != nil {
		return nil, fmt.Errorf("reading the mount table %s: %w", h.mountinfo, err)
	}
	return mounts, nil
}

// readSwaps returns the swap devices and files, or none when the kernel has
// no swap support and so no /proc/swaps.
func (h host) readSwaps() ([]string, error) {
	f, err := os.Open(h.swaps)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the swap table: %w", err)
	}
	defer f.Close()
	return parseSwaps(f)
}
