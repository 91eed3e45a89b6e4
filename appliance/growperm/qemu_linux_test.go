package growperm

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"golang.org/x/sys/unix"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// The QEMU test boots the gokrazy amd64 kernel with this test binary as
// /init. The kernel passes unknown name=value parameters to init as
// environment variables, so guestEnvParam marks the binary as the guest. The guest prints one line starting with guestReportPrefix or
// guestErrorPrefix to the serial console.
const (
	guestEnvParam     = "growperm_guest"
	guestReportPrefix = "growperm-report: "
	guestErrorPrefix  = "growperm-error: "
	guestPermMount    = "/perm"
)

func TestMain(m *testing.M) {
	if os.Getpid() == 1 && os.Getenv(guestEnvParam) == "1" {
		runGuest()
	}
	os.Exit(m.Run())
}

// guestReport is what the guest found, sent to the host as JSON.
type guestReport struct {
	Devices     Devices
	First       Result
	FirstError  string
	Second      Result
	SecondError string
	Note        string
	StatfsBytes int64
}

// runGuest does at boot what the Heimwolke init does, reports the outcome
// on the console and reboots, which ends QEMU because it runs with
// -no-reboot.
func runGuest() {
	report, err := guestGrow(slog.New(slog.NewTextHandler(os.Stdout, nil)))
	if err != nil {
		fmt.Printf("\n%s%v\n", guestErrorPrefix, err)
	} else {
		encoded, _ := json.Marshal(report)
		fmt.Printf("\n%s%s\n", guestReportPrefix, encoded)
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		fmt.Printf("%sreboot: %v\n", guestErrorPrefix, err)
	}
	select {}
}

func guestGrow(log *slog.Logger) (guestReport, error) {
	var report guestReport
	mounts := []struct{ source, target, fstype string }{
		{"devtmpfs", "/dev", "devtmpfs"},
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
	}
	for _, m := range mounts {
		if err := unix.Mount(m.source, m.target, m.fstype, 0, ""); err != nil {
			return report, fmt.Errorf("mounting %s: %w", m.target, err)
		}
	}

	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return report, err
	}
	report.Devices, err = FindDevices(string(cmdline))
	if err != nil {
		return report, err
	}
	if err := unix.Mount(report.Devices.Perm, guestPermMount, "ext4", 0, ""); err != nil {
		return report, fmt.Errorf("mounting %s on %s: %w", report.Devices.Perm, guestPermMount, err)
	}
	note := filepath.Join(guestPermMount, "note.txt")
	if err := os.WriteFile(note, []byte("kept"), 0o644); err != nil {
		return report, err
	}

	// The second run stands for the next boot.
	ctx := context.Background()
	report.First, err = Grow(ctx, report.Devices.Disk, guestPermMount, log)
	if err != nil {
		report.FirstError = err.Error()
	}
	report.Second, err = Grow(ctx, report.Devices.Disk, guestPermMount, log)
	if err != nil {
		report.SecondError = err.Error()
	}

	content, err := os.ReadFile(note)
	if err != nil {
		return report, err
	}
	report.Note = string(content)
	var fs unix.Statfs_t
	if err := unix.Statfs(guestPermMount, &fs); err != nil {
		return report, err
	}
	report.StatfsBytes = int64(fs.Blocks) * fs.Bsize
	return report, unix.Unmount(guestPermMount, 0)
}

// imageLayout is the sfdisk script of a disk laid out like a Heimwolke image
// with a 256 MiB /perm, the smallest that the image builder makes.
const imageLayout = `label: dos
label-id: 0x%08x
unit: sectors

start=2048, size=65536, type=c
start=67584, size=32768, type=83
start=100352, size=32768, type=83
start=133120, size=524288, type=83
`

// TestGrowUnderGokrazyKernel boots the gokrazy amd64 kernel under QEMU with
// a disk image flashed to a larger virtual disk, finds the disk from
// root=PARTUUID=, grows /perm as the init does at boot and checks the disk
// afterwards with sfdisk, dumpe2fs and e2fsck. It also covers the file
// system step, which sandboxes without CAP_SYS_RESOURCE cannot run on loop
// devices.
func TestGrowUnderGokrazyKernel(t *testing.T) {
	qemu := testpeer.Require(t, "qemu-system-x86_64", "qemu-system-x86")
	mkfs := testpeer.Require(t, "mkfs.ext4", "e2fsprogs")
	kernel := gokrazyKernel(t)
	initrd := writeGuestInitramfs(t)

	const permOffset = 133120 * 512
	tests := []struct {
		name       string
		layout     string
		diskBytes  int64
		permBytes  int64
		grownBytes int64
		makeFS     func(t *testing.T, image string, permBytes int64)
		// wantResizeError is part of the error that the file system step
		// must return; empty means the file system must grow.
		wantResizeError string
	}{{
		name:       "mkfs.ext4 to 3 GiB",
		layout:     testLayout,
		diskBytes:  testDiskBytes,
		permBytes:  129024 * 512,
		grownBytes: grownDiskBytes,
		makeFS: func(t *testing.T, image string, permBytes int64) {
			runTool(t, mkfs, "-q", "-F", "-b", "4096", "-E", fmt.Sprintf("offset=%d", permOffset), image, fmt.Sprintf("%dk", permBytes/1024))
		},
	}, {
		// Without resize_inode the kernel converts the file system to
		// meta_bg while it grows it.
		name:       "go-diskfs ext4 without resize_inode to 32 GiB",
		layout:     imageLayout,
		diskBytes:  (133120 + 524288) * 512,
		permBytes:  524288 * 512,
		grownBytes: 32<<30 + 300<<10,
		makeFS: func(t *testing.T, image string, permBytes int64) {
			makeDiskfsExt4(t, image, permBytes, ext4.WithFeatureReservedGDTBlocksForExpansion(false))
		},
	}, {
		// go-diskfs v1.9.4 fills the resize inode's double-indirect block
		// as if it had 256 entries, so with 4 KiB blocks the last reserved
		// GDT block sits at index 0 instead of index 256, and Linux rejects
		// the resize with EINVAL ("reserved block 257 not at offset 256").
		// Grow must then leave a consistent disk and retry at the next
		// boot. When go-diskfs fixes this, the case fails and should become
		// a growth case.
		name:            "go-diskfs ext4 with resize_inode is rejected",
		layout:          imageLayout,
		diskBytes:       (133120 + 524288) * 512,
		permBytes:       524288 * 512,
		grownBytes:      32<<30 + 300<<10,
		makeFS:          func(t *testing.T, image string, permBytes int64) { makeDiskfsExt4(t, image, permBytes) },
		wantResizeError: "invalid argument",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signature := rand.Uint32()
			image := makeSizedTestImage(t, fmt.Sprintf(tt.layout, signature), tt.diskBytes)
			tt.makeFS(t, image, tt.permBytes)
			perm := fmt.Sprintf("%s?offset=%d", image, permOffset)
			e2fsckImage(t, "before Grow", perm)
			before := dumpTable(t, image)
			sector0 := readSector0(t, image)
			if err := os.Truncate(image, tt.grownBytes); err != nil {
				t.Fatal(err)
			}

			report := bootGuest(t, qemu, kernel, initrd, image, signature)

			wantPartBytes := tt.grownBytes/mib*mib - permOffset
			if tt.wantResizeError == "" {
				checkGuestReport(t, report, wantPartBytes)
			} else {
				checkRejectedResize(t, report, tt.wantResizeError, tt.permBytes)
			}
			checkGrownTable(t, image, before, tt.grownBytes)
			if got := readSector0(t, image); !bytes.Equal(got[:partitionTableOff], sector0[:partitionTableOff]) {
				t.Error("boot code or disk signature changed")
			}
			e2fsckImage(t, "after Grow", perm)
			blocks := dumpe2fsUint(t, dumpe2fsHeader(t, perm), "Block count", 0)
			if got := int64(blocks) * 4096; got != report.Second.NewFileSystemBytes {
				t.Errorf("dumpe2fs block count = %d (%d bytes), want %d bytes as Grow reported", blocks, got, report.First.NewFileSystemBytes)
			}
		})
	}
}

// makeDiskfsExt4 makes the ext4 of partition 4 with go-diskfs and the
// parameters of the image builder: 4 KiB blocks and go-diskfs's default
// features, which include resize_inode, changed by features.
func makeDiskfsExt4(t *testing.T, image string, permBytes int64, features ...ext4.FeatureOpt) {
	t.Helper()
	f, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const permOffset = 133120 * 512
	if _, err := ext4.Create(file.New(f, false), permBytes, permOffset, 512, &ext4.Params{SectorsPerBlock: 8, Features: features}); err != nil {
		t.Fatalf("go-diskfs ext4.Create: %v", err)
	}
}

// e2fsckImage checks the file system at perm ("image?offset=N", which
// e2fsprogs opens at that offset) with e2fsck -fn.
func e2fsckImage(t *testing.T, when, perm string) {
	t.Helper()
	e2fsck := testpeer.Require(t, "e2fsck", "e2fsprogs")
	if out, err := exec.CommandContext(t.Context(), e2fsck, "-fn", perm).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn %s: %v\n%s", when, err, out)
	}
}

// checkGuestReport checks the results of both Grow runs in the guest.
func checkGuestReport(t *testing.T, report guestReport, wantPartBytes int64) {
	t.Helper()
	checkGuestDevices(t, report)
	if report.FirstError != "" {
		t.Fatalf("first Grow: %s", report.FirstError)
	}
	first := report.First
	if !first.TableRewritten || !first.KernelUpdated || !first.FileSystemResized {
		t.Errorf("first Grow = %+v, want the table rewritten, the kernel updated and the file system resized", first)
	}
	if first.NewPartitionBytes != wantPartBytes {
		t.Errorf("NewPartitionBytes = %d, want %d", first.NewPartitionBytes, wantPartBytes)
	}
	if first.NewFileSystemBytes > wantPartBytes || first.NewFileSystemBytes < wantPartBytes-8*mib {
		t.Errorf("NewFileSystemBytes = %d, want at most %d and at most 8 MiB less", first.NewFileSystemBytes, wantPartBytes)
	}
	if report.StatfsBytes < wantPartBytes*9/10 || report.StatfsBytes > wantPartBytes {
		t.Errorf("statfs size in the guest = %d bytes, want between 90%% and 100%% of the %d-byte partition", report.StatfsBytes, wantPartBytes)
	}
	if report.SecondError != "" || report.Second.Changed() {
		t.Errorf("second Grow = %+v, error %q; want no change and no error", report.Second, report.SecondError)
	}
	if report.Note != "kept" {
		t.Errorf("note.txt after Grow = %q, want %q", report.Note, "kept")
	}
}

// checkRejectedResize checks that when the kernel rejects the file system
// step, Grow grows the partition, keeps the file system and its data, and
// retries only the file system step at the next boot.
func checkRejectedResize(t *testing.T, report guestReport, wantError string, permBytes int64) {
	t.Helper()
	checkGuestDevices(t, report)
	for i, run := range []struct {
		result Result
		err    string
	}{{report.First, report.FirstError}, {report.Second, report.SecondError}} {
		if !strings.Contains(run.err, wantError) {
			t.Errorf("Grow run %d: got error %q, want one containing %q", i+1, run.err, wantError)
		}
		if run.result.FileSystemResized || run.result.NewFileSystemBytes != permBytes {
			t.Errorf("Grow run %d = %+v, want the file system unchanged at %d bytes", i+1, run.result, permBytes)
		}
	}
	if !report.First.TableRewritten || !report.First.KernelUpdated {
		t.Errorf("first Grow = %+v, want the table rewritten and the kernel updated", report.First)
	}
	if report.Second.TableRewritten || report.Second.KernelUpdated {
		t.Errorf("second Grow = %+v, want only the file system step retried", report.Second)
	}
	if report.Note != "kept" {
		t.Errorf("note.txt after Grow = %q, want %q", report.Note, "kept")
	}
}

func checkGuestDevices(t *testing.T, report guestReport) {
	t.Helper()
	if want := (Devices{Disk: "/dev/vda", Perm: "/dev/vda4"}); report.Devices != want {
		t.Errorf("FindDevices in the guest = %+v, want %+v", report.Devices, want)
	}
}

// bootGuest runs QEMU until the guest reboots and returns the guest's report.
func bootGuest(t *testing.T, qemu, kernel, initrd, image string, signature uint32) guestReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmdline := fmt.Sprintf("console=ttyS0 panic=-1 root=PARTUUID=%08x-02 %s=1", signature, guestEnvParam)
	cmd := exec.CommandContext(ctx, qemu, append(accelArgs(),
		"-m", "512", "-nographic", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd, "-append", cmdline,
		"-drive", "file="+image+",format=raw,if=virtio")...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("QEMU ran for %v", time.Since(start).Round(100*time.Millisecond))
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, out)
	}

	scanner := bufio.NewScanner(bytes.NewReader(out))
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		line := strings.TrimRight(scanner.Text(), "\r")
		if strings.Contains(line, `msg="perm `) {
			t.Logf("guest: %s", line)
		}
		if encoded, ok := strings.CutPrefix(line, guestReportPrefix); ok {
			var report guestReport
			if err := json.Unmarshal([]byte(encoded), &report); err != nil {
				t.Fatalf("parsing the guest report %q: %v", encoded, err)
			}
			return report
		}
		if message, ok := strings.CutPrefix(line, guestErrorPrefix); ok {
			t.Fatalf("guest failed: %s\nconsole:\n%s", message, out)
		}
	}
	t.Fatalf("the guest printed no report\nconsole:\n%s", out)
	return guestReport{}
}

// accelArgs returns QEMU's accelerator and CPU arguments: KVM with the host
// CPU on bare metal with a usable /dev/kvm, otherwise emulation of the "max"
// CPU. Inside a virtual machine (the "hypervisor" CPU flag) nested KVM often
// fails on model-specific registers, so emulation is used there too. QEMU's
// default qemu64 model lacks instructions the gokrazy kernel uses.
func accelArgs() []string {
	emulate := []string{"-accel", "tcg", "-cpu", "max"}
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil || bytes.Contains(cpuinfo, []byte(" hypervisor")) {
		return emulate
	}
	kvm, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return emulate
	}
	kvm.Close()
	return []string{"-accel", "kvm", "-cpu", "host"}
}

// gokrazyKernel returns the path of the vmlinuz in the gokrazy/kernel.amd64
// module that go.mod requires, downloading the module if needed.
func gokrazyKernel(t *testing.T) string {
	t.Helper()
	goTool := testpeer.Require(t, "go", "golang-go")
	out, err := exec.CommandContext(t.Context(), goTool, "mod", "download", "-json", "github.com/gokrazy/kernel.amd64").Output()
	if err != nil {
		t.Fatalf("go mod download github.com/gokrazy/kernel.amd64: %v", err)
	}
	var module struct{ Dir string }
	if err := json.Unmarshal(out, &module); err != nil || module.Dir == "" {
		t.Fatalf("go mod download returned no module folder (%v): %s", err, out)
	}
	return filepath.Join(module.Dir, "vmlinuz")
}

// writeGuestInitramfs writes an initramfs whose /init is this package's
// test binary, built static for amd64 so that it runs without a C library.
func writeGuestInitramfs(t *testing.T) string {
	t.Helper()
	goTool := testpeer.Require(t, "go", "golang-go")
	guest := filepath.Join(t.TempDir(), "guest.test")
	build := exec.CommandContext(t.Context(), goTool, "test", "-c", "-o", guest, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the guest test binary: %v\n%s", err, out)
	}
	if err := checkStatic(guest); err != nil {
		t.Fatalf("the guest test binary cannot run as init: %v", err)
	}
	binary, err := os.ReadFile(guest)
	if err != nil {
		t.Fatal(err)
	}

	var archive bytes.Buffer
	w := &cpioWriter{w: &archive}
	for _, dir := range []string{"dev", "proc", "sys", strings.TrimPrefix(guestPermMount, "/")} {
		w.add(dir, cpioDir|0o755, 0, 0, nil)
	}
	// The kernel opens /dev/console for init's standard streams before
	// devtmpfs is mounted, so the archive carries the node (char 5:1).
	w.add("dev/console", cpioCharDevice|0o600, 5, 1, nil)
	w.add("init", cpioRegular|0o755, 0, 0, binary)
	w.trailer()
	if w.err != nil {
		t.Fatal(w.err)
	}

	path := filepath.Join(t.TempDir(), "initrd.cpio")
	if err := os.WriteFile(path, archive.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkStatic returns an error if the ELF file at path needs a dynamic
// loader, which the initramfs does not contain.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("it is dynamically linked")
		}
	}
	return nil
}

// File types in the mode field of a cpio header.
const (
	cpioDir         = 0o040000
	cpioRegular     = 0o100000
	cpioCharDevice  = 0o020000
	cpioTrailerName = "TRAILER!!!"
)

// cpioWriter writes the "newc" cpio format that the kernel unpacks as an
// initramfs (Documentation/driver-api/early-userspace/buffer-format.rst):
// a 110-byte ASCII header of 8-digit hex fields, the NUL-terminated name and
// the data, each padded to 4 bytes.
type cpioWriter struct {
	w     io.Writer
	inode int
	err   error
}

func (c *cpioWriter) add(name string, mode, rdevMajor, rdevMinor uint32, data []byte) {
	if c.err != nil {
		return
	}
	c.inode++
	links := 1
	if mode&cpioDir != 0 {
		links = 2
	}
	header := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.inode, mode, 0, 0, links, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(header + name + "\x00"))
	c.pad(len(header) + len(name) + 1)
	c.write(data)
	c.pad(len(data))
}

func (c *cpioWriter) trailer() {
	c.add(cpioTrailerName, 0, 0, 0, nil)
}

func (c *cpioWriter) pad(n int) {
	c.write(make([]byte, (4-n%4)%4))
}

func (c *cpioWriter) write(p []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(p)
	}
}
