package qemu

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestArgsAMD64(t *testing.T) {
	cfg := Config{
		Target:        TargetAMD64,
		Disk:          "/images/a,b.img",
		Snapshot:      true,
		Kernel:        "/k/vmlinuz",
		Cmdline:       "root=PARTUUID=1a2b3c4d-02 console=ttyS0\n",
		Forwards:      []Forward{{80, 10080}, {443, 10443}},
		GuestForwards: []GuestForward{{netip.MustParseAddrPort("10.0.2.100:25"), 2525}},
	}.withDefaults()

	got := cfg.args(AccelTCG, "/usr/bin/nc")
	want := []string{
		"-nodefaults", "-no-user-config", "-display", "none",
		"-machine", "q35", "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "1024",
		"-kernel", "/k/vmlinuz", "-append", "root=PARTUUID=1a2b3c4d-02 console=ttyS0",
		"-no-reboot",
		"-serial", "stdio",
		"-snapshot",
		"-drive", "file=/images/a,,b.img,format=raw,if=none,id=disk0", "-device", "virtio-blk-pci,drive=disk0",
		"-netdev", "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:10080-:80,hostfwd=tcp:127.0.0.1:10443-:443," +
			"guestfwd=tcp:10.0.2.100:25-cmd:/usr/bin/nc -N 127.0.0.1 2525",
		"-device", "virtio-net-pci,netdev=net0,romfile=",
	}
	if !slices.Equal(got, want) {
		t.Errorf("args:\n got %q\nwant %q", got, want)
	}
}

func TestArgsARM64KVM(t *testing.T) {
	cfg := Config{Target: TargetARM64, Kernel: "/k/Image", MemoryMiB: 2048, CPUs: 4}.withDefaults()
	got := strings.Join(cfg.args(AccelKVM, ""), " ")
	for _, want := range []string{
		"-machine virt,gic-version=max -accel kvm -cpu host -smp 4 -m 2048",
		"-serial stdio",
		"-netdev user,id=net0,restrict=on -device virtio-net-pci,netdev=net0,romfile=",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args %q: missing %q", got, want)
		}
	}
	if strings.Contains(got, "-snapshot") || strings.Contains(got, "-drive") {
		t.Errorf("args %q: got -snapshot or -drive, want neither without Disk and Snapshot", got)
	}
}

func TestArgsRPi(t *testing.T) {
	cfg := Config{
		Target:   TargetRPi,
		Disk:     "/images/sd.img",
		Kernel:   "/k/vmlinuz",
		DTB:      "/k/bcm2710-rpi-3-b.dtb",
		Cmdline:  "console=ttyS0",
		Forwards: []Forward{{80, 10080}},
	}.withDefaults()

	got := strings.Join(cfg.args(AccelTCG, ""), " ")
	for _, want := range []string{
		"-machine raspi3b -accel tcg -kernel",
		"-dtb /k/bcm2710-rpi-3-b.dtb",
		// The mini UART, ttyS0 in the guest, is QEMU's second serial port.
		"-serial null -serial stdio",
		"-drive file=/images/sd.img,format=raw,if=sd",
		"-netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:10080-:80 -device usb-net,netdev=net0",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args %q: missing %q", got, want)
		}
	}
	for _, unwanted := range []string{"-cpu", "-smp", "-m ", "virtio"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("args %q: got %q, which the raspi3b machine rejects or lacks", got, unwanted)
		}
	}
}

func TestArgsNeverBindAllAddresses(t *testing.T) {
	forwards, err := DefaultForwards(10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{TargetAMD64, TargetARM64, TargetRPi} {
		cfg := Config{Target: target, Kernel: "/k", DTB: "/d", Forwards: forwards}.withDefaults()
		for _, arg := range cfg.args(AccelTCG, "") {
			if strings.Contains(arg, "0.0.0.0") {
				t.Errorf("%s: argument %q contains 0.0.0.0", target, arg)
			}
			for _, rule := range strings.Split(arg, ",") {
				if strings.HasPrefix(rule, "hostfwd=") && !strings.HasPrefix(rule, "hostfwd=tcp:127.0.0.1:") {
					t.Errorf("%s: rule %q is not bound to 127.0.0.1", target, rule)
				}
			}
		}
	}
}

func writeFile(t *testing.T, name string, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigValidate(t *testing.T) {
	kernel := writeFile(t, "vmlinuz", 1024)
	dtb := writeFile(t, "rpi.dtb", 1024)
	sdCard := writeFile(t, "sd.img", 8<<20)
	oddDisk := writeFile(t, "odd.img", 5<<20)

	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr []string
	}{
		{"amd64 valid", Config{Target: TargetAMD64, Kernel: kernel}, nil},
		{"rpi valid", Config{Target: TargetRPi, Kernel: kernel, DTB: dtb, Disk: sdCard}, nil},
		{"unknown target", Config{Target: "x86", Kernel: kernel}, []string{`invalid target "x86"`}},
		{"missing kernel", Config{Target: TargetAMD64}, []string{"missing kernel"}},
		{"kernel not found", Config{Target: TargetAMD64, Kernel: "/nonexistent/vmlinuz"}, []string{"kernel: stat /nonexistent/vmlinuz"}},
		{"kernel is a folder", Config{Target: TargetAMD64, Kernel: t.TempDir()}, []string{"is not a regular file"}},
		{"too little memory", Config{Target: TargetAMD64, Kernel: kernel, MemoryMiB: 16}, []string{"memory 16 MiB is too small"}},
		{"negative CPUs", Config{Target: TargetARM64, Kernel: kernel, CPUs: -1}, []string{"invalid CPU count -1"}},
		{"rpi without device tree", Config{Target: TargetRPi, Kernel: kernel}, []string{"missing device tree"}},
		{"rpi SD card size", Config{Target: TargetRPi, Kernel: kernel, DTB: dtb, Disk: oddDisk},
			[]string{"power of two", "truncate -s 8388608"}},
		{"rpi memory and CPUs", Config{Target: TargetRPi, Kernel: kernel, DTB: dtb, MemoryMiB: 2048, CPUs: 2},
			[]string{"memory 2048 MiB for target rpi", "2 CPUs for target rpi"}},
		{"every problem at once", Config{Target: TargetAMD64, MemoryMiB: 1, Forwards: []Forward{{0, 1}}},
			[]string{"missing kernel", "memory 1 MiB", "invalid box port 0"}},
		{"bad guest forward", Config{Target: TargetAMD64, Kernel: kernel,
			GuestForwards: []GuestForward{{netip.MustParseAddrPort("10.0.2.2:25"), 2525}}},
			[]string{"guest forward 10.0.2.2:25"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.withDefaults().validate()
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Errorf("validate: got %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("validate: got no error, want %q", tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("validate: got %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"-serial", "-serial"},
		{"console=ttyS0 panic=-1", "'console=ttyS0 panic=-1'"},
		{"it's", `'it'\''s'`},
		{"", "''"},
	} {
		if got := shellQuote(tc.in); got != tc.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestConsoleDevice(t *testing.T) {
	for target, want := range map[string]string{
		TargetAMD64: "ttyS0",
		TargetARM64: "ttyAMA0",
		TargetRPi:   "ttyS0",
		"riscv64":   "",
	} {
		if got := ConsoleDevice(target); got != want {
			t.Errorf("ConsoleDevice(%q) = %q, want %q", target, got, want)
		}
	}
}
