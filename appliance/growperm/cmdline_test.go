package growperm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRootParameter(t *testing.T) {
	tests := []struct {
		cmdline string
		want    string
	}{
		{"console=ttyS0 root=/dev/mmcblk0p2 rootwait", "/dev/mmcblk0p2"},
		{"root=/dev/sda2 ro root=/dev/sda3", "/dev/sda3"},
		{`root="PARTUUID=1a2b3c4d-02" init=/gokrazy/init`, "PARTUUID=1a2b3c4d-02"},
		{"root=/dev/vda2 -- root=/dev/vda3", "/dev/vda2"},
		{"console=tty1\nroot=/dev/nvme0n1p3\n", "/dev/nvme0n1p3"},
	}
	for _, tt := range tests {
		got, err := rootParameter(tt.cmdline)
		if err != nil {
			t.Errorf("rootParameter(%q): %v", tt.cmdline, err)
			continue
		}
		if got != tt.want {
			t.Errorf("rootParameter(%q) = %q, want %q", tt.cmdline, got, tt.want)
		}
	}
}

func TestRootParameterMissing(t *testing.T) {
	for _, cmdline := range []string{"", "console=ttyS0 quiet", "rootwait rootfstype=squashfs", "-- root=/dev/sda2", "root="} {
		if got, err := rootParameter(cmdline); err == nil {
			t.Errorf("rootParameter(%q) = %q, want an error", cmdline, got)
		}
	}
}

func TestSplitPartitionName(t *testing.T) {
	tests := []struct {
		name       string
		wantDisk   string
		wantNumber int
	}{
		{"mmcblk0p2", "mmcblk0", 2},
		{"mmcblk1p3", "mmcblk1", 3},
		{"nvme0n1p2", "nvme0n1", 2},
		{"loop12p4", "loop12", 4},
		{"sda2", "sda", 2},
		{"vda3", "vda", 3},
		{"sdp2", "sdp", 2},
		{"sdaa14", "sdaa", 14},
	}
	for _, tt := range tests {
		disk, number, err := splitPartitionName(tt.name)
		if err != nil {
			t.Errorf("splitPartitionName(%q): %v", tt.name, err)
			continue
		}
		if disk != tt.wantDisk || number != tt.wantNumber {
			t.Errorf("splitPartitionName(%q) = %q, %d, want %q, %d", tt.name, disk, number, tt.wantDisk, tt.wantNumber)
		}
	}
}

func TestSplitPartitionNameRejects(t *testing.T) {
	for _, name := range []string{"sda", "mmcblk0", "mmcblk0p", "mmcblk0p0", "sda0", "2", "", "disk/by-id/x2"} {
		if disk, number, err := splitPartitionName(name); err == nil {
			t.Errorf("splitPartitionName(%q) = %q, %d, want an error", name, disk, number)
		}
	}
}

func TestPartitionName(t *testing.T) {
	tests := []struct {
		disk string
		want string
	}{
		{"mmcblk0", "mmcblk0p4"},
		{"nvme0n1", "nvme0n1p4"},
		{"loop3", "loop3p4"},
		{"sda", "sda4"},
		{"vda", "vda4"},
	}
	for _, tt := range tests {
		if got := partitionName(tt.disk, 4); got != tt.want {
			t.Errorf("partitionName(%q, 4) = %q, want %q", tt.disk, got, tt.want)
		}
	}
}

func TestParseMBRPartUUID(t *testing.T) {
	tests := []struct {
		value         string
		wantSignature uint32
		wantPartition int
	}{
		{"1a2b3c4d-02", 0x1a2b3c4d, 2},
		{"1A2B3C4D-03", 0x1a2b3c4d, 3},
		{"00000001-0a", 1, 10},
	}
	for _, tt := range tests {
		signature, partition, err := parseMBRPartUUID(tt.value)
		if err != nil {
			t.Errorf("parseMBRPartUUID(%q): %v", tt.value, err)
			continue
		}
		if signature != tt.wantSignature || partition != tt.wantPartition {
			t.Errorf("parseMBRPartUUID(%q) = %08x, %d, want %08x, %d", tt.value, signature, partition, tt.wantSignature, tt.wantPartition)
		}
	}

	for _, value := range []string{
		"1a2b3c4d",
		"1a2b3c4d-2",
		"1a2b3c4d-00",
		"1a2b3c4g-02",
		"1a2b3c4d-0x",
		"e3b0c442-98fc-1c14-9afb-f4c8996fb924",
		"1a2b3c4d-02/PARTNROFF=1",
	} {
		if _, _, err := parseMBRPartUUID(value); err == nil {
			t.Errorf("parseMBRPartUUID(%q): got no error, want one", value)
		}
	}
}

// fakeBlockTree makes a /sys/block and a /dev folder in which each disk is a
// regular file holding its sector 0, so that PARTUUID lookups run without
// real disks.
func fakeBlockTree(t *testing.T, disks map[string][]byte) deviceFinder {
	t.Helper()
	root := t.TempDir()
	f := deviceFinder{sysBlock: filepath.Join(root, "sys", "block"), dev: filepath.Join(root, "dev")}
	for _, dir := range []string{f.sysBlock, f.dev} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, sector := range disks {
		if err := os.Mkdir(filepath.Join(f.sysBlock, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(f.dev, name), sector, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestFindDevices(t *testing.T) {
	f := fakeBlockTree(t, map[string][]byte{
		"mmcblk0": makeMBR(0x1a2b3c4d, imageEntries),
		"sda":     makeMBR(0x99887766, imageEntries),
		"loop0":   nil,
		"zram0":   make([]byte, 4096),
	})
	tests := []struct {
		cmdline string
		want    Devices
	}{
		{"root=PARTUUID=1a2b3c4d-02", Devices{Disk: f.dev + "/mmcblk0", Perm: f.dev + "/mmcblk0p4"}},
		{"root=PARTUUID=99887766-03 rootwait", Devices{Disk: f.dev + "/sda", Perm: f.dev + "/sda4"}},
		{"root=/dev/mmcblk0p3", Devices{Disk: f.dev + "/mmcblk0", Perm: f.dev + "/mmcblk0p4"}},
		{"root=/dev/nvme0n1p2", Devices{Disk: f.dev + "/nvme0n1", Perm: f.dev + "/nvme0n1p4"}},
		{"root=/dev/vda2", Devices{Disk: f.dev + "/vda", Perm: f.dev + "/vda4"}},
	}
	for _, tt := range tests {
		got, err := f.find(tt.cmdline)
		if err != nil {
			t.Errorf("find(%q): %v", tt.cmdline, err)
			continue
		}
		if got != tt.want {
			t.Errorf("find(%q) = %+v, want %+v", tt.cmdline, got, tt.want)
		}
	}
}

func TestFindDevicesRejects(t *testing.T) {
	f := fakeBlockTree(t, map[string][]byte{
		"sda":     makeMBR(0x11111111, imageEntries),
		"sdb":     makeMBR(0x11111111, imageEntries),
		"sdc":     makeMBR(0x22222222, imageEntries),
		"mmcblk0": makeMBR(0x44444444, imageEntries),
		"nvme0n1": makeMBR(0x55555555, imageEntries),
	})
	tests := []struct {
		cmdline string
		want    string // a word the error must contain
	}{
		{"root=PARTUUID=11111111-02", "sda, sdb"},
		{"root=PARTUUID=33333333-02", "33333333"},
		{"root=/dev/mmcblk0", "whole disk"},
		{"root=/dev/nvme0n1", "whole disk"},
		{"root=/dev/mmcblk0p0", "partition number"},
		{"root=LABEL=root", "PARTUUID"},
		{"quiet", "root="},
	}
	for _, tt := range tests {
		got, err := f.find(tt.cmdline)
		if err == nil {
			t.Errorf("find(%q) = %+v, want an error", tt.cmdline, got)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("find(%q) error %q does not contain %q", tt.cmdline, err, tt.want)
		}
	}
}

// FuzzFindDevices checks that parsing any command line either fails or names
// partition 4 on the disk it returns.
func FuzzFindDevices(f *testing.F) {
	for _, seed := range []string{"root=/dev/mmcblk0p2", "root=/dev/sda3 quiet", "root=PARTUUID=1a2b3c4d-02", "root=/dev/nvme0n1p2 -- x"} {
		f.Add(seed)
	}
	finder := deviceFinder{sysBlock: "/nonexistent/sys/block", dev: "/dev"}
	f.Fuzz(func(t *testing.T, cmdline string) {
		got, err := finder.find(cmdline)
		if err != nil {
			return
		}
		disk, number, err := splitPartitionName(filepath.Base(got.Perm))
		if err != nil || number != 4 || filepath.Join("/dev", disk) != got.Disk {
			t.Fatalf("find(%q) = %+v: partition 4 does not belong to the disk", cmdline, got)
		}
	})
}
