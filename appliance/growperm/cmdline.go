package growperm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Devices names the whole disk that holds the root file system and the
// partition 4 on it that holds /perm.
type Devices struct {
	Disk string // e.g. /dev/mmcblk0
	Perm string // e.g. /dev/mmcblk0p4
}

// FindDevices returns the disk and its partition 4 from the root= parameter
// of the kernel command line cmdline (the contents of /proc/cmdline).
// root=/dev/NAME names the partition directly; root=PARTUUID=SSSSSSSS-PP names
// the disk by its MBR signature, which FindDevices looks up by reading sector
// 0 of every disk listed in /sys/block.
func FindDevices(cmdline string) (Devices, error) {
	return deviceFinder{sysBlock: "/sys/block", dev: "/dev"}.find(cmdline)
}

// deviceFinder resolves root= against a sysfs block directory and a device
// directory, which tests point at temporary folders.
type deviceFinder struct {
	sysBlock string
	dev      string
}

func (f deviceFinder) find(cmdline string) (Devices, error) {
	root, err := rootParameter(cmdline)
	if err != nil {
		return Devices{}, err
	}

	var disk string
	if value, ok := strings.CutPrefix(root, "PARTUUID="); ok {
		signature, _, err := parseMBRPartUUID(value)
		if err != nil {
			return Devices{}, err
		}
		disk, err = f.diskBySignature(signature)
		if err != nil {
			return Devices{}, err
		}
	} else {
		name, ok := strings.CutPrefix(root, "/dev/")
		if !ok {
			return Devices{}, fmt.Errorf("root=%s: want /dev/NAME or PARTUUID=SSSSSSSS-PP", root)
		}
		// The name rule alone reads a whole disk such as nvme0n1 as
		// partition 1 of "nvme0n", so sysfs is checked first.
		if _, err := os.Stat(filepath.Join(f.sysBlock, name)); name != "" && err == nil {
			return Devices{}, fmt.Errorf("root=%s names a whole disk, not a partition", root)
		}
		disk, _, err = splitPartitionName(name)
		if err != nil {
			return Devices{}, fmt.Errorf("root=%s: %w", root, err)
		}
	}

	return Devices{
		Disk: filepath.Join(f.dev, disk),
		Perm: filepath.Join(f.dev, partitionName(disk, permIndex+1)),
	}, nil
}

// rootParameter returns the value of the last root= parameter, the one Linux
// uses. Parameters after "--" belong to init and are ignored.
func rootParameter(cmdline string) (string, error) {
	root := ""
	for _, field := range strings.Fields(cmdline) {
		if field == "--" {
			break
		}
		if value, ok := strings.CutPrefix(field, "root="); ok {
			root = strings.Trim(value, `"`)
		}
	}
	if root == "" {
		return "", errors.New("kernel command line has no root= parameter: the boot loader configuration (cmdline.txt on a Raspberry Pi) must name the root partition")
	}
	return root, nil
}

// parseMBRPartUUID parses the PARTUUID Linux gives MBR partitions: the disk
// signature as 8 hex digits, a dash and the partition number as 2 hex digits.
func parseMBRPartUUID(value string) (signature uint32, partition int, err error) {
	sig, part, ok := strings.Cut(value, "-")
	if !ok || len(sig) != 8 || len(part) != 2 {
		return 0, 0, fmt.Errorf("root=PARTUUID=%s: want an MBR PARTUUID such as 1a2b3c4d-02 (GPT and PARTNROFF forms are not supported)", value)
	}
	s, err := strconv.ParseUint(sig, 16, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("root=PARTUUID=%s: disk signature %q is not hexadecimal", value, sig)
	}
	p, err := strconv.ParseUint(part, 16, 8)
	if err != nil || p == 0 {
		return 0, 0, fmt.Errorf("root=PARTUUID=%s: partition number %q is not a hexadecimal number from 01", value, part)
	}
	return uint32(s), int(p), nil
}

// splitPartitionName splits a partition's kernel name into its disk and
// number. Disks whose name ends in a digit (mmcblk0, nvme0n1, loop0) put a "p"
// before the partition number; others (sda, vda) do not. The name alone
// cannot tell a whole disk named like nvme0n1 from a partition.
func splitPartitionName(name string) (disk string, number int, err error) {
	digits := len(name)
	for digits > 0 && name[digits-1] >= '0' && name[digits-1] <= '9' {
		digits--
	}
	if digits == len(name) || digits == 0 || strings.Contains(name, "/") {
		return "", 0, fmt.Errorf("device name %q does not end in a partition number", name)
	}
	number, err = strconv.Atoi(name[digits:])
	if err != nil || number == 0 {
		return "", 0, fmt.Errorf("device name %q has an invalid partition number", name)
	}

	disk = name[:digits]
	if withP, ok := strings.CutSuffix(disk, "p"); ok && endsInDigit(withP) {
		return withP, number, nil
	}
	if endsInDigit(disk) {
		return "", 0, fmt.Errorf("device name %q names a whole disk, not a partition", name)
	}
	return disk, number, nil
}

// partitionName returns the kernel name of partition number on disk.
func partitionName(disk string, number int) string {
	if endsInDigit(disk) {
		return disk + "p" + strconv.Itoa(number)
	}
	return disk + strconv.Itoa(number)
}

func endsInDigit(s string) bool {
	return s != "" && s[len(s)-1] >= '0' && s[len(s)-1] <= '9'
}

// diskBySignature returns the name of the one disk in f.sysBlock whose MBR has
// the disk signature. Disks that cannot be read (empty loop devices, card
// readers without a card) are skipped.
func (f deviceFinder) diskBySignature(signature uint32) (string, error) {
	entries, err := os.ReadDir(f.sysBlock)
	if err != nil {
		return "", fmt.Errorf("listing disks: %w", err)
	}
	var matches []string
	for _, entry := range entries {
		sector, err := f.readMBR(entry.Name())
		if err != nil {
			continue
		}
		if _, err := parseMBR(sector); err == nil && diskSignature(sector) == signature {
			matches = append(matches, entry.Name())
		}
	}
	switch len(matches) {
	case 0:
		return "", fmt.Errorf("no disk in %s has the MBR disk signature %08x: is the boot medium attached?", f.sysBlock, signature)
	case 1:
		return matches[0], nil
	default:
		return "", fmt.Errorf("disks %s share the MBR disk signature %08x: remove the extra copy of the image so the boot disk is unambiguous",
			strings.Join(matches, ", "), signature)
	}
}

func (f deviceFinder) readMBR(name string) ([]byte, error) {
	disk, err := os.Open(filepath.Join(f.dev, name))
	if err != nil {
		return nil, err
	}
	defer disk.Close()
	sector := make([]byte, mbrSize)
	if _, err := io.ReadFull(disk, sector); err != nil {
		return nil, err
	}
	return sector, nil
}
