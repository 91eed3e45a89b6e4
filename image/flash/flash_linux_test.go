package flash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/fat"
	"github.com/heimwolke/heimwolke/packages/setupcode"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

const imageSize = 64 << 20

// writeRandomImage writes size pseudo-random bytes to a new file and returns
// its path.
func writeRandomImage(t *testing.T, size int64) string {
	t.Helper()
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{1, 2, 3}).Read(data)
	path := filepath.Join(t.TempDir(), "heimwolke.img")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// writePartitionTable writes an MBR with one 8 MiB Linux partition that
// starts at sector start to path, a file or a device, with sfdisk.
func writePartitionTable(t *testing.T, path string, start int) {
	t.Helper()
	sfdisk := testpeer.Require(t, "sfdisk", "fdisk")
	cmd := exec.Command(sfdisk, "--quiet", "--no-reread", "--no-tell-kernel", path)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("label: dos\nstart=%d, size=16384, type=83\n", start))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk %s: %v\n%s", path, err, out)
	}
}

// addKernelPartitions adds the partitions on dev to the kernel with partx,
// which parses the table in user space. That works even on a kernel built
// without MBR support, which finds no partitions itself.
func addKernelPartitions(t *testing.T, dev string) {
	t.Helper()
	partx := testpeer.Require(t, "partx", "util-linux")
	if out, err := exec.Command(partx, "--add", dev).CombinedOutput(); err != nil {
		t.Fatalf("partx --add %s: %v\n%s", dev, err, out)
	}
}

// partitionStart returns the first sector of the kernel's partition 1 of
// dev, or "" when the kernel has no such partition.
func partitionStart(t *testing.T, dev string) string {
	t.Helper()
	start, err := os.ReadFile("/sys/class/block/" + filepath.Base(dev) + "p1/start")
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(start))
}

// newLoopDevice attaches a zero-filled file of size bytes to a free loop
// device and detaches it when the test ends. With partitionScan set, the
// kernel reads partition tables on it (losetup --partscan).
func newLoopDevice(t *testing.T, size int64, partitionScan bool) string {
	t.Helper()
	testpeer.RequireRoot(t, "attaching loop devices")
	losetup := testpeer.Require(t, "losetup", "mount")

	backing := filepath.Join(t.TempDir(), "backing.img")
	if err := os.WriteFile(backing, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(backing, size); err != nil {
		t.Fatal(err)
	}

	args := []string{"--find", "--show"}
	if partitionScan {
		args = append(args, "--partscan")
	}
	out, err := exec.Command(losetup, append(args, backing)...).Output()
	if err != nil {
		t.Fatalf("losetup %v: %v", args, err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command(losetup, "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v\n%s", dev, err, out)
		}
	})
	return dev
}

// requireSameContent compares the first n bytes of two files with cmp.
func requireSameContent(t *testing.T, a, b string, n int64) {
	t.Helper()
	cmp := testpeer.Require(t, "cmp", "diffutils")
	out, err := exec.Command(cmp, "-n", strconv.FormatInt(n, 10), a, b).CombinedOutput()
	if err != nil {
		t.Fatalf("cmp -n %d %s %s: %v\n%s", n, a, b, err, out)
	}
}

func requireZero(t *testing.T, path string, n int64) {
	t.Helper()
	requireSameContent(t, "/dev/zero", path, n)
}

func mountExt4(t *testing.T, dev string) string {
	t.Helper()
	mkfs := testpeer.Require(t, "mkfs.ext4", "e2fsprogs")
	mountProgram := testpeer.Require(t, "mount", "mount")
	umount := testpeer.Require(t, "umount", "mount")

	if out, err := exec.Command(mkfs, "-q", "-F", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v\n%s", dev, err, out)
	}
	dir := t.TempDir()
	if out, err := exec.Command(mountProgram, dev, dir).CombinedOutput(); err != nil {
		t.Skipf("mounting %s is not permitted here: %v: %s", dev, err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command(umount, dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}

func TestFlashLoopDevice(t *testing.T) {
	dev := newLoopDevice(t, imageSize, true)
	writePartitionTable(t, dev, 2048)
	addKernelPartitions(t, dev)
	if got := partitionStart(t, dev); got != "2048" {
		t.Fatalf("partition 1 of %s before the flash starts at sector %q, want 2048", dev, got)
	}
	img := writeRandomImage(t, imageSize)
	writePartitionTable(t, img, 4096)

	var out bytes.Buffer
	err := Flash(t.Context(), Options{Image: img, Device: dev, In: strings.NewReader("yes\n"), Out: &out})
	if err != nil {
		t.Fatalf("Flash: %v\noutput:\n%s", err, out.String())
	}

	requireSameContent(t, img, dev, imageSize)
	for _, want := range []string{dev, "64.0 MiB (67108864 bytes)", "loop device backed by", `Type "yes"`,
		"writing 64.0 MiB of 64.0 MiB (100%)", "verifying 64.0 MiB of 64.0 MiB (100%)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not contain %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "\r") {
		t.Errorf("output to a bytes.Buffer contains a carriage return, want plain lines:\n%q", out.String())
	}

	// BLKRRPART replaced the kernel's view of the old table: partition 1
	// now starts at 4096, or is gone on a kernel built without MBR support.
	// No udev runs in the test to rescan the device on its own.
	if got := partitionStart(t, dev); got != "4096" && got != "" {
		t.Errorf("partition 1 of %s after the flash starts at sector %q, want 4096 or no partition", dev, got)
	}
}

func TestFlashAnswerNo(t *testing.T) {
	img := writeRandomImage(t, imageSize)
	dev := newLoopDevice(t, imageSize, false)
	for _, answer := range []string{"no\n", "nein\n", "\n", "", "yes please\n"} {
		err := Flash(t.Context(), Options{Image: img, Device: dev, In: strings.NewReader(answer), Out: &bytes.Buffer{}})
		if !errors.Is(err, ErrAborted) {
			t.Errorf("Flash with answer %q: got error %v, want ErrAborted", answer, err)
		}
		if err != nil && !strings.Contains(err.Error(), dev) {
			t.Errorf("Flash with answer %q: error %q does not name %s", answer, err, dev)
		}
		requireZero(t, dev, imageSize)
	}
}

func TestFlashAnswerJa(t *testing.T) {
	dev := newLoopDevice(t, imageSize, false)
	img := writeRandomImage(t, imageSize)
	err := Flash(t.Context(), Options{Image: img, Device: dev, In: strings.NewReader("Ja\n")})
	if err != nil {
		t.Fatalf("Flash with answer Ja: %v", err)
	}
	requireSameContent(t, img, dev, imageSize)
}

func TestFlashMountedDevice(t *testing.T) {
	img := writeRandomImage(t, imageSize)
	dev := newLoopDevice(t, imageSize, false)
	dir := mountExt4(t, dev)

	// The user may name the device through a symlink such as /dev/disk/by-id/....
	link := filepath.Join(t.TempDir(), "usb-Card_Reader")
	if err := os.Symlink(dev, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{dev, link} {
		err := Flash(t.Context(), Options{Image: img, Device: path, In: strings.NewReader("no\n")})
		if !errors.Is(err, ErrInUse) {
			t.Fatalf("Flash to mounted %s: got error %v, want ErrInUse", path, err)
		}
		for _, want := range []string{path, dir, "umount"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}
	}
}

func TestFlashMountedPartition(t *testing.T) {
	dev := newLoopDevice(t, imageSize, true)
	writePartitionTable(t, dev, 2048)
	addKernelPartitions(t, dev)
	partition := dev + "p1"
	dir := mountExt4(t, partition)

	img := writeRandomImage(t, imageSize)
	err := Flash(t.Context(), Options{Image: img, Device: dev, In: strings.NewReader("no\n")})
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("Flash to %s with %s mounted: got error %v, want ErrInUse", dev, partition, err)
	}
	for _, want := range []string{partition, dir, dev} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestFlashSwapDevice(t *testing.T) {
	mkswap := testpeer.Require(t, "mkswap", "util-linux")
	swapon := testpeer.Require(t, "swapon", "mount")
	swapoff := testpeer.Require(t, "swapoff", "mount")
	img := writeRandomImage(t, imageSize)
	dev := newLoopDevice(t, imageSize, false)

	if out, err := exec.Command(mkswap, dev).CombinedOutput(); err != nil {
		t.Fatalf("mkswap %s: %v\n%s", dev, err, out)
	}
	if out, err := exec.Command(swapon, dev).CombinedOutput(); err != nil {
		t.Skipf("swapon %s is not permitted here: %v: %s", dev, err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command(swapoff, dev).CombinedOutput(); err != nil {
			t.Errorf("swapoff %s: %v\n%s", dev, err, out)
		}
	})

	err := Flash(t.Context(), Options{Image: img, Device: dev, In: strings.NewReader("no\n")})
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("Flash to swap device %s: got error %v, want ErrInUse", dev, err)
	}
	if !strings.Contains(err.Error(), "swapoff") {
		t.Errorf("error %q does not contain %q", err, "swapoff")
	}
}

// systemDisks returns the whole disks behind "/" as lsblk lists them, or
// skips the test when "/" is not on a block device.
func systemDisks(t *testing.T) []string {
	t.Helper()
	findmnt := testpeer.Require(t, "findmnt", "util-linux")
	lsblk := testpeer.Require(t, "lsblk", "util-linux")

	out, err := exec.Command(findmnt, "--noheadings", "--output", "SOURCE", "--nofsroot", "/").Output()
	if err != nil {
		t.Fatalf("findmnt /: %v", err)
	}
	source := strings.TrimSpace(string(out))
	if !strings.HasPrefix(source, "/dev/") {
		t.Skipf("/ is mounted from %q, not from a block device", source)
	}

	out, err = exec.Command(lsblk, "--inverse", "--list", "--noheadings", "--paths", "--output", "NAME,TYPE", source).Output()
	if err != nil {
		t.Fatalf("lsblk --inverse %s: %v", source, err)
	}
	var disks []string
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 2 && fields[1] == "disk" {
			disks = append(disks, fields[0])
		}
	}
	if len(disks) == 0 {
		t.Fatalf("lsblk --inverse %s lists no disk:\n%s", source, out)
	}
	return disks
}

func TestFlashSystemDisk(t *testing.T) {
	testpeer.RequireRoot(t, "opening the system disk to read its size")
	img := writeRandomImage(t, imageSize)
	for _, disk := range systemDisks(t) {
		// The answer "no" keeps the system safe even if the check were broken.
		err := Flash(t.Context(), Options{Image: img, Device: disk, In: strings.NewReader("no\n"), Out: &bytes.Buffer{}})
		if !errors.Is(err, ErrSystemDisk) {
			t.Errorf("Flash to system disk %s: got error %v, want ErrSystemDisk", disk, err)
			continue
		}
		if !strings.Contains(err.Error(), disk) {
			t.Errorf("error %q does not name %s", err, disk)
		}
	}
}

func TestFlashTooSmall(t *testing.T) {
	img := writeRandomImage(t, imageSize)
	dev := newLoopDevice(t, imageSize/2, false)
	err := Flash(t.Context(), Options{Image: img, Device: dev, Yes: true})
	if !errors.Is(err, ErrTooSmall) {
		t.Fatalf("Flash 64 MiB to a 32 MiB device: got error %v, want ErrTooSmall", err)
	}
	for _, want := range []string{dev, "32.0 MiB", "64.0 MiB"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	requireZero(t, dev, imageSize/2)
}

func TestFlashPartitionRejected(t *testing.T) {
	dev := newLoopDevice(t, imageSize, true)
	writePartitionTable(t, dev, 2048)
	addKernelPartitions(t, dev)
	img := writeRandomImage(t, 1<<20)

	err := Flash(t.Context(), Options{Image: img, Device: dev + "p1", Yes: true})
	if !errors.Is(err, ErrPartition) {
		t.Fatalf("Flash to partition %sp1: got error %v, want ErrPartition", dev, err)
	}
	if !strings.Contains(err.Error(), "name the whole disk "+dev) {
		t.Errorf("error %q does not point to the whole disk %s", err, dev)
	}
}

func TestFlashMissingDevice(t *testing.T) {
	img := writeRandomImage(t, 1<<20)
	missing := filepath.Join(t.TempDir(), "sdz")
	err := Flash(t.Context(), Options{Image: img, Device: missing, Yes: true})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Flash to %s: got error %v, want ErrNotFound", missing, err)
	}
	if !strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), missing) {
		t.Errorf("error %q does not say \"not found\" and name %s", err, missing)
	}
}

func TestFlashRegularFile(t *testing.T) {
	img := writeRandomImage(t, imageSize)
	copyPath := filepath.Join(t.TempDir(), "copy.img")
	if err := os.WriteFile(copyPath, []byte("old content"), 0o644); err != nil {
		t.Fatal(err)
	}

	err := Flash(t.Context(), Options{Image: img, Device: copyPath, Yes: true})
	if !errors.Is(err, ErrNotBlockDevice) {
		t.Fatalf("Flash to regular file without AllowRegularFile: got error %v, want ErrNotBlockDevice", err)
	}
	if !strings.Contains(err.Error(), copyPath) {
		t.Errorf("error %q does not name %s", err, copyPath)
	}

	err = Flash(t.Context(), Options{Image: img, Device: copyPath, Yes: true, AllowRegularFile: true})
	if err != nil {
		t.Fatalf("Flash to regular file with AllowRegularFile: %v", err)
	}
	requireSameContent(t, img, copyPath, imageSize)

	err = Flash(t.Context(), Options{Image: img, Device: img, Yes: true, AllowRegularFile: true})
	if err == nil || !strings.Contains(err.Error(), "same file") {
		t.Errorf("Flash of an image onto itself: got error %v, want one that says \"same file\"", err)
	}
}

func TestFlashCharacterDevice(t *testing.T) {
	img := writeRandomImage(t, 1<<20)
	err := Flash(t.Context(), Options{Image: img, Device: "/dev/null", Yes: true, AllowRegularFile: true})
	if !errors.Is(err, ErrNotBlockDevice) {
		t.Fatalf("Flash to /dev/null: got error %v, want ErrNotBlockDevice", err)
	}
	if !strings.Contains(err.Error(), "character device") {
		t.Errorf("error %q does not say \"character device\"", err)
	}
}

// cancelOnWrite cancels a context on the first write to it, which is the
// first progress line.
type cancelOnWrite struct {
	cancel context.CancelFunc
}

func (w cancelOnWrite) Write(p []byte) (int, error) {
	w.cancel()
	return len(p), nil
}

func TestFlashCancel(t *testing.T) {
	img := writeRandomImage(t, imageSize)
	dev := newLoopDevice(t, imageSize, false)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	err := Flash(ctx, Options{Image: img, Device: dev, Yes: true, Out: cancelOnWrite{cancel}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Flash with a cancelled context: got error %v, want context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "partial image") {
		t.Errorf("error %q does not warn about a partial image", err)
	}
	requireZero(t, dev, imageSize)
}

// TestFlashBusyPartitionTable guards against failing a flash that was
// written and verified only because the kernel cannot re-read the partition
// table while a partition is open.
func TestFlashBusyPartitionTable(t *testing.T) {
	dev := newLoopDevice(t, imageSize, true)
	writePartitionTable(t, dev, 2048)
	addKernelPartitions(t, dev)
	partition, err := os.Open(dev + "p1")
	if err != nil {
		t.Fatal(err)
	}
	defer partition.Close()
	img := writeRandomImage(t, imageSize)

	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	if err := Flash(t.Context(), Options{Image: img, Device: dev, Yes: true, Logger: logger}); err != nil {
		t.Fatalf("Flash with %sp1 open: %v", dev, err)
	}
	if !strings.Contains(logs.String(), "partition table not re-read") || !strings.Contains(logs.String(), "busy") {
		t.Errorf("log does not report a busy partition table:\n%s", logs.String())
	}
	requireSameContent(t, img, dev, imageSize)
}

// TestFlashSetupCode flashes an image whose boot partition holds the
// setup-code.txt placeholder and checks that the code lands on the copy,
// not in the image file, and that an image without the file is refused.
func TestFlashSetupCode(t *testing.T) {
	img := writeRandomImage(t, imageSize)
	writePartitionTable(t, img, 4096)
	w, err := fat.NewWriter(fat.Options{Size: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddFile(setupcode.FileName, setupcode.Placeholder()); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WritePartition(f, 4096*512); err != nil {
		t.Fatal(err)
	}
	f.Close()

	copyPath := filepath.Join(t.TempDir(), "copy.img")
	if err := os.WriteFile(copyPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := Options{Image: img, Device: copyPath, Yes: true, AllowRegularFile: true, SetupCode: "K3QX-7M4D-WT9A"}
	if err := Flash(t.Context(), opts); err != nil {
		t.Fatalf("Flash with a setup code: %v", err)
	}
	for path, want := range map[string]string{copyPath: "K3QX7M4DWT9A", img: ""} {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := setupcode.Read(f, 4096*512)
		f.Close()
		if err != nil || got != want {
			t.Errorf("setup code in %s = %q, %v; want %q", path, got, err, want)
		}
	}

	plain := writeRandomImage(t, imageSize)
	writePartitionTable(t, plain, 4096)
	opts.Image = plain
	err = Flash(t.Context(), opts)
	if err == nil || !strings.Contains(err.Error(), "rebuild the image") {
		t.Errorf("Flash of an image without %s: err = %v, want one that says to rebuild the image", setupcode.FileName, err)
	}
}

// TestFlashWrongImageWritesNothing flashes a file that is no Heimwolke
// image with a setup code and checks that the device stays untouched.
func TestFlashWrongImageWritesNothing(t *testing.T) {
	img := writeRandomImage(t, 4<<20)
	device := filepath.Join(t.TempDir(), "card.img")
	if err := os.WriteFile(device, make([]byte, 8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Flash(context.Background(), Options{Image: img, Device: device, Yes: true, AllowRegularFile: true, SetupCode: "K3QX-7M4D-WT9A"})
	if err == nil || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("Flash of a random file: %v, want an error that says nothing was written", err)
	}
	requireZero(t, device, 8<<20)
}
