package boxtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/image/build"
	"github.com/heimwolke/heimwolke/image/qemu"
	"github.com/heimwolke/heimwolke/packages/fat"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// run runs an independent tool and returns its output, failing the test
// with the output when it exits with an error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC", "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// extractPartition copies partition n (1-based) of the image into its own
// file, as the tools below want a file system at offset 0.
func extractPartition(t *testing.T, img string, layout build.Layout, n int) string {
	t.Helper()
	p := layout.Table.Partitions[n-1]
	in, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out := filepath.Join(t.TempDir(), fmt.Sprintf("part%d.img", n))
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, io.NewSectionReader(in, int64(p.Start)*512, int64(p.Sectors)*512)); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRPiImageWithDebianTools reads the rpi image back with sfdisk, fsck.vfat,
// mtools, unsquashfs and e2fsck, none of which shares code with our writers.
func TestRPiImageWithDebianTools(t *testing.T) {
	sfdisk := testpeer.Require(t, "sfdisk", "fdisk")
	fsckVfat := testpeer.Require(t, "fsck.vfat", "dosfstools")
	mdir := testpeer.Require(t, "mdir", "mtools")
	mtype := testpeer.Require(t, "mtype", "mtools")
	unsquashfs := testpeer.Require(t, "unsquashfs", "squashfs-tools")
	e2fsck := testpeer.Require(t, "e2fsck", "e2fsprogs")
	res := image(t, "rpi")

	t.Run("partition table", func(t *testing.T) {
		var dump struct {
			PartitionTable struct {
				Label, ID  string
				Partitions []struct {
					Start, Size int64
					Type        string
					Bootable    bool
				}
			}
		}
		if err := json.Unmarshal([]byte(run(t, sfdisk, "--json", res.Path)), &dump); err != nil {
			t.Fatal(err)
		}
		pt := dump.PartitionTable
		if pt.Label != "dos" {
			t.Errorf("label = %q, want dos", pt.Label)
		}
		if want := fmt.Sprintf("0x%08x", res.Layout.Table.DiskSignature); pt.ID != want {
			t.Errorf("disk identifier = %s, want %s", pt.ID, want)
		}
		wantTypes := []string{"e", "83", "83", "83"}
		if len(pt.Partitions) != 4 {
			t.Fatalf("sfdisk lists %d partitions, want 4: %+v", len(pt.Partitions), pt.Partitions)
		}
		for i, p := range pt.Partitions {
			want := res.Layout.Table.Partitions[i]
			if p.Type != wantTypes[i] || p.Start != int64(want.Start) || p.Size != int64(want.Sectors) {
				t.Errorf("partition %d = type %s start %d size %d, want type %s start %d size %d", i+1, p.Type, p.Start, p.Size, wantTypes[i], want.Start, want.Sectors)
			}
		}
		if !pt.Partitions[0].Bootable {
			t.Error("boot partition is not marked bootable")
		}
	})

	t.Run("boot partition", func(t *testing.T) {
		boot := extractPartition(t, res.Path, res.Layout, 1)
		run(t, fsckVfat, "-n", boot)
		listing := run(t, mdir, "-i", boot, "-/", "-b", "::/")
		// Each supported model needs its device tree. The Pi 3 family
		// boots from bootcode.bin and start.elf, and the Pi 4 family from
		// start4.elf. The Pi 5 has its boot loader in EEPROM.
		for _, name := range []string{
			"bootcode.bin", "start.elf", "fixup.dat", "start4.elf", "fixup4.dat",
			"bcm2710-rpi-3-b.dtb", "bcm2710-rpi-3-b-plus.dtb", // Pi 3B, 3B+
			"bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb", // Pi 4B, 400
			"bcm2712-rpi-5-b.dtb", "bcm2712d0-rpi-5-b.dtb", // Pi 5 (both steppings)
			"bcm2710-rpi-zero-2-w.dtb", // Zero 2 W
			"overlays/disable-bt.dtbo", "vmlinuz", "config.txt", "cmdline.txt", "LICENCE.broadcom",
		} {
			if !strings.Contains(listing, "::/"+name+"\n") {
				t.Errorf("boot partition lacks %s", name)
			}
		}
		cmdline := run(t, mtype, "-i", boot, "::cmdline.txt")
		wantRoot := "root=PARTUUID=" + res.Layout.RootPartUUID + " "
		if !strings.Contains(cmdline, wantRoot) || !strings.Contains(cmdline, "init=/gokrazy/init") {
			t.Errorf("cmdline.txt = %q, want %q and init=/gokrazy/init", cmdline, wantRoot)
		}
		config := run(t, mtype, "-i", boot, "::config.txt")
		for _, want := range []string{"arm_64bit=1", "kernel=vmlinuz"} {
			if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(config) {
				t.Errorf("config.txt lacks the line %q:\n%s", want, config)
			}
		}
	})

	t.Run("root file system", func(t *testing.T) {
		root := extractPartition(t, res.Path, res.Layout, 2)
		listing := run(t, unsquashfs, "-lls", root)
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`-rwxr-xr-x root/root .* squashfs-root/gokrazy/init\n`),
			regexp.MustCompile(`-rwxr-xr-x root/root .* squashfs-root/gokrazy/dhcp\n`),
			regexp.MustCompile(`-rwxr-xr-x root/root .* squashfs-root/usr/bin/heimwolke\n`),
			regexp.MustCompile(`-rwxr-xr-x root/root .* squashfs-root/usr/bin/heimwolke-agent\n`),
			regexp.MustCompile(`squashfs-root/etc/resolv.conf -> /tmp/resolv.conf\n`),
			regexp.MustCompile(`squashfs-root/lib/modules/`),
			regexp.MustCompile(`drwxr-xr-x root/root .* squashfs-root/perm\n`),
		} {
			if !want.MatchString(listing) {
				t.Errorf("unsquashfs -lls lacks %s", want)
			}
		}
		// No secret is baked into the image: without gokr-pw.txt, gokrazy's
		// own web interface listens only on its Unix socket.
		for _, secret := range []string{"gokr-pw.txt", ".pem", ".key", "ssh_host"} {
			if strings.Contains(listing, secret) {
				t.Errorf("root file system contains %q, want no secrets in the image", secret)
			}
		}
		dir := filepath.Join(t.TempDir(), "root")
		run(t, unsquashfs, "-d", dir, root, "etc/hostname")
		if b, err := os.ReadFile(filepath.Join(dir, "etc/hostname")); err != nil || string(b) != "heimwolke" {
			t.Errorf("etc/hostname = %q, %v; want \"heimwolke\"", b, err)
		}
	})

	t.Run("perm", func(t *testing.T) {
		perm := extractPartition(t, res.Path, res.Layout, 4)
		out := run(t, e2fsck, "-fn", perm)
		if !strings.Contains(out, "perm: 1") { // "perm: 11/... files": label and a clean summary
			t.Errorf("e2fsck summary unexpected:\n%s", out)
		}
	})
}

// TestRPiBootsOnRaspi3b boots the rpi image's kernel, device tree and root file
// system on QEMU's raspi3b machine far enough to see our init start. The
// machine has no network, so nothing beyond the init's first line is checked.
func TestRPiBootsOnRaspi3b(t *testing.T) {
	testpeer.Require(t, "qemu-system-aarch64", "qemu-system-arm")
	res := image(t, "rpi")
	// QEMU's SD card must have a power-of-two size.
	disk := copySparse(t, res.Path, 1<<30)
	dir := t.TempDir()
	boot, err := build.ExtractBoot(disk, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !boot.RaspberryPi {
		t.Errorf("ExtractBoot of the rpi image: RaspberryPi = false, want true")
	}
	dtb := filepath.Join(dir, "bcm2710-rpi-3-b.dtb")
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	b, err := fat.ReadFile(f, res.Layout.Boot, "bcm2710-rpi-3-b.dtb")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dtb, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Without the Pi firmware, nothing rewrites console=serial0 into the
	// real UART, so the test names QEMU's console device itself.
	cmdline := strings.ReplaceAll(boot.Cmdline, "console=serial0,115200", "console="+qemu.ConsoleDevice(qemu.TargetRPi))
	// gokrazy's init starts the hardware watchdog, and QEMU's model of the
	// BCM2835 watchdog then resets the machine at once. That ends QEMU before
	// the console shows anything, so the test keeps the driver from loading.
	cmdline += " initcall_blacklist=bcm2835_wdt_driver_init"

	cfg := qemu.Config{Target: qemu.TargetRPi, Disk: disk, Kernel: boot.Kernel, Cmdline: cmdline, DTB: dtb}
	want := "heimwolke-init " + sourceVersion(t) + ": starting"
	// NOTE: once, in a full test run on a loaded two-core machine, QEMU's
	// raspi3b printed nothing at all for five minutes, while the same image
	// booted in 14 s alone. A boot whose console stays empty for a minute
	// is therefore tried once more; a kernel that prints but never reaches
	// our init still fails.
	for attempt := 1; ; attempt++ {
		silent, err := bootRaspi3b(t, cfg, want)
		if err == nil {
			return
		}
		if !silent || attempt == 2 {
			t.Fatal(err)
		}
		t.Logf("attempt %d: %v; booting once more", attempt, err)
	}
}

// bootRaspi3b boots cfg and waits for want on the console. silent reports
// that the console stayed empty for the first minute.
func bootRaspi3b(t *testing.T, cfg qemu.Config, want string) (silent bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	vm, err := qemu.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("starting QEMU: %v", err)
	}
	defer vm.Stop()
	start := time.Now()

	firstLine, cancelFirst := context.WithTimeout(ctx, time.Minute)
	defer cancelFirst()
	if err := vm.WaitConsole(firstLine, "Linux version"); err != nil {
		return len(vm.ConsoleOutput()) == 0, err
	}
	if err := vm.WaitConsole(ctx, want); err != nil {
		out := vm.ConsoleOutput()
		t.Logf("serial console (last 16 KiB):\n%s", out[max(0, len(out)-16<<10):])
		return false, err
	}
	t.Logf("raspi3b: %q after %.1fs", want, time.Since(start).Seconds())
	return false, nil
}

// TestBuildIsReproducible builds the rpi image a second time and compares
// the SHA-256 of both.
func TestBuildIsReproducible(t *testing.T) {
	first := image(t, "rpi")
	second, err := buildInto(t, "rpi", filepath.Join(t.TempDir(), "again.img"))
	if err != nil {
		t.Fatal(err)
	}
	if first.SHA256 != second.SHA256 {
		t.Fatalf("two builds of the same source differ: SHA-256 %s, then %s", first.SHA256, second.SHA256)
	}
}
