package qemu

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// Accelerators that Config.Accel and ChooseAccel accept. The empty string
// means AccelAuto.
const (
	AccelAuto = "auto"
	AccelKVM  = "kvm"
	AccelTCG  = "tcg"
)

// Host describes the machine that QEMU runs on, as far as the choice of
// accelerator depends on it. Tests replace the probes.
type Host struct {
	// Arch is the host's GOARCH, for example "amd64".
	Arch string

	// OpenKVM opens /dev/kvm read-write and closes it again. It returns an
	// error when KVM cannot be used.
	OpenKVM func() error

	// ReadCPUInfo returns the contents of /proc/cpuinfo.
	ReadCPUInfo func() ([]byte, error)
}

// LocalHost returns the Host that this process runs on.
func LocalHost() Host {
	return Host{
		Arch:        runtime.GOARCH,
		OpenKVM:     openKVM,
		ReadCPUInfo: func() ([]byte, error) { return os.ReadFile("/proc/cpuinfo") },
	}
}

func openKVM() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// ChooseAccel chooses the accelerator for target on the local host. See
// Host.ChooseAccel.
func ChooseAccel(target, want string) (accel, reason string, err error) {
	return LocalHost().ChooseAccel(target, want)
}

// ChooseAccel returns the accelerator, AccelKVM or AccelTCG, that QEMU uses
// for a guest of target, and a one-line reason for the choice. With want
// AccelAuto or "", it picks KVM only when all of these hold: /dev/kvm opens
// read-write, the host CPU does not report the "hypervisor" flag, and the
// guest has the host's architecture. Otherwise it picks TCG. A forced AccelKVM
// is rejected only where KVM cannot work at all, which is for rpi and for a
// guest of another architecture.
func (h Host) ChooseAccel(target, want string) (accel, reason string, err error) {
	guestArch, err := targetArch(target)
	if err != nil {
		return "", "", err
	}

	switch want {
	case AccelTCG:
		return AccelTCG, "TCG was requested", nil
	case AccelKVM:
		if reason := kvmImpossible(target, guestArch, h.Arch); reason != "" {
			return "", "", fmt.Errorf("accelerator kvm for target %s: %s; use tcg or auto", target, reason)
		}
		return AccelKVM, "KVM was requested", nil
	case AccelAuto, "":
		return h.chooseAuto(target, guestArch)
	default:
		return "", "", fmt.Errorf("invalid accelerator %q: use auto, kvm or tcg", want)
	}
}

func (h Host) chooseAuto(target, guestArch string) (accel, reason string, err error) {
	if reason := kvmImpossible(target, guestArch, h.Arch); reason != "" {
		return AccelTCG, reason, nil
	}

	if err := h.OpenKVM(); err != nil {
		return AccelTCG, fmt.Sprintf("/dev/kvm is not usable: %v", err), nil
	}

	cpuinfo, err := h.ReadCPUInfo()
	if err != nil {
		return AccelTCG, fmt.Sprintf("cannot tell whether the host is itself a virtual machine: %v", err), nil
	}
	if hasHypervisorFlag(cpuinfo) {
		// On an x86 virtual machine with QEMU 7.2, nested KVM aborted QEMU
		// ("failed to set MSR 0x10a") before the kernel started, so auto
		// does not rely on it.
		return AccelTCG, `the host CPU reports the "hypervisor" flag, so the host is itself a virtual machine; force kvm to try nested KVM`, nil
	}
	return AccelKVM, fmt.Sprintf("/dev/kvm is usable, the host is not a virtual machine and the guest is %s like the host", guestArch), nil
}

// kvmImpossible returns why KVM cannot run a guest of target at all, or ""
// when it might.
func kvmImpossible(target, guestArch, hostArch string) string {
	if target == TargetRPi {
		return "QEMU's raspi3b machine supports only TCG"
	}
	if guestArch != hostArch {
		return fmt.Sprintf("the guest is %s but the host is %s", guestArch, hostArch)
	}
	return ""
}

// hasHypervisorFlag reports whether a "flags" line of /proc/cpuinfo lists
// "hypervisor", the CPUID bit (leaf 1, ECX bit 31) that x86 hypervisors set
// for their guests. arm64 kernels print "Features" lines without such a flag,
// so on arm64 hosts this returns false.
func hasHypervisorFlag(cpuinfo []byte) bool {
	scanner := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for scanner.Scan() {
		key, value, ok := strings.Cut(scanner.Text(), ":")
		if !ok || strings.TrimSpace(key) != "flags" {
			continue
		}
		for _, flag := range strings.Fields(value) {
			if flag == "hypervisor" {
				return true
			}
		}
	}
	return false
}
