package qemu

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBootKernel boots the gokrazy kernels with a blank disk. Without a root
// file system the kernel panics, and with panic=-1 it reboots at once, which
// ends QEMU because of -no-reboot.
func TestBootKernel(t *testing.T) {
	for _, tc := range []struct {
		target string
		// diskLine shows that the kernel found the disk.
		diskLine string
	}{
		{TargetAMD64, "virtio_blk virtio0: [vda]"},
		{TargetARM64, "virtio_blk virtio0: [vda]"},
		{TargetRPi, "mmcblk0: mmc0:"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			t.Parallel()
			requireQEMU(t, tc.target)
			cfg := Config{
				Target:   tc.target,
				Kernel:   kernelPath(t, tc.target),
				Cmdline:  "console=" + ConsoleDevice(tc.target) + " panic=-1\n",
				Disk:     blankDisk(t, 8<<20),
				Snapshot: true,
				Console:  &syncBuffer{},
			}
			if tc.target == TargetRPi {
				cfg.DTB = moduleDir(t, "github.com/gokrazy/kernel.rpi") + "/bcm2710-rpi-3-b.dtb"
				// rootwait makes the kernel wait for the SD card, which
				// the MMC driver finds only after the root mount starts.
				cfg.Cmdline = "console=ttyS0 root=/dev/mmcblk0p2 rootwait panic=-1"
			}
			ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
			defer cancel()

			start := time.Now()
			vm := startVM(t, cfg)
			version := waitConsole(t, ctx, vm, "Linux version", start)
			disk := waitConsole(t, ctx, vm, tc.diskLine, start)
			panicked := waitConsole(t, ctx, vm, "Kernel panic", start)

			waitExit(t, ctx, vm)
			exited := time.Since(start)
			t.Logf("%s boot: first console output after %v, %q after %v, disk after %v, panic after %v, QEMU exited after %v",
				tc.target, vm.FirstConsoleOutput().Round(time.Millisecond), "Linux version", version.Round(time.Millisecond),
				disk.Round(time.Millisecond), panicked.Round(time.Millisecond), exited.Round(time.Millisecond))
			if err := vm.Wait(); err != nil {
				t.Errorf("Wait after the guest rebooted: got %v, want nil", err)
			}

			err := vm.WaitConsole(ctx, "never printed")
			if !errors.Is(err, ErrExited) {
				t.Errorf("WaitConsole after exit: got %v, want an error wrapping ErrExited", err)
			}
			if got := cfg.Console.(*syncBuffer).String(); !strings.Contains(got, "Linux version") {
				t.Errorf("Config.Console did not receive the console output: got %d bytes without %q", len(got), "Linux version")
			}
			logConsoleLines(t, vm, `Linux version|console|tty|Kernel panic`)
		})
	}
}

func waitExit(t *testing.T, ctx context.Context, vm *VM) {
	t.Helper()
	select {
	case <-vm.Done():
	case <-ctx.Done():
		t.Fatalf("waiting for QEMU to exit after the kernel panic: %v", ctx.Err())
	}
}

// logConsoleLines logs the console lines that match pattern, for the record
// of what a boot printed.
func logConsoleLines(t *testing.T, vm *VM, pattern string) {
	t.Helper()
	re := regexp.MustCompile(pattern)
	scanner := bufio.NewScanner(bytes.NewReader(vm.ConsoleOutput()))
	for scanner.Scan() {
		if line := scanner.Text(); re.MatchString(line) {
			t.Logf("console: %s", line)
		}
	}
}

// TestForwards boots a guest that serves TCP port 80 and dials out, and
// checks the forwards in both directions, that a forward is bound to
// 127.0.0.1 only, and that restrict=on blocks every other connection from
// the guest.
func TestForwards(t *testing.T) {
	for _, target := range []string{TargetAMD64, TargetARM64} {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			requireQEMU(t, target)
			testForwards(t, target)
		})
	}
}

func testForwards(t *testing.T, target string) {
	// The guest forward's target, and a host port that the guest must not
	// reach through the user network's gateway 10.0.2.2.
	forwarded := listenLines(t)
	blocked := listenLines(t)
	guestForward := GuestForward{Guest: netip.MustParseAddrPort("10.0.2.100:25"), HostPort: port(t, forwarded.ln)}
	blockedAddr := fmt.Sprintf("10.0.2.2:%d", port(t, blocked.ln))

	forwards, err := DefaultForwards(0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Target: target,
		Kernel: kernelPath(t, target),
		Initrd: buildTestGuest(t, targetArchOrFatal(t, target)),
		// The guest dials the guest forward twice, because QEMU must relay
		// each connection on its own.
		Cmdline: fmt.Sprintf("console=%s panic=-1 testguest_dial=%s,%s testguest_dial_blocked=%s",
			ConsoleDevice(target), guestForward.Guest, guestForward.Guest, blockedAddr),
		Forwards:      forwards,
		GuestForwards: []GuestForward{guestForward},
	}
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()

	start := time.Now()
	vm := startVM(t, cfg)
	for _, arg := range vm.Args() {
		if strings.Contains(arg, "0.0.0.0") {
			t.Errorf("QEMU argument %q contains 0.0.0.0, want every forward bound to 127.0.0.1", arg)
		}
	}
	for _, f := range vm.Forwards() {
		t.Logf("forward: %s", f)
	}

	listening := waitConsole(t, ctx, vm, "testguest: listening on port 80", start)
	t.Logf("%s: first console output after %v, guest listening after %v",
		target, vm.FirstConsoleOutput().Round(time.Millisecond), listening.Round(time.Millisecond))

	greeting := readGreeting(t, vm.Addr(80))
	if greeting != "hello from testguest" {
		t.Errorf("greeting through %s: got %q, want %q", vm.Addr(80), greeting, "hello from testguest")
	}
	checkLoopbackOnly(t, vm.HostPort(80))

	waitConsole(t, ctx, vm, "testguest: ready", start)
	for i := range 2 {
		select {
		case line := <-forwarded.lines:
			if line != "hello from testguest" {
				t.Errorf("line of connection %d through the guest forward: got %q, want %q", i+1, line, "hello from testguest")
			}
		case <-ctx.Done():
			t.Fatalf("connection %d through guest forward %s: %v", i+1, guestForward, ctx.Err())
		}
	}
	if output := vm.ConsoleOutput(); !bytes.Contains(output, []byte("testguest: dial "+blockedAddr+" failed")) {
		t.Errorf("guest dial to %s: got no failure on the console, want restrict=on to block it", blockedAddr)
	}
	select {
	case line := <-blocked.lines:
		t.Errorf("guest reached host port %s through the gateway despite restrict=on, and sent %q", blockedAddr, line)
	default:
	}

	if err := vm.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := vm.Stop(); err != nil {
		t.Errorf("second Stop: got %v, want nil", err)
	}
	if err := vm.Wait(); err != nil {
		t.Errorf("Wait after Stop: got %v, want nil", err)
	}
}

func targetArchOrFatal(t *testing.T, target string) string {
	t.Helper()
	arch, err := targetArch(target)
	if err != nil {
		t.Fatal(err)
	}
	return arch
}

func port(t *testing.T, ln net.Listener) int {
	t.Helper()
	return ln.Addr().(*net.TCPAddr).Port
}

// lineListener accepts connections on 127.0.0.1 and sends the first line of
// each on lines.
type lineListener struct {
	ln    net.Listener
	lines chan string
}

func listenLines(t *testing.T) *lineListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })

	l := &lineListener{ln: ln, lines: make(chan string, 10)}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				line, _ := bufio.NewReader(conn).ReadString('\n')
				l.lines <- strings.TrimSpace(line)
			}()
		}
	}()
	return l
}

func readGreeting(t *testing.T, addr string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dialing the forward %s: %v", addr, err)
	}
	defer conn.Close()

	conn.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("reading from the forward %s: got %q, %v", addr, line, err)
	}
	return strings.TrimSpace(line)
}

// checkLoopbackOnly checks that the forward's host port accepts connections
// on 127.0.0.1 but not on 127.0.0.2, which a socket bound to 0.0.0.0 would
// accept too.
func checkLoopbackOnly(t *testing.T, hostPort int) {
	t.Helper()
	other := fmt.Sprintf("127.0.0.2:%d", hostPort)
	conn, err := net.DialTimeout("tcp", other, 2*time.Second)
	if err == nil {
		conn.Close()
		t.Errorf("dialing %s: got a connection, want it refused because the forward is bound to 127.0.0.1 only", other)
	}
}

// TestSnapshot checks that the guest's writes reach the disk image without
// Snapshot and do not with it.
func TestSnapshot(t *testing.T) {
	requireQEMU(t, TargetAMD64)
	kernel := kernelPath(t, TargetAMD64)
	initrd := buildTestGuest(t, "amd64")

	for _, tc := range []struct {
		snapshot  bool
		wantWrite bool
	}{
		{snapshot: true, wantWrite: false},
		{snapshot: false, wantWrite: true},
	} {
		t.Run(fmt.Sprintf("snapshot=%v", tc.snapshot), func(t *testing.T) {
			disk := blankDisk(t, 8<<20)
			cfg := Config{
				Target:   TargetAMD64,
				Kernel:   kernel,
				Initrd:   initrd,
				Cmdline:  "console=ttyS0 panic=-1 testguest_write_disk=vda",
				Disk:     disk,
				Snapshot: tc.snapshot,
			}
			ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
			defer cancel()

			vm := startVM(t, cfg)
			waitConsole(t, ctx, vm, "testguest: wrote disk vda", time.Now())
			if err := vm.Stop(); err != nil {
				t.Fatalf("Stop: %v", err)
			}

			data, err := os.ReadFile(disk)
			if err != nil {
				t.Fatal(err)
			}
			written := bytes.HasPrefix(data, []byte("written by testguest"))
			if written != tc.wantWrite {
				t.Errorf("disk image after the guest wrote it with Snapshot %v: got written %v, want %v", tc.snapshot, written, tc.wantWrite)
			}
		})
	}
}

// TestCancelStopsQEMU checks that canceling Start's context ends QEMU and
// that Wait reports the cancellation.
func TestCancelStopsQEMU(t *testing.T) {
	requireQEMU(t, TargetAMD64)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	vm, err := Start(ctx, Config{
		Target:  TargetAMD64,
		Kernel:  kernelPath(t, TargetAMD64),
		Cmdline: "console=ttyS0",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Stop() })
	if err := vm.WaitConsole(t.Context(), "Linux version"); err != nil {
		t.Fatal(err)
	}

	cancel()
	select {
	case <-vm.Done():
	case <-time.After(2 * stopTimeout):
		t.Fatal("QEMU still runs after the context was canceled")
	}
	if err := vm.Wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait after cancel: got %v, want an error wrapping context.Canceled", err)
	}
}

// TestHostPortTaken checks that QEMU's refusal to bind a forward's host port
// reaches the caller with QEMU's own message.
func TestHostPortTaken(t *testing.T) {
	requireQEMU(t, TargetAMD64)
	occupant, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer occupant.Close()

	vm, err := Start(t.Context(), Config{
		Target:   TargetAMD64,
		Kernel:   kernelPath(t, TargetAMD64),
		Cmdline:  "console=ttyS0",
		Forwards: []Forward{{GuestPort: 80, HostPort: port(t, occupant)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Stop() })

	err = vm.WaitConsole(t.Context(), "Linux version")
	if !errors.Is(err, ErrExited) {
		t.Fatalf("WaitConsole with a host port in use: got %v, want an error wrapping ErrExited", err)
	}
	t.Logf("error with a host port in use: %v", err)
	if !strings.Contains(err.Error(), "host forwarding rule") {
		t.Errorf("WaitConsole error = %q, want QEMU's message about the host forwarding rule", err)
	}
	if err := vm.Wait(); err == nil {
		t.Error("Wait with a host port in use: got nil, want QEMU's exit error")
	}
}
