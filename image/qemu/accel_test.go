package qemu

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

const (
	cpuinfoBareMetal = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr vmx\n"
	cpuinfoVM        = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr hypervisor\n"
	// An arm64 kernel prints "Features" and no hypervisor flag.
	cpuinfoARM64 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n"
)

func fakeHost(arch string, kvmErr error, cpuinfo string) Host {
	return Host{
		Arch:        arch,
		OpenKVM:     func() error { return kvmErr },
		ReadCPUInfo: func() ([]byte, error) { return []byte(cpuinfo), nil },
	}
}

func TestChooseAccel(t *testing.T) {
	for _, tc := range []struct {
		name       string
		host       Host
		target     string
		want       string
		wantAccel  string
		wantReason string
	}{
		{"bare metal amd64", fakeHost("amd64", nil, cpuinfoBareMetal), TargetAMD64, "", AccelKVM, "/dev/kvm is usable"},
		{"auto spelled out", fakeHost("amd64", nil, cpuinfoBareMetal), TargetAMD64, AccelAuto, AccelKVM, "/dev/kvm is usable"},
		{"host is a VM", fakeHost("amd64", nil, cpuinfoVM), TargetAMD64, "", AccelTCG, `"hypervisor" flag`},
		{"no /dev/kvm", fakeHost("amd64", fs.ErrNotExist, cpuinfoBareMetal), TargetAMD64, "", AccelTCG, "/dev/kvm is not usable"},
		{"/dev/kvm read-only", fakeHost("amd64", fs.ErrPermission, cpuinfoBareMetal), TargetAMD64, "", AccelTCG, "permission denied"},
		{"arm64 guest on amd64", fakeHost("amd64", nil, cpuinfoBareMetal), TargetARM64, "", AccelTCG, "the guest is arm64 but the host is amd64"},
		{"amd64 guest on arm64", fakeHost("arm64", nil, cpuinfoARM64), TargetAMD64, "", AccelTCG, "the guest is amd64 but the host is arm64"},
		{"arm64 on arm64", fakeHost("arm64", nil, cpuinfoARM64), TargetARM64, "", AccelKVM, "the guest is arm64 like the host"},
		{"rpi on arm64", fakeHost("arm64", nil, cpuinfoARM64), TargetRPi, "", AccelTCG, "raspi3b machine supports only TCG"},
		{"forced tcg", fakeHost("amd64", nil, cpuinfoBareMetal), TargetAMD64, AccelTCG, AccelTCG, "TCG was requested"},
		{"forced kvm in a VM", fakeHost("amd64", nil, cpuinfoVM), TargetAMD64, AccelKVM, AccelKVM, "KVM was requested"},
		{"forced kvm without /dev/kvm", fakeHost("amd64", fs.ErrNotExist, cpuinfoBareMetal), TargetAMD64, AccelKVM, AccelKVM, "KVM was requested"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			accel, reason, err := tc.host.ChooseAccel(tc.target, tc.want)
			if err != nil {
				t.Fatalf("ChooseAccel(%q, %q) failed: %v", tc.target, tc.want, err)
			}
			if accel != tc.wantAccel {
				t.Errorf("ChooseAccel(%q, %q) accelerator = %q, want %q (reason %q)", tc.target, tc.want, accel, tc.wantAccel, reason)
			}
			if !strings.Contains(reason, tc.wantReason) {
				t.Errorf("ChooseAccel(%q, %q) reason = %q, want it to contain %q", tc.target, tc.want, reason, tc.wantReason)
			}
			if strings.Contains(reason, "\n") {
				t.Errorf("ChooseAccel(%q, %q) reason = %q, want one line", tc.target, tc.want, reason)
			}
		})
	}
}

func TestChooseAccelRejects(t *testing.T) {
	host := fakeHost("amd64", nil, cpuinfoBareMetal)
	for _, tc := range []struct {
		name, target, want, wantErr string
	}{
		{"kvm for rpi", TargetRPi, AccelKVM, "raspi3b"},
		{"kvm for another arch", TargetARM64, AccelKVM, "the guest is arm64 but the host is amd64"},
		{"unknown accelerator", TargetAMD64, "hvf", `invalid accelerator "hvf"`},
		{"unknown target", "riscv64", "", `invalid target "riscv64"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			accel, _, err := host.ChooseAccel(tc.target, tc.want)
			if err == nil {
				t.Fatalf("ChooseAccel(%q, %q) = %q, want an error", tc.target, tc.want, accel)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ChooseAccel(%q, %q) error = %q, want it to contain %q", tc.target, tc.want, err, tc.wantErr)
			}
		})
	}
}

func TestChooseAccelCPUInfoUnreadable(t *testing.T) {
	host := fakeHost("amd64", nil, "")
	host.ReadCPUInfo = func() ([]byte, error) { return nil, errors.New("no /proc") }

	accel, reason, err := host.ChooseAccel(TargetAMD64, "")
	if err != nil {
		t.Fatal(err)
	}
	if accel != AccelTCG {
		t.Errorf("accelerator with unreadable cpuinfo = %q, want %q", accel, AccelTCG)
	}
	if !strings.Contains(reason, "no /proc") {
		t.Errorf("reason = %q, want it to name the read error", reason)
	}
}

func TestHasHypervisorFlag(t *testing.T) {
	for _, tc := range []struct {
		cpuinfo string
		want    bool
	}{
		{cpuinfoBareMetal, false},
		{cpuinfoVM, true},
		{cpuinfoARM64, false},
		// The word elsewhere than in a flags line does not count.
		{"model name\t: hypervisor edition\nflags\t\t: fpu\n", false},
		{"flags\t\t: fpu hypervisorx\n", false},
		{"", false},
	} {
		if got := hasHypervisorFlag([]byte(tc.cpuinfo)); got != tc.want {
			t.Errorf("hasHypervisorFlag(%q) = %v, want %v", tc.cpuinfo, got, tc.want)
		}
	}
}

// TestLocalHostProbes runs the real probes, which must not fail on
// /proc/cpuinfo, and logs the decision for this machine.
func TestLocalHostProbes(t *testing.T) {
	host := LocalHost()
	if _, err := host.ReadCPUInfo(); err != nil {
		t.Skipf("no /proc/cpuinfo here: %v", err)
	}
	accel, reason, err := host.ChooseAccel(TargetAMD64, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("this host: accelerator %s for amd64: %s", accel, reason)
}
