package growperm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

const (
	testDiskBytes = 128 << 20
	// grownDiskBytes is the size the test disk grows to: 3 GiB plus 300 KiB,
	// so that the new end of partition 4 must be rounded down to a MiB.
	grownDiskBytes = 3<<30 + 300<<10
)

// testLayout is the sfdisk script of a small disk laid out like a Heimwolke
// image: boot FAT, root A, root B, and /perm up to the end of the disk.
const testLayout = `label: dos
label-id: 0x%08x
unit: sectors

start=2048, size=65536, type=c
start=67584, size=32768, type=83
start=100352, size=32768, type=83
start=133120, type=83
`

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// makeTestImage writes a disk image of testDiskBytes with the MBR from
// script, and boot code of a recognizable pattern that Grow must keep.
func makeTestImage(t *testing.T, script string) string {
	t.Helper()
	return makeSizedTestImage(t, script, testDiskBytes)
}

// makeSizedTestImage is makeTestImage for an image of size bytes.
func makeSizedTestImage(t *testing.T, script string, size int64) string {
	t.Helper()
	sfdisk := testpeer.Require(t, "sfdisk", "fdisk")
	image := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(image, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(image, size); err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(t.Context(), sfdisk, "--no-reread", "--no-tell-kernel", image)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}

	bootCode := make([]byte, diskSignatureOff)
	for i := range bootCode {
		bootCode[i] = byte(i*13 + 5)
	}
	f, err := os.OpenFile(image, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bootCode, 0); err != nil {
		t.Fatal(err)
	}
	return image
}

func readSector0(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sector := make([]byte, mbrSize)
	if _, err := f.ReadAt(sector, 0); err != nil {
		t.Fatal(err)
	}
	return sector
}

// sfdiskTable is the part of `sfdisk --json` output that the tests compare.
type sfdiskTable struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		Partitions []struct {
			Start uint64 `json:"start"`
			Size  uint64 `json:"size"`
			Type  string `json:"type"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func dumpTable(t *testing.T, path string) sfdiskTable {
	t.Helper()
	sfdisk := testpeer.Require(t, "sfdisk", "fdisk")
	var table sfdiskTable
	if err := json.Unmarshal([]byte(runTool(t, sfdisk, "--json", path)), &table); err != nil {
		t.Fatalf("parsing sfdisk --json output: %v", err)
	}
	return table
}

// checkGrownTable checks with sfdisk that partition 4 of image ends at the
// last MiB boundary of diskBytes and that everything else kept its value.
func checkGrownTable(t *testing.T, image string, before sfdiskTable, diskBytes int64) {
	t.Helper()
	after := dumpTable(t, image)
	if after.PartitionTable.ID != before.PartitionTable.ID {
		t.Errorf("disk identifier = %s, want %s", after.PartitionTable.ID, before.PartitionTable.ID)
	}
	if got, want := len(after.PartitionTable.Partitions), 4; got != want {
		t.Fatalf("sfdisk lists %d partitions, want %d", got, want)
	}
	for i := range 3 {
		if after.PartitionTable.Partitions[i] != before.PartitionTable.Partitions[i] {
			t.Errorf("partition %d = %+v, want %+v", i+1, after.PartitionTable.Partitions[i], before.PartitionTable.Partitions[i])
		}
	}

	perm, old := after.PartitionTable.Partitions[3], before.PartitionTable.Partitions[3]
	if perm.Start != old.Start || perm.Type != old.Type {
		t.Errorf("partition 4 starts at %d with type %s, want %d and %s", perm.Start, perm.Type, old.Start, old.Type)
	}
	wantEnd := uint64(diskBytes) / mib * mib / 512
	if got := perm.Start + perm.Size; got != wantEnd {
		t.Errorf("partition 4 ends at sector %d, want %d (the last MiB boundary of %d bytes)", got, wantEnd, diskBytes)
	}
}

func TestGrowImageFile(t *testing.T) {
	image := makeTestImage(t, fmt.Sprintf(testLayout, rand.Uint32()))
	before := dumpTable(t, image)
	sector0 := readSector0(t, image)
	if err := os.Truncate(image, grownDiskBytes); err != nil {
		t.Fatal(err)
	}

	result, err := Grow(t.Context(), image, "", testLogger(t))
	if err != nil {
		t.Fatalf("Grow: %v", err)
	}
	if !result.TableRewritten || result.KernelUpdated || result.FileSystemResized {
		t.Errorf("Grow of an image file = %+v, want only TableRewritten", result)
	}
	if want := int64(129024 * 512); result.OldPartitionBytes != want {
		t.Errorf("OldPartitionBytes = %d, want %d", result.OldPartitionBytes, want)
	}
	if want := int64(grownDiskBytes/mib*mib - 133120*512); result.NewPartitionBytes != want {
		t.Errorf("NewPartitionBytes = %d, want %d", result.NewPartitionBytes, want)
	}
	checkGrownTable(t, image, before, grownDiskBytes)
	if got := readSector0(t, image); !bytes.Equal(got[:partitionTableOff], sector0[:partitionTableOff]) {
		t.Error("boot code or disk signature changed")
	}

	grown := readSector0(t, image)
	again, err := Grow(t.Context(), image, "", testLogger(t))
	if err != nil {
		t.Fatalf("second Grow: %v", err)
	}
	if again.Changed() {
		t.Errorf("second Grow = %+v, want no change", again)
	}
	if got := readSector0(t, image); !bytes.Equal(got, grown) {
		t.Error("second Grow changed sector 0")
	}
}

// TestGrowRejectsBadTables guards against writing to a disk whose layout is
// not the one Grow expects: each case must fail and leave sector 0 alone.
func TestGrowRejectsBadTables(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   error
	}{{
		name: "partition 4 not last",
		script: `label: dos
start=2048, size=8192, type=c
start=10240, size=8192, type=83
start=26624, size=8192, type=83
start=18432, size=8192, type=83
`,
		want: ErrNotLast,
	}, {
		name: "no partition 4",
		script: `label: dos
start=2048, size=8192, type=c
start=10240, size=8192, type=83
`,
		want: ErrNoPartition,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			image := makeTestImage(t, tt.script)
			if err := os.Truncate(image, grownDiskBytes); err != nil {
				t.Fatal(err)
			}
			sector0 := readSector0(t, image)

			_, err := Grow(t.Context(), image, "", testLogger(t))
			if !errors.Is(err, tt.want) {
				t.Errorf("Grow: got error %v, want %v", err, tt.want)
			}
			if !bytes.Equal(readSector0(t, image), sector0) {
				t.Error("Grow changed sector 0 of a rejected disk")
			}
		})
	}
}

func TestGrowRejectsNoMBR(t *testing.T) {
	image := filepath.Join(t.TempDir(), "blank.img")
	if err := os.WriteFile(image, bytes.Repeat([]byte{0xAB}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(image, 64<<20); err != nil {
		t.Fatal(err)
	}

	_, err := Grow(t.Context(), image, "", testLogger(t))
	if !errors.Is(err, ErrNoMBR) {
		t.Errorf("Grow: got error %v, want %v", err, ErrNoMBR)
	}
	if got := readSector0(t, image); !bytes.Equal(got, bytes.Repeat([]byte{0xAB}, mbrSize)) {
		t.Error("Grow changed sector 0 of a disk without MBR")
	}
}

// loopDisk is a test disk image attached as a loop device with partitions,
// with an ext4 on partition 4 mounted in a temporary folder.
type loopDisk struct {
	Image     string
	Device    string // e.g. /dev/loop3
	Perm      string // e.g. /dev/loop3p4
	Mount     string
	Signature uint32
}

// newLoopDisk builds the test disk, attaches it with losetup -P, makes an
// ext4 with 4 KiB blocks on partition 4 (mke2fs adds resize_inode by
// default) and mounts it. Cleanup unmounts and detaches in reverse order.
func newLoopDisk(t *testing.T) *loopDisk {
	t.Helper()
	testpeer.RequireRoot(t, "attaching loop devices and mounting ext4")
	losetup := testpeer.Require(t, "losetup", "mount")
	mkfs := testpeer.Require(t, "mkfs.ext4", "e2fsprogs")
	testpeer.Require(t, "mount", "mount")
	testpeer.Require(t, "umount", "mount")

	disk := &loopDisk{Signature: rand.Uint32()}
	disk.Image = makeTestImage(t, fmt.Sprintf(testLayout, disk.Signature))

	out, err := exec.CommandContext(t.Context(), losetup, "--find", "--show", "--partscan", disk.Image).CombinedOutput()
	if err != nil {
		t.Skipf("skipping: loop devices are not permitted here: losetup: %v: %s", err, out)
	}
	disk.Device = strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command(losetup, "--detach", disk.Device).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v\n%s", disk.Device, err, out)
		}
	})
	disk.Perm = disk.Device + "p4"
	if !waitForDeviceNode(disk.Perm, time.Second) {
		// Kernels built without CONFIG_MSDOS_PARTITION do not scan the
		// MBR, but partitions added with BLKPG work all the same.
		partx := testpeer.Require(t, "partx", "util-linux")
		t.Logf("the kernel did not scan the MBR of %s, adding its partitions with partx", disk.Device)
		runTool(t, partx, "--add", disk.Device)
		if !waitForDeviceNode(disk.Perm, 5*time.Second) {
			t.Skipf("skipping: loop partition %s did not appear, so partitioned loop devices are not available here", disk.Perm)
		}
	}

	runTool(t, mkfs, "-q", "-F", "-b", "4096", disk.Perm)
	disk.Mount = t.TempDir()
	if out, err := exec.CommandContext(t.Context(), "mount", "-t", "ext4", disk.Perm, disk.Mount).CombinedOutput(); err != nil {
		t.Skipf("skipping: mounting ext4 is not permitted here: mount: %v: %s", err, out)
	}
	t.Cleanup(func() { disk.unmount(t) })
	return disk
}

// unmount unmounts the test file system unless it is already unmounted.
func (d *loopDisk) unmount(t *testing.T) {
	t.Helper()
	if d.Mount == "" {
		return
	}
	if out, err := exec.Command("umount", d.Mount).CombinedOutput(); err != nil {
		t.Errorf("umount %s: %v\n%s", d.Mount, err, out)
	}
	d.Mount = ""
}

// enlarge grows the backing file and makes the loop device see the new size,
// as if the image had been flashed to a larger card.
func (d *loopDisk) enlarge(t *testing.T, bytes int64) {
	t.Helper()
	if err := os.Truncate(d.Image, bytes); err != nil {
		t.Fatal(err)
	}
	runTool(t, "losetup", "--set-capacity", d.Device)
}

// waitForDeviceNode reports whether the device node at path appeared within
// timeout.
func waitForDeviceNode(path string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func statfsBytes(t *testing.T, path string) int64 {
	t.Helper()
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		t.Fatalf("statfs %s: %v", path, err)
	}
	return int64(fs.Blocks) * fs.Bsize
}

func kernelPartitionBytes(t *testing.T, partition string) int64 {
	t.Helper()
	sectors, err := readSysfsInt(filepath.Join("/sys/class/block", filepath.Base(partition), "size"))
	if err != nil {
		t.Fatal(err)
	}
	return sectors * sysfsSectorSize
}

// e2fsckClean unmounts the disk and checks the file system with e2fsck -fn,
// which exits 0 only when it found nothing to repair.
func e2fsckClean(t *testing.T, disk *loopDisk) {
	t.Helper()
	e2fsck := testpeer.Require(t, "e2fsck", "e2fsprogs")
	disk.unmount(t)
	out, err := exec.CommandContext(t.Context(), e2fsck, "-fn", disk.Perm).CombinedOutput()
	if err != nil {
		t.Errorf("e2fsck -fn %s: %v\n%s", disk.Perm, err, out)
	}
}

// canResizeExt4 reports whether this process has CAP_SYS_RESOURCE, which
// the kernel requires for an online resize (ext4_resize_begin in
// fs/ext4/resize.c returns EPERM without it). Some sandboxes drop it even
// for root.
func canResizeExt4(t *testing.T) bool {
	t.Helper()
	header := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&header, &data[0]); err != nil {
		t.Fatalf("capget: %v", err)
	}
	return data[unix.CAP_SYS_RESOURCE/32].Effective&(1<<(unix.CAP_SYS_RESOURCE%32)) != 0
}

// growLoop runs Grow on disk, or on devicePath if given. Without
// CAP_SYS_RESOURCE it expects the file system step to fail with EPERM, logs
// one line, and returns false so that the caller skips its file system checks.
func growLoop(t *testing.T, disk *loopDisk, devicePath ...string) (Result, bool) {
	t.Helper()
	device := disk.Device
	if len(devicePath) > 0 {
		device = devicePath[0]
	}
	result, err := Grow(t.Context(), device, disk.Mount, testLogger(t))
	if canResizeExt4(t) {
		if err != nil {
			t.Fatalf("Grow: %v", err)
		}
		return result, true
	}
	if !errors.Is(err, unix.EPERM) {
		t.Fatalf("Grow without CAP_SYS_RESOURCE: got error %v, want EPERM from the file system resize", err)
	}
	t.Log("skipping the file system checks: this process lacks CAP_SYS_RESOURCE, so the kernel rejects online resizing")
	return result, false
}

func TestGrowLoopDisk(t *testing.T) {
	disk := newLoopDisk(t)
	if err := os.WriteFile(filepath.Join(disk.Mount, "note.txt"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := dumpTable(t, disk.Image)
	sector0 := readSector0(t, disk.Image)
	oldFSBytes := statfsBytes(t, disk.Mount)
	disk.enlarge(t, grownDiskBytes)

	result, resized := growLoop(t, disk)

	if !result.TableRewritten || !result.KernelUpdated {
		t.Errorf("Grow = %+v, want the table rewritten and the kernel updated", result)
	}
	wantPartBytes := int64(grownDiskBytes/mib*mib - 133120*512)
	if result.NewPartitionBytes != wantPartBytes {
		t.Errorf("NewPartitionBytes = %d, want %d", result.NewPartitionBytes, wantPartBytes)
	}
	if got := kernelPartitionBytes(t, disk.Perm); got != wantPartBytes {
		t.Errorf("kernel size of %s = %d bytes, want %d", disk.Perm, got, wantPartBytes)
	}
	if resized {
		checkGrownFileSystem(t, disk, result, wantPartBytes, oldFSBytes)
	}

	checkGrownTable(t, disk.Image, before, grownDiskBytes)
	if got := readSector0(t, disk.Image); !bytes.Equal(got[:partitionTableOff], sector0[:partitionTableOff]) {
		t.Error("boot code or disk signature changed")
	}

	grown := readSector0(t, disk.Image)
	// The second run goes through a symbolic link, as /dev/disk/by-id
	// names are, so Grow must still find the partition's device node.
	link := filepath.Join(t.TempDir(), "disk-link")
	if err := os.Symlink(disk.Device, link); err != nil {
		t.Fatal(err)
	}
	again, _ := growLoop(t, disk, link)
	if again.TableRewritten || again.KernelUpdated || again.FileSystemResized {
		t.Errorf("second Grow = %+v, want no change", again)
	}
	if again.NewFileSystemBytes != result.NewFileSystemBytes {
		t.Errorf("second Grow saw a file system of %d bytes, want %d", again.NewFileSystemBytes, result.NewFileSystemBytes)
	}
	if !bytes.Equal(readSector0(t, disk.Image), grown) {
		t.Error("second Grow changed sector 0")
	}

	e2fsckClean(t, disk)
	dumpBlocks := dumpe2fsUint(t, dumpe2fsHeader(t, disk.Perm), "Block count", 0)
	if got := int64(dumpBlocks) * 4096; got != result.NewFileSystemBytes {
		t.Errorf("dumpe2fs block count = %d (%d bytes), want %d bytes as Grow reported", dumpBlocks, got, result.NewFileSystemBytes)
	}
}

// checkGrownFileSystem checks the size Grow reported and statfs shows, and
// that a file written before Grow is still there.
func checkGrownFileSystem(t *testing.T, disk *loopDisk, result Result, partBytes, oldFSBytes int64) {
	t.Helper()
	if !result.FileSystemResized {
		t.Error("FileSystemResized = false, want true")
	}
	if result.NewFileSystemBytes > partBytes || result.NewFileSystemBytes < partBytes-8*mib {
		t.Errorf("NewFileSystemBytes = %d, want at most %d and at most 8 MiB less", result.NewFileSystemBytes, partBytes)
	}

	// statfs leaves out the file system's own metadata, a few percent.
	fsBytes := statfsBytes(t, disk.Mount)
	if fsBytes < partBytes*9/10 || fsBytes > partBytes {
		t.Errorf("statfs size = %d bytes (was %d), want between 90%% and 100%% of the %d-byte partition", fsBytes, oldFSBytes, partBytes)
	}
	if got, err := os.ReadFile(filepath.Join(disk.Mount, "note.txt")); err != nil || string(got) != "kept" {
		t.Errorf("note.txt after Grow = %q, %v; want %q", got, err, "kept")
	}
}

// TestGrowFinishesInterruptedRun guards against a power cut between the
// steps of Grow: the next boot must finish the remaining steps.
func TestGrowFinishesInterruptedRun(t *testing.T) {
	tests := []struct {
		name       string
		kernelDone bool
	}{
		{"after table rewrite", false},
		{"after kernel resize", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			disk := newLoopDisk(t)
			disk.enlarge(t, grownDiskBytes)
			runFirstSteps(t, disk, tt.kernelDone)

			result, resized := growLoop(t, disk)
			if result.TableRewritten {
				t.Error("Grow rewrote the table, want it left as the interrupted run wrote it")
			}
			if result.KernelUpdated == tt.kernelDone {
				t.Errorf("KernelUpdated = %v, want %v", result.KernelUpdated, !tt.kernelDone)
			}
			if resized && !result.FileSystemResized {
				t.Error("FileSystemResized = false, want true")
			}
			wantPartBytes := int64(grownDiskBytes/mib*mib - 133120*512)
			if resized && result.NewFileSystemBytes < wantPartBytes-8*mib {
				t.Errorf("NewFileSystemBytes = %d, want within 8 MiB of %d", result.NewFileSystemBytes, wantPartBytes)
			}
			if got := kernelPartitionBytes(t, disk.Perm); got != wantPartBytes {
				t.Errorf("kernel size of %s = %d bytes, want %d", disk.Perm, got, wantPartBytes)
			}
			e2fsckClean(t, disk)
		})
	}
}

// runFirstSteps does what an interrupted Grow leaves behind: the grown MBR
// entry and, if kernelDone, the kernel's partition resized as well.
func runFirstSteps(t *testing.T, disk *loopDisk, kernelDone bool) {
	t.Helper()
	f, err := os.OpenFile(disk.Device, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	geometry, err := readGeometry(f)
	if err != nil {
		t.Fatal(err)
	}
	sector := make([]byte, mbrSize)
	if _, err := f.ReadAt(sector, 0); err != nil {
		t.Fatal(err)
	}
	entries, err := parseMBR(sector)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := planPermGrowth(entries, geometry.Sectors(), geometry.SectorSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := writePermEntry(f, sector, plan); err != nil {
		t.Fatal(err)
	}
	if !kernelDone {
		return
	}

	perm, err := findPermPartition(f, disk.Mount, plan.Old, geometry)
	if err != nil {
		t.Fatal(err)
	}
	if err := resizeKernelPartition(f, perm, geometry.bytesOf(plan.New.Sectors)); err != nil {
		t.Fatal(err)
	}
}

// TestGrowRejectsWrongMount guards against growing a disk when /perm is not
// mounted from its partition 4, for example when the mount failed at boot.
func TestGrowRejectsWrongMount(t *testing.T) {
	disk := newLoopDisk(t)
	disk.enlarge(t, grownDiskBytes)
	sector0 := readSector0(t, disk.Image)

	if _, err := Grow(t.Context(), disk.Device, t.TempDir(), testLogger(t)); err == nil {
		t.Error("Grow with a mount point that is not partition 4: got no error, want one")
	}
	if !bytes.Equal(readSector0(t, disk.Image), sector0) {
		t.Error("Grow changed sector 0 although /perm was not mounted from the disk")
	}
	if got := kernelPartitionBytes(t, disk.Perm); got != 129024*512 {
		t.Errorf("kernel size of %s = %d bytes, want it unchanged at %d", disk.Perm, got, 129024*512)
	}
}

func TestFindDevicesLoopDisk(t *testing.T) {
	disk := newLoopDisk(t)
	want := Devices{Disk: disk.Device, Perm: disk.Perm}
	for _, cmdline := range []string{
		fmt.Sprintf("console=ttyS0 root=PARTUUID=%08x-02 rootwait", disk.Signature),
		fmt.Sprintf("root=PARTUUID=%08X-03", disk.Signature),
		"root=" + disk.Device + "p2",
	} {
		got, err := FindDevices(cmdline)
		if err != nil {
			t.Errorf("FindDevices(%q): %v", cmdline, err)
			continue
		}
		if got != want {
			t.Errorf("FindDevices(%q) = %+v, want %+v", cmdline, got, want)
		}
	}
}
