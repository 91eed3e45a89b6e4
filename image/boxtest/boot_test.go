package boxtest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/web"
	"github.com/heimwolke/heimwolke/image/build"
	"github.com/heimwolke/heimwolke/image/qemu"
	"github.com/heimwolke/heimwolke/packages/setupcode"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// bootTimeout bounds one boot under emulation (TCG) on a slow two-core CI
// machine; boots take well under a minute here.
const bootTimeout = 5 * time.Minute

func qemuProgram(target string) (string, string) {
	if target == "amd64" {
		return "qemu-system-x86_64", "qemu-system-x86"
	}
	return "qemu-system-aarch64", "qemu-system-arm"
}

// bootBox boots a copy of the target's image, enlarged to diskSize and with
// code in its setup-code.txt as flash writes it (none when code is empty),
// and returns the running VM once the console shows our init.
func bootBox(t *testing.T, target string, diskSize int64, code string) (*qemu.VM, time.Time) {
	t.Helper()
	program, pkg := qemuProgram(target)
	testpeer.Require(t, program, pkg)
	res := image(t, target)
	disk := copySparse(t, res.Path, diskSize)
	if code != "" {
		writeSetupCode(t, disk, code)
	}
	boot, err := build.ExtractBoot(disk, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if boot.RaspberryPi {
		t.Errorf("ExtractBoot of the %s image: RaspberryPi = true, want false", target)
	}
	forwards := []qemu.Forward{{GuestPort: 80}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	start := time.Now()
	vm, err := qemu.Start(ctx, qemu.Config{
		Target:   target,
		Disk:     disk,
		Kernel:   boot.Kernel,
		Cmdline:  boot.Cmdline,
		Forwards: forwards,
	})
	if err != nil {
		t.Fatalf("starting QEMU: %v", err)
	}
	t.Cleanup(func() { vm.Stop() })
	logConsoleOnFailure(t, vm)
	t.Logf("QEMU %s: %s (%s)", target, vm.Accel(), vm.AccelReason())
	return vm, start
}

// logConsoleOnFailure logs the end of the box's serial console when the test
// fails, because the box logs the cause of a failure there.
func logConsoleOnFailure(t *testing.T, vm *qemu.VM) {
	t.Cleanup(func() {
		if t.Failed() {
			out := vm.ConsoleOutput()
			t.Logf("serial console (last 16 KiB):\n%s", out[max(0, len(out)-16<<10):])
		}
	})
}

// getOK polls url until it returns status 200 or the deadline passes.
func getOK(t *testing.T, vm *qemu.VM, url, acceptLanguage string) (string, time.Time) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(bootTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-vm.Done():
			t.Fatalf("QEMU exited before %s answered: %v", url, vm.Wait())
		default:
		}
		req, _ := http.NewRequest("GET", url, nil)
		if acceptLanguage != "" {
			req.Header.Set("Accept-Language", acceptLanguage)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(body), time.Now()
			}
			err = &statusError{resp.StatusCode}
		}
		lastErr = err
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("GET %s: no 200 within %v, last error: %v", url, bootTimeout, lastErr)
	return "", time.Time{}
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }

// checkFirstBootPage checks the page in both languages and returns the
// health report. A box with a setup code opens on the code step, one
// without on the welcome page.
func checkFirstBootPage(t *testing.T, vm *qemu.VM, start time.Time, withCode bool) web.Health {
	t.Helper()
	base := "http://" + vm.Addr(80)
	body, at := getOK(t, vm, base+"/", "en")
	t.Logf("first HTTP 200 %.1fs after QEMU started", at.Sub(start).Seconds())
	want := sourceVersion(t)
	if !strings.Contains(body, `<span id="version">`+want+`</span>`) {
		t.Errorf("first-boot page lacks version %q:\n%s", want, body)
	}
	titleEN, titleDE := "Welcome to your Heimwolke", "Willkommen bei Deiner Heimwolke"
	if withCode {
		titleEN, titleDE = "<h1>Setup code</h1>", "<h1>Einrichtungscode</h1>"
	}
	if !strings.Contains(body, titleEN) {
		t.Errorf("English first-boot page lacks %q:\n%s", titleEN, body)
	}
	body, _ = getOK(t, vm, base+"/", "de-DE,de;q=0.9")
	if !strings.Contains(body, titleDE) {
		t.Errorf("German first-boot page lacks %q:\n%s", titleDE, body)
	}

	body, _ = getOK(t, vm, base+"/healthz", "")
	var health web.Health
	if err := json.Unmarshal([]byte(body), &health); err != nil {
		t.Fatalf("decoding /healthz %q: %v", body, err)
	}
	if health.Status != "ok" || health.Version != want {
		t.Errorf("/healthz: status %q version %q, want ok %q", health.Status, health.Version, want)
	}
	return health
}

// writeSetupCode writes code into the setup-code.txt of the disk image at
// path, the way flash does on a card.
func writeSetupCode(t *testing.T, path, code string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	boot, err := setupcode.BootOffset(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := setupcode.Write(f, boot, code); err != nil {
		t.Fatal(err)
	}
}

// checkSetupCodeStep checks whether the wizard asks for a setup code: the
// box read the code from its boot partition. Without one, the code step
// sends the browser on to the language step.
func checkSetupCodeStep(t *testing.T, vm *qemu.VM, wantAsked bool) {
	t.Helper()
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Get("http://" + vm.Addr(80) + "/setup/code")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	asked := resp.StatusCode == http.StatusOK && strings.Contains(string(body), `name="setup_code"`)
	if asked != wantAsked {
		t.Errorf("GET /setup/code: status %d, asks for the code: %v, want %v", resp.StatusCode, asked, wantAsked)
	}
}

// TestAMD64Box boots the amd64 image on a disk twice its size with a setup
// code written as flash does, gets the first-boot page with the right
// version, walks the wizard to the end with the code, and checks that /perm
// grew to the larger disk.
func TestAMD64Box(t *testing.T) {
	const diskSize = 2 << 30
	const code = "K3QX-7M4D-WT9A"
	vm, start := bootBox(t, "amd64", diskSize, code)
	health := checkFirstBootPage(t, vm, start, true)
	checkSetupCodeStep(t, vm, true)
	walkWizardOnBox(t, vm, code)
	if health.Storage == nil {
		t.Fatal("/healthz has no storage figures: /perm is not mounted")
	}
	// The image carries a 256 MiB /perm. Grown, its partition runs from
	// the same start to the end of the disk. statfs counts a few percent
	// less than that, because the file system's metadata takes the rest.
	partition := uint64(diskSize - image(t, "amd64").Layout.Perm)
	if got := health.Storage.TotalBytes; got < partition*9/10 {
		t.Errorf("/perm is %d MiB after boot on a %d MiB disk, want about %d MiB", got>>20, diskSize>>20, partition>>20)
	}
}

// TestARM64Box boots the arm64 image on QEMU's virt machine and gets the
// first-boot page with the right version. The image was not flashed, so
// the wizard asks for no setup code.
func TestARM64Box(t *testing.T) {
	vm, start := bootBox(t, "arm64", 0, "")
	checkFirstBootPage(t, vm, start, false)
	checkSetupCodeStep(t, vm, false)
}
