package flash

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSysfs builds the parts of /sys that the checks read: class/block and
// dev/block symlinks into a devices tree, partition attributes, and slaves
// and holders folders.
type fakeSysfs struct {
	t    *testing.T
	root string
	dirs map[string]string
}

func newFakeSysfs(t *testing.T) *fakeSysfs {
	return &fakeSysfs{t: t, root: t.TempDir(), dirs: make(map[string]string)}
}

func (f *fakeSysfs) addDisk(name, number string) {
	f.addDevice(name, filepath.Join(f.root, "devices", "virtual", "block", name), number)
}

func (f *fakeSysfs) addPartition(disk, name, number string) {
	dir := filepath.Join(f.dirs[disk], name)
	f.addDevice(name, dir, number)
	f.write(filepath.Join(dir, "partition"), "1")
}

func (f *fakeSysfs) addDevice(name, dir, number string) {
	f.t.Helper()
	f.dirs[name] = dir
	f.write(filepath.Join(dir, "dev"), number)
	f.write(filepath.Join(dir, "size"), "2048")
	f.symlink(dir, filepath.Join(f.root, "class", "block", name))
	f.symlink(dir, filepath.Join(f.root, "dev", "block", number))
}

// stack records that upper (a device mapper or md RAID device) is built on lower.
func (f *fakeSysfs) stack(upper, lower string) {
	f.symlink(f.dirs[lower], filepath.Join(f.dirs[upper], "slaves", lower))
	f.symlink(f.dirs[upper], filepath.Join(f.dirs[lower], "holders", upper))
}

func (f *fakeSysfs) write(path, content string) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content+"\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeSysfs) symlink(target, link string) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		f.t.Fatal(err)
	}
}

// host returns a host that reads the fake tree, a mount table with the
// given "MAJOR:MINOR mount point" pairs and an empty swap table.
func (f *fakeSysfs) host(mounts ...string) host {
	var mountinfo strings.Builder
	for i, m := range mounts {
		number, mountPoint, _ := strings.Cut(m, " ")
		fmt.Fprintf(&mountinfo, "%d 1 %s / %s rw,relatime - ext4 /dev/fake%d rw\n", 100+i, number, mountPoint, i)
	}
	h := host{
		sysfs:     f.root,
		mountinfo: filepath.Join(f.t.TempDir(), "mountinfo"),
		swaps:     filepath.Join(f.t.TempDir(), "swaps"),
	}
	f.write(h.mountinfo, mountinfo.String())
	f.write(h.swaps, "Filename\tType\tSize\tUsed\tPriority")
	return h
}

// newLaptop returns a fake sysfs with an NVMe disk of two partitions, dm-crypt
// on its second partition, and the SATA disks sda, sdb and sdc. The first
// partitions of sda and sdb form the md RAID md0, with LVM on top.
func newLaptop(t *testing.T) *fakeSysfs {
	f := newFakeSysfs(t)
	f.addDisk("nvme0n1", "259:0")
	f.addPartition("nvme0n1", "nvme0n1p1", "259:1")
	f.addPartition("nvme0n1", "nvme0n1p2", "259:2")
	f.addDisk("sda", "8:0")
	f.addPartition("sda", "sda1", "8:1")
	f.addDisk("sdb", "8:16")
	f.addPartition("sdb", "sdb1", "8:17")
	f.addDisk("sdc", "8:32")
	f.addDisk("md0", "9:0")
	f.stack("md0", "sda1")
	f.stack("md0", "sdb1")
	f.addDisk("dm-0", "253:0")
	f.stack("dm-0", "nvme0n1p2")
	f.addDisk("dm-1", "253:1")
	f.stack("dm-1", "md0")
	return f
}

func TestSystemDevices(t *testing.T) {
	tests := []struct {
		name      string
		root      string
		wantDisks []string
		notDisks  []string
	}{
		{"partition", "259:1", []string{"nvme0n1", "nvme0n1p1"}, []string{"sda", "sdb", "sdc"}},
		{"whole disk", "8:32", []string{"sdc"}, []string{"nvme0n1", "sda", "sdb"}},
		{"dm-crypt on partition", "253:0", []string{"dm-0", "nvme0n1p2", "nvme0n1"}, []string{"sda", "sdb", "sdc"}},
		{"LVM on md RAID", "253:1", []string{"dm-1", "md0", "sda1", "sda", "sdb1", "sdb"}, []string{"nvme0n1", "sdc"}},
		{"overlay", "0:50", nil, []string{"nvme0n1", "sda", "sdb", "sdc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newLaptop(t)
			h := f.host(tt.root + " /")
			mounts, err := h.readMounts()
			if err != nil {
				t.Fatal(err)
			}
			got, err := h.systemDevices(mounts)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range tt.wantDisks {
				if !got[name] {
					t.Errorf("systemDevices with / on %s = %v, want it to contain %s", tt.root, got, name)
				}
			}
			for _, name := range tt.notDisks {
				if got[name] {
					t.Errorf("systemDevices with / on %s = %v, want it without %s", tt.root, got, name)
				}
			}
		})
	}
}

func TestSystemDevicesLastRootMount(t *testing.T) {
	f := newLaptop(t)
	// An initramfs root on sdc, then the real root on nvme0n1p1 on top of it.
	h := f.host("8:32 /", "259:1 /")
	mounts, err := h.readMounts()
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.systemDevices(mounts)
	if err != nil {
		t.Fatal(err)
	}
	if !got["nvme0n1"] || got["sdc"] {
		t.Errorf("systemDevices = %v, want nvme0n1 and not sdc, the hidden earlier mount on /", got)
	}
}

func TestCheckBlockDevice(t *testing.T) {
	tests := []struct {
		name    string
		target  string
		mounts  []string
		wantErr error
		wantMsg string
	}{
		{"system disk behind dm-crypt", "nvme0n1", []string{"253:0 /"}, ErrSystemDisk, "root file system"},
		{"system disk behind md RAID", "sdb", []string{"253:1 /"}, ErrSystemDisk, "root file system"},
		{"mounted partition", "nvme0n1", []string{"8:32 /", "259:1 /boot/efi"}, ErrInUse, "/dev/nvme0n1p1 is mounted on /boot/efi"},
		{"mounted LVM volume on RAID member", "sda", []string{"8:32 /", "253:1 /srv"}, ErrInUse, "/dev/dm-1 is mounted on /srv"},
		{"unmounted RAID member", "sdb", []string{"8:32 /"}, ErrInUse, "/dev/sdb1 is part of /dev/md0"},
		{"unmounted dm-crypt", "nvme0n1", []string{"8:32 /"}, ErrInUse, "/dev/nvme0n1p2 is part of /dev/dm-0"},
		{"free disk", "sdc", []string{"259:1 /"}, nil, ""},
		{"too small", "sdc", []string{"259:1 /"}, ErrTooSmall, "1.0 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newLaptop(t)
			h := f.host(tt.mounts...)
			imageSize := int64(512 << 10)
			if tt.wantErr == ErrTooSmall {
				imageSize = 64 << 20
			}
			tgt := target{path: devPath(tt.target), block: true, name: tt.target, size: 1 << 20}

			err := h.checkBlockDevice(tgt, imageSize)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("checkBlockDevice(%s) = %v, want %v", tt.target, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("checkBlockDevice(%s) = %q, want it to contain %q", tt.target, err, tt.wantMsg)
			}
			if err != nil && !strings.Contains(err.Error(), tgt.path) {
				t.Errorf("checkBlockDevice(%s) = %q, want it to name %s", tt.target, err, tgt.path)
			}
		})
	}
}

func TestDeviceSize(t *testing.T) {
	f := newLaptop(t)
	h := f.host()
	got, err := h.deviceSize("sdc")
	if err != nil {
		t.Fatal(err)
	}
	if got != 2048*512 {
		t.Errorf("deviceSize(sdc) = %d, want %d (2048 sectors of 512 bytes)", got, 2048*512)
	}
}
