// Command heimwolke-bench measures the image builder and the booted box and
// prints the results as Markdown rows for docs/benchmarks.md. It measures
// build time cold (empty Go build cache) and warm, image sizes, the time from
// QEMU start to the first HTTP 200, and the resident memory of the box's
// programs. Module downloads are not timed, because the modules must already
// be in the module cache.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/heimwolke/heimwolke/appliance/web"
	"github.com/heimwolke/heimwolke/image/build"
	"github.com/heimwolke/heimwolke/image/qemu"
)

func main() {
	boots := flag.Int("boots", 3, "boots per VM target; the median is reported")
	flag.Parse()
	if err := run(context.Background(), *boots); err != nil {
		fmt.Fprintf(os.Stderr, "heimwolke-bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, boots int) error {
	src, err := build.FindSourceDir(".")
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "heimwolke-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	printMachine(ctx)
	fmt.Println("| what | target | result | how |")
	fmt.Println("| --- | --- | --- | --- |")

	// Cold: a fresh Go build cache, so the standard library and every
	// dependency are compiled again. Warm: the same build once more.
	images := map[string]*build.Result{}
	for _, target := range build.TargetNames() {
		os.Setenv("GOCACHE", filepath.Join(work, "gocache-"+target))
		out := filepath.Join(work, target+".img")
		cold, _, err := timedBuild(ctx, src, target, out)
		if err != nil {
			return err
		}
		warm, res, err := timedBuild(ctx, src, target, out)
		if err != nil {
			return err
		}
		images[target] = res
		row("image build, cold (empty Go build cache)", target, fmt.Sprintf("%.1f s", cold.Seconds()), "`GOCACHE=$(mktemp -d) heimwolke-image build --target "+target+"`")
		row("image build, warm (second build)", target, fmt.Sprintf("%.1f s", warm.Seconds()), "`heimwolke-image build --target "+target+"`")
	}
	for _, target := range build.TargetNames() {
		res := images[target]
		var st syscall.Stat_t
		syscall.Stat(res.Path, &st)
		row("image size (file / allocated)", target, fmt.Sprintf("%d MiB / %.1f MiB", res.Size>>20, float64(st.Blocks*512)/(1<<20)), "`ls -l`, `du` of the image")
		row("root file system (squashfs) / boot files", target, fmt.Sprintf("%.1f MiB / %.1f MiB", float64(res.RootSize)/(1<<20), float64(res.BootUsed)/(1<<20)), "build output")
	}

	for _, target := range []string{"amd64", "arm64"} {
		var times []time.Duration
		var health web.Health
		var accel string
		for range boots {
			d, h, a, err := timedBoot(ctx, images[target].Path, target, work, target == "arm64")
			if err != nil {
				return err
			}
			times = append(times, d)
			health, accel = h, a
		}
		slices.Sort(times)
		row("QEMU start to first HTTP 200", target, fmt.Sprintf("%.1f s (median of %d; min %.1f, max %.1f)", times[len(times)/2].Seconds(), len(times), times[0].Seconds(), times[len(times)-1].Seconds()), "`heimwolke-image vm`, "+accel+", 1 GiB, 2 vCPUs")
		if target != "arm64" {
			continue
		}
		for _, p := range health.Processes {
			row("resident memory of "+p.Name+", idle, 10 s after the first 200", target, fmt.Sprintf("%.1f MiB", float64(p.RSSBytes)/(1<<20)), "VmRSS from /proc on the box, via `/healthz`, "+accel)
		}
	}
	return nil
}

func row(what, target, result, how string) {
	fmt.Printf("| %s | %s | %s | %s |\n", what, target, result, how)
}

func timedBuild(ctx context.Context, src, target, out string) (time.Duration, *build.Result, error) {
	start := time.Now()
	res, err := build.Build(ctx, build.Options{Target: target, Out: out, SourceDir: src, Progress: os.Stderr})
	return time.Since(start), res, err
}

// timedBoot boots a copy of img and returns the time from starting QEMU to
// the first 200 on port 80, and optionally the health report 10 s later.
func timedBoot(ctx context.Context, img, target, work string, wantHealth bool) (time.Duration, web.Health, string, error) {
	var health web.Health
	dir, err := os.MkdirTemp(work, "boot-")
	if err != nil {
		return 0, health, "", err
	}
	defer os.RemoveAll(dir)
	boot, err := build.ExtractBoot(img, dir)
	if err != nil {
		return 0, health, "", err
	}

	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	start := time.Now()
	vm, err := qemu.Start(ctx, qemu.Config{
		Target: target, Disk: img, Snapshot: true,
		Kernel: boot.Kernel, Cmdline: boot.Cmdline,
		Forwards: []qemu.Forward{{GuestPort: 80}},
	})
	if err != nil {
		return 0, health, "", err
	}
	defer vm.Stop()

	base := "http://" + vm.Addr(80)
	client := &http.Client{Timeout: 2 * time.Second}
	if err := waitForOK(ctx, client, base+"/"); err != nil {
		return 0, health, "", fmt.Errorf("%s box: %w", target, err)
	}
	d := time.Since(start)

	if wantHealth {
		time.Sleep(10 * time.Second)
		if health, err = readHealth(client, base+"/healthz"); err != nil {
			return 0, health, "", err
		}
	}
	return d, health, vm.Accel(), nil
}

// waitForOK polls url until it returns status 200 or ctx ends.
func waitForOK(ctx context.Context, client *http.Client, url string) error {
	for ctx.Err() == nil {
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no HTTP 200 from %s: %w", url, ctx.Err())
}

func readHealth(client *http.Client, url string) (web.Health, error) {
	var health web.Health
	resp, err := client.Get(url)
	if err != nil {
		return health, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&health)
	return health, err
}

func printMachine(ctx context.Context) {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	qemuVersion, _ := exec.CommandContext(ctx, "qemu-system-x86_64", "--version").Output()
	fmt.Printf("Machine: %d CPUs (%s), %s %s/%s, %s\n\n", runtime.NumCPU(), cpu, runtime.Version(), runtime.GOOS, runtime.GOARCH, strings.SplitN(string(qemuVersion), "\n", 2)[0])
}
