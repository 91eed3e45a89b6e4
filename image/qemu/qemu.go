// Package qemu boots Heimwolke disk images under QEMU for the image builder's
// vm command and the whole-box tests. It boots the image's kernel directly,
// connects the serial console to a writer, and reaches the box only through
// TCP forwards bound to 127.0.0.1.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrExited is returned by WaitConsole when QEMU exits before the console
// printed the awaited text.
var ErrExited = errors.New("qemu exited")

// stopTimeout is how long Stop and a canceled context wait for QEMU to quit
// after SIGTERM before they kill it.
const stopTimeout = 5 * time.Second

// VM is a running QEMU process.
type VM struct {
	cfg         Config
	args        []string
	accel       string
	accelReason string
	logger      *slog.Logger

	cmd     *exec.Cmd
	console *console
	stderr  *stderrLog
	started time.Time

	// stopped is set by Stop, so that Wait reports no error for the kill.
	stopped atomic.Bool
	// done is closed when QEMU has exited and its output is copied. waitErr
	// is set before done is closed.
	done    chan struct{}
	waitErr error
}

// Start starts QEMU for cfg and returns without waiting for the guest to
// boot. Host ports of zero in cfg.Forwards become free ports, which
// VM.Forwards and VM.HostPort return. Canceling ctx stops QEMU as Stop does.
func Start(ctx context.Context, cfg Config) (*VM, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("invalid VM config: %w", err)
	}

	accel, reason, err := cfg.Host.ChooseAccel(cfg.Target, cfg.Accel)
	if err != nil {
		return nil, err
	}

	program, err := findQEMU(cfg)
	if err != nil {
		return nil, err
	}
	nc, err := findNetcat(cfg.GuestForwards)
	if err != nil {
		return nil, err
	}
	if err := pickFreePorts(cfg.Forwards); err != nil {
		return nil, err
	}

	vm := &VM{
		cfg:         cfg,
		args:        cfg.args(accel, nc),
		accel:       accel,
		accelReason: reason,
		logger:      cfg.Logger.With("target", cfg.Target),
		done:        make(chan struct{}),
	}
	vm.console = newConsole(cfg.Console, vm.logger)
	vm.stderr = &stderrLog{logger: vm.logger}

	if err := vm.startProcess(ctx, program); err != nil {
		return nil, err
	}
	return vm, nil
}

func findQEMU(cfg Config) (string, error) {
	program, err := exec.LookPath(cfg.QEMU)
	if err == nil {
		return program, nil
	}

	pkg := "qemu-system-arm"
	if cfg.Target == TargetAMD64 {
		pkg = "qemu-system-x86"
	}
	return "", fmt.Errorf("finding QEMU for target %s: %w; install the Debian package %s", cfg.Target, err, pkg)
}

func findNetcat(guestForwards []GuestForward) (string, error) {
	if len(guestForwards) == 0 {
		return "", nil
	}
	nc, err := exec.LookPath("nc")
	if err != nil {
		return "", fmt.Errorf("finding nc for the guest forwards: %w; install the Debian package netcat-openbsd", err)
	}
	return nc, nil
}

func (vm *VM) startProcess(ctx context.Context, program string) error {
	cmd := exec.CommandContext(ctx, program, vm.args...)
	cmd.Stdout = vm.console
	cmd.Stderr = vm.stderr
	cmd.Cancel = func() error {
		return cmd.Process.Signal(syscall.SIGTERM)
	}
	cmd.WaitDelay = stopTimeout
	setProcAttr(cmd)

	vm.logger.Info("qemu starting", "accel", vm.accel, "accel_reason", vm.accelReason)
	vm.logger.Debug("qemu command", "program", program, "args", vm.args)
	vm.started = time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", program, err)
	}
	vm.cmd = cmd

	go vm.wait()
	return nil
}

func (vm *VM) wait() {
	err := vm.cmd.Wait()
	vm.waitErr = err
	vm.logger.Info("qemu exited", "err", err, "stopped", vm.stopped.Load(), "run_time", time.Since(vm.started).Round(time.Millisecond))
	close(vm.done)
}

// Stop sends QEMU SIGTERM, kills it when it is still running after five
// seconds, and waits until it has exited. Calling Stop again, or after QEMU
// exited, does nothing.
func (vm *VM) Stop() error {
	vm.stopped.Store(true)
	select {
	case <-vm.done:
		return nil
	default:
	}

	if err := vm.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stopping qemu (pid %d): %w", vm.cmd.Process.Pid, err)
	}

	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-vm.done:
		return nil
	case <-timer.C:
	}

	vm.logger.Warn("qemu ignored SIGTERM, killing it", "pid", vm.cmd.Process.Pid)
	if err := vm.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing qemu (pid %d): %w", vm.cmd.Process.Pid, err)
	}
	<-vm.done
	return nil
}

// Wait waits until QEMU exits. It returns nil when QEMU exited with status 0,
// which it does when the guest powers off or reboots, or when Stop ended it.
// When the context given to Start ended it, the error wraps the context's
// error. Any other error contains QEMU's last error output.
func (vm *VM) Wait() error {
	<-vm.done
	if vm.stopped.Load() {
		return nil
	}
	return vm.exitError()
}

func (vm *VM) exitError() error {
	if vm.waitErr == nil {
		return nil
	}
	if tail := vm.stderr.tail(); tail != "" {
		return fmt.Errorf("qemu: %w: %s", vm.waitErr, tail)
	}
	return fmt.Errorf("qemu: %w", vm.waitErr)
}

// Done returns a channel that is closed when QEMU has exited.
func (vm *VM) Done() <-chan struct{} {
	return vm.done
}

// WaitConsole waits until the console has printed substr since QEMU started.
// It returns an error wrapping ErrExited when QEMU exits first, or wrapping
// the cause of ctx when ctx ends first.
//
// NOTE: only the last 4 to 8 MiB of console output are searched.
func (vm *VM) WaitConsole(ctx context.Context, substr string) error {
	want := []byte(substr)
	var from int64
	for {
		found, next, changed := vm.console.find(want, from)
		if found {
			return nil
		}
		from = next

		select {
		case <-changed:
		case <-vm.done:
			// QEMU's output is copied completely before done is closed.
			if found, _, _ := vm.console.find(want, from); found {
				return nil
			}
			return fmt.Errorf("waiting for console output %q: %w (%s; last console line: %q)",
				substr, ErrExited, vm.exitStatus(), vm.console.lastLine())
		case <-ctx.Done():
			return fmt.Errorf("waiting for console output %q: %w (last console line: %q)",
				substr, context.Cause(ctx), vm.console.lastLine())
		}
	}
}

func (vm *VM) exitStatus() string {
	if err := vm.exitError(); err != nil {
		return err.Error()
	}
	return "exit status 0"
}

// ConsoleOutput returns a copy of the console output so far (at most the
// last 8 MiB).
func (vm *VM) ConsoleOutput() []byte {
	return vm.console.output()
}

// FirstConsoleOutput returns the time from Start to the first console output,
// or 0 when the console has printed nothing yet.
func (vm *VM) FirstConsoleOutput() time.Duration {
	return vm.console.firstOutput()
}

// Accel returns the accelerator in use, AccelKVM or AccelTCG.
func (vm *VM) Accel() string {
	return vm.accel
}

// AccelReason returns in one line why Accel was chosen.
func (vm *VM) AccelReason() string {
	return vm.accelReason
}

// Forwards returns the forwards with the host ports in use.
func (vm *VM) Forwards() []Forward {
	return slices.Clone(vm.cfg.Forwards)
}

// GuestForwards returns the guest forwards.
func (vm *VM) GuestForwards() []GuestForward {
	return slices.Clone(vm.cfg.GuestForwards)
}

// HostPort returns the port of 127.0.0.1 that is forwarded to guestPort, or 0
// when guestPort is not forwarded.
func (vm *VM) HostPort(guestPort int) int {
	for _, f := range vm.cfg.Forwards {
		if f.GuestPort == guestPort {
			return f.HostPort
		}
	}
	return 0
}

// Addr returns the host address, "127.0.0.1:port", that is forwarded to
// guestPort, or "" when guestPort is not forwarded.
func (vm *VM) Addr(guestPort int) string {
	port := vm.HostPort(guestPort)
	if port == 0 {
		return ""
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// Args returns QEMU's command line arguments, without the program name.
func (vm *VM) Args() []string {
	return slices.Clone(vm.args)
}

// Command returns the QEMU command line as one line for logs, with each
// argument quoted where the shell would need it.
func (vm *VM) Command() string {
	words := []string{vm.cmd.Path}
	for _, arg := range vm.args {
		words = append(words, shellQuote(arg))
	}
	return strings.Join(words, " ")
}

func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`;&|<>()*?[]#~!{}") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
