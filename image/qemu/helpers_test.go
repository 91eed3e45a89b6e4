package qemu

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// bootTimeout bounds each boot test. On a 2-core x86 virtual machine, TCG
// booted the gokrazy kernels to their root mount panic in 3 seconds when the
// machine was idle and in up to 35 seconds when it was busy.
const bootTimeout = 60 * time.Second

// moduleDir returns the folder of module in the Go module cache, or skips the
// test (fails it under CI=true) when the module is not downloaded.
func moduleDir(t *testing.T, module string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	dir := strings.TrimSpace(string(out))
	if err == nil && dir != "" {
		return dir
	}

	msg := fmt.Sprintf("module %s is not in the module cache (go list: %v); run go mod download %s", module, err, module)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func kernelPath(t *testing.T, target string) string {
	t.Helper()
	module := map[string]string{
		TargetAMD64: "github.com/gokrazy/kernel.amd64",
		TargetARM64: "github.com/gokrazy/kernel.arm64",
		TargetRPi:   "github.com/gokrazy/kernel.rpi",
	}[target]
	return filepath.Join(moduleDir(t, module), "vmlinuz")
}

func requireQEMU(t *testing.T, target string) {
	t.Helper()
	if target == TargetAMD64 {
		testpeer.Require(t, "qemu-system-x86_64", "qemu-system-x86")
		return
	}
	testpeer.Require(t, "qemu-system-aarch64", "qemu-system-arm")
}

// blankDisk creates a zero-filled disk image of size bytes.
func blankDisk(t *testing.T, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

type syncBuffer = testpeer.Buffer

// startVM starts cfg, stops it when the test ends and logs the console
// output when the test failed.
func startVM(t *testing.T, cfg Config) *VM {
	t.Helper()
	vm, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := vm.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if t.Failed() {
			t.Logf("qemu command: %s", vm.Command())
			t.Logf("console output:\n%s", vm.ConsoleOutput())
		}
	})
	t.Logf("qemu %s: accelerator %s: %s", cfg.Target, vm.Accel(), vm.AccelReason())
	return vm
}

// waitConsole waits for substr on vm's console and returns the time since
// start.
func waitConsole(t *testing.T, ctx context.Context, vm *VM, substr string, start time.Time) time.Duration {
	t.Helper()
	if err := vm.WaitConsole(ctx, substr); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// buildTestGuest cross-compiles internal/testguest for arch and packs it as
// /init into an initramfs (cpio "newc" archive), which it returns the path of.
func buildTestGuest(t *testing.T, arch string) string {
	t.Helper()
	dir := t.TempDir()
	binary := filepath.Join(dir, "init")
	cmd := exec.Command("go", "build", "-trimpath", "-o", binary, "./internal/testguest")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building testguest for %s: %v\n%s", arch, err, out)
	}

	init, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	w := &cpioWriter{w: &archive}
	w.directory("dev")
	// Character device 5:1 is /dev/console, which the kernel opens for init's
	// standard input and output.
	w.charDevice("dev/console", 5, 1)
	w.file("init", 0o755, init)
	w.trailer()
	if w.err != nil {
		t.Fatal(w.err)
	}

	path := filepath.Join(dir, "initramfs.cpio")
	if err := os.WriteFile(path, archive.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// cpioWriter writes the "newc" cpio format that the Linux kernel unpacks as
// initramfs, as Documentation/driver-api/early-userspace/buffer-format.rst in
// the kernel source describes it. Each entry is a header of "070701" and 13
// eight-digit hexadecimal fields, then the NUL-terminated name, then the data.
// The name and the data are each padded to a multiple of 4 bytes.
type cpioWriter struct {
	w     io.Writer
	inode int
	err   error
}

const (
	cpioModeDirectory = 0o040000
	cpioModeCharDev   = 0o020000
	cpioModeRegular   = 0o100000
)

func (c *cpioWriter) directory(name string) {
	c.entry(name, cpioModeDirectory|0o755, 2, 0, 0, nil)
}

func (c *cpioWriter) charDevice(name string, major, minor int) {
	c.entry(name, cpioModeCharDev|0o600, 1, major, minor, nil)
}

func (c *cpioWriter) file(name string, perm int, data []byte) {
	c.entry(name, cpioModeRegular|perm, 1, 0, 0, data)
}

// trailer writes the entry that ends the archive.
func (c *cpioWriter) trailer() {
	c.entry("TRAILER!!!", 0, 1, 0, 0, nil)
}

func (c *cpioWriter) entry(name string, mode, nlink, rdevMajor, rdevMinor int, data []byte) {
	if c.err != nil {
		return
	}
	c.inode++

	// The fields: inode, mode, uid, gid, nlink, mtime, file size, device
	// major and minor, rdev major and minor, name size with NUL, checksum.
	fields := []int{c.inode, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name) + 1, 0}
	var header bytes.Buffer
	header.WriteString("070701")
	for _, field := range fields {
		fmt.Fprintf(&header, "%08x", field)
	}
	header.WriteString(name)
	header.WriteByte(0)
	header.Write(cpioPadding(header.Len()))

	header.Write(data)
	header.Write(cpioPadding(len(data)))
	_, c.err = c.w.Write(header.Bytes())
}

func cpioPadding(n int) []byte {
	return make([]byte, (4-n%4)%4)
}
