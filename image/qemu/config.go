package qemu

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"os"
	"slices"
)

// Targets that Config.Target accepts.
const (
	// TargetAMD64 is a PC (QEMU's q35 machine) with virtio disk and network.
	TargetAMD64 = "amd64"

	// TargetARM64 is QEMU's generic arm64 "virt" machine with virtio disk and
	// network.
	TargetARM64 = "arm64"

	// TargetRPi is a Raspberry Pi 3B (QEMU's raspi3b machine): the image is
	// its SD card, the network a USB network adapter, and the kernel's
	// console the mini UART ttyS0.
	TargetRPi = "rpi"
)

// Config describes one virtual machine.
type Config struct {
	// Target is TargetAMD64, TargetARM64 or TargetRPi.
	Target string

	// Disk is the raw disk image. Empty means no disk. For TargetRPi its
	// size must be a power of two, because QEMU's SD card requires one.
	Disk string

	// Snapshot makes QEMU write the guest's changes to a temporary file
	// instead of Disk (QEMU's -snapshot), so Disk stays unmodified.
	Snapshot bool

	// Kernel is the kernel file that QEMU boots directly, because the images
	// have no BIOS or EFI boot loader.
	Kernel string

	// Cmdline is the kernel command line, for example the contents of the
	// image's cmdline.txt. Leading and trailing white space is removed.
	Cmdline string

	// Initrd is an optional initramfs (a cpio archive).
	Initrd string

	// DTB is the device tree blob, required for TargetRPi and ignored for
	// the others, where QEMU generates one.
	DTB string

	// Accel is AccelAuto (or ""), AccelKVM or AccelTCG; see ChooseAccel.
	Accel string

	// Host is the machine that ChooseAccel probes. Nil means LocalHost().
	Host *Host

	// MemoryMiB is the guest memory in MiB. Zero means 1024. TargetRPi has a
	// fixed 1024.
	MemoryMiB int

	// CPUs is the number of virtual CPUs. Zero means 2 for TargetARM64, 1 for
	// TargetAMD64 and the fixed 4 for TargetRPi.
	CPUs int

	// Forwards are the host ports that reach the guest's ports.
	Forwards []Forward

	// GuestForwards are the user network addresses that reach host ports.
	// They need nc from Debian's netcat-openbsd package on the host.
	GuestForwards []GuestForward

	// Console receives the guest's serial console output. Nil discards
	// it, but VM.WaitConsole still searches it.
	Console io.Writer

	// QEMU overrides the QEMU program. Empty means qemu-system-x86_64 for
	// TargetAMD64 and qemu-system-aarch64 for the others, found in $PATH.
	QEMU string

	// Logger receives QEMU's start, stop and error output. Nil means
	// slog.Default().
	Logger *slog.Logger
}

const (
	defaultMemoryMiB = 1024
	defaultCPUs      = 2

	// QEMU 7.2's raspi3b machine rejects any other memory size or CPU count.
	rpiMemoryMiB = 1024
	rpiCPUs      = 4
)

// ConsoleDevice returns the serial device that the kernel must name in
// "console=" for its output to reach Config.Console: ttyS0 for TargetAMD64
// and TargetRPi, ttyAMA0 for TargetARM64, and "" for an unknown target.
func ConsoleDevice(target string) string {
	switch target {
	case TargetAMD64, TargetRPi:
		return "ttyS0"
	case TargetARM64:
		return "ttyAMA0"
	}
	return ""
}

func targetArch(target string) (string, error) {
	switch target {
	case TargetAMD64:
		return "amd64", nil
	case TargetARM64, TargetRPi:
		return "arm64", nil
	}
	return "", fmt.Errorf("invalid target %q: use amd64, arm64 or rpi", target)
}

// withDefaults returns a copy of cfg with the zero values replaced by their
// defaults.
func (cfg Config) withDefaults() Config {
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = defaultMemoryMiB
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = defaultCPUs
		switch cfg.Target {
		case TargetRPi:
			cfg.CPUs = rpiCPUs
		case TargetAMD64:
			// With two CPUs under QEMU 7.2's emulation (TCG), the gokrazy
			// amd64 kernel hit "Oops: int3" in sched_clock_cpu in 3 of 26
			// boots here, and in none of 15 boots with one CPU.
			cfg.CPUs = 1
		}
	}
	if cfg.Console == nil {
		cfg.Console = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Host == nil {
		host := LocalHost()
		cfg.Host = &host
	}
	if cfg.QEMU == "" {
		cfg.QEMU = "qemu-system-aarch64"
		if cfg.Target == TargetAMD64 {
			cfg.QEMU = "qemu-system-x86_64"
		}
	}
	cfg.Forwards = slices.Clone(cfg.Forwards)
	cfg.GuestForwards = slices.Clone(cfg.GuestForwards)
	return cfg
}

// validate reports every problem of a Config that withDefaults returned.
func (cfg Config) validate() error {
	var errs []error
	if _, err := targetArch(cfg.Target); err != nil {
		errs = append(errs, err)
	}

	if cfg.Kernel == "" {
		errs = append(errs, errors.New("missing kernel: set Config.Kernel to the image's vmlinuz"))
	}
	errs = append(errs, checkFile("kernel", cfg.Kernel), checkFile("initrd", cfg.Initrd), checkFile("disk", cfg.Disk))

	if cfg.MemoryMiB < 64 {
		errs = append(errs, fmt.Errorf("memory %d MiB is too small; use at least 64", cfg.MemoryMiB))
	}
	if cfg.CPUs < 1 {
		errs = append(errs, fmt.Errorf("invalid CPU count %d; use at least 1", cfg.CPUs))
	}
	if cfg.Target == TargetRPi {
		errs = append(errs, cfg.validateRPi())
	}

	errs = append(errs, validateForwards(cfg.Forwards))
	for _, g := range cfg.GuestForwards {
		errs = append(errs, g.validate())
	}
	return errors.Join(errs...)
}

func (cfg Config) validateRPi() error {
	var errs []error
	if cfg.DTB == "" {
		errs = append(errs, errors.New("missing device tree: target rpi needs Config.DTB, for example bcm2710-rpi-3-b.dtb from the kernel.rpi module"))
	}
	errs = append(errs, checkFile("device tree", cfg.DTB))

	if cfg.MemoryMiB != rpiMemoryMiB {
		errs = append(errs, fmt.Errorf("memory %d MiB for target rpi: the raspi3b machine has exactly %d MiB; leave MemoryMiB at 0", cfg.MemoryMiB, rpiMemoryMiB))
	}
	if cfg.CPUs != rpiCPUs {
		errs = append(errs, fmt.Errorf("%d CPUs for target rpi: the raspi3b machine has exactly %d; leave CPUs at 0", cfg.CPUs, rpiCPUs))
	}

	if cfg.Disk != "" {
		errs = append(errs, checkSDCardSize(cfg.Disk))
	}
	return errors.Join(errs...)
}

// checkFile returns an error when path is set but is not a regular file.
func checkFile(role, path string) error {
	if path == "" {
		return nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", role, err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s %s is not a regular file", role, path)
	}
	return nil
}

func checkSDCardSize(disk string) error {
	info, err := os.Stat(disk)
	if err != nil {
		return nil // checkFile reports it.
	}

	size := uint64(info.Size())
	if size != 0 && size&(size-1) == 0 {
		return nil
	}
	next := uint64(1) << bits.Len64(size)
	return fmt.Errorf("disk %s is %d bytes, but QEMU's SD card needs a size that is a power of two; grow a copy of the image to %d bytes (truncate -s %d COPY)", disk, size, next, next)
}
