// Command heimwolke-image builds Heimwolke disk images, boots them under QEMU
// and writes them to SD cards.
//
//	heimwolke-image build --target rpi|amd64|arm64 --out FILE
//	heimwolke-image vm --target amd64|arm64 --image FILE
//	heimwolke-image flash --image FILE --device DEV [--yes]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/heimwolke/heimwolke/image/build"
	"github.com/heimwolke/heimwolke/image/flash"
	"github.com/heimwolke/heimwolke/image/qemu"
	"github.com/heimwolke/heimwolke/packages/version"
)

const usage = `heimwolke-image builds, boots and flashes Heimwolke disk images.

Usage:
  heimwolke-image build --target rpi|amd64|arm64 --out FILE
  heimwolke-image vm --target amd64|arm64 --image FILE
  heimwolke-image flash --image FILE --device DEV [--yes]
  heimwolke-image version

Run "heimwolke-image VERB -h" for the options of a verb.
`

// errUsage marks errors that are the caller's wording; main prints the usage.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "heimwolke-image: %v\n", err)
		if errors.Is(err, errUsage) {
			fmt.Fprint(os.Stderr, "\n"+usage)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("no verb given: %w", errUsage)
	}
	verb, rest := args[0], args[1:]
	switch verb {
	case "build":
		return runBuild(ctx, rest)
	case "vm":
		return runVM(ctx, rest)
	case "flash":
		return runFlash(ctx, rest)
	case "version", "--version", "-version":
		fmt.Println(version.Version)
		return nil
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	return fmt.Errorf("unknown verb %q: %w", verb, errUsage)
}

func runBuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	target := fs.String("target", "rpi", "kind of box: "+strings.Join(build.TargetNames(), ", "))
	out := fs.String("out", "", "image file to write (required)")
	src := fs.String("src", "", "Heimwolke source tree (default: the repository containing the working folder)")
	ver := fs.String("version", "", "version to stamp into the programs (default: git describe of the source tree)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("build: unexpected argument %q: %w", fs.Arg(0), errUsage)
	}
	if *out == "" {
		return fmt.Errorf("build: --out FILE is required: %w", errUsage)
	}
	_, err := build.Build(ctx, build.Options{
		Target:    *target,
		Out:       *out,
		SourceDir: *src,
		Version:   *ver,
		Progress:  os.Stdout,
	})
	return err
}

func runFlash(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("flash", flag.ContinueOnError)
	image := fs.String("image", "", "image file to write (required)")
	device := fs.String("device", "", "whole card device, e.g. /dev/sdb or /dev/mmcblk0 (required)")
	yes := fs.Bool("yes", false, "write without asking")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("flash: unexpected argument %q: %w", fs.Arg(0), errUsage)
	}
	if *image == "" || *device == "" {
		return fmt.Errorf("flash: --image FILE and --device DEV are required: %w", errUsage)
	}
	return flash.Flash(ctx, flash.Options{
		Image:  *image,
		Device: *device,
		Yes:    *yes,
		In:     os.Stdin,
		Out:    os.Stdout,
	})
}

func runVM(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("vm", flag.ContinueOnError)
	target := fs.String("target", "amd64", "kind of virtual machine the image was built for: amd64 or arm64")
	image := fs.String("image", "", "image file to boot (required)")
	accel := fs.String("accel", "auto", "auto (KVM where it works, else emulation), kvm or tcg")
	offset := fs.Int("port-offset", 10000, "host port = box port + offset, on 127.0.0.1 (0: pick free ports)")
	memory := fs.Int("memory", 1024, "guest memory in MiB")
	snapshot := fs.Bool("snapshot", false, "discard the box's writes when QEMU stops, leaving the image unchanged")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("vm: unexpected argument %q: %w", fs.Arg(0), errUsage)
	}
	if *image == "" {
		return fmt.Errorf("vm: --image FILE is required: %w", errUsage)
	}
	if *target != qemu.TargetAMD64 && *target != qemu.TargetARM64 {
		return fmt.Errorf("vm: target %q cannot run as a virtual machine: use amd64 or arm64", *target)
	}

	dir, err := os.MkdirTemp("", "heimwolke-vm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	boot, err := build.ExtractBoot(*image, dir)
	if err != nil {
		return err
	}
	forwards, err := qemu.DefaultForwards(*offset)
	if err != nil {
		return err
	}
	vm, err := qemu.Start(ctx, qemu.Config{
		Target:    *target,
		Disk:      *image,
		Snapshot:  *snapshot,
		Kernel:    boot.Kernel,
		Cmdline:   boot.Cmdline,
		Accel:     *accel,
		MemoryMiB: *memory,
		Forwards:  forwards,
		Console:   os.Stdout,
	})
	if err != nil {
		return err
	}
	fmt.Printf("QEMU: %s (%s)\n", vm.Accel(), vm.AccelReason())
	for _, f := range vm.Forwards() {
		fmt.Println(f)
	}
	fmt.Printf("first-boot page: http://%s/  (stop with Ctrl-C)\n", vm.Addr(80))
	err = vm.Wait()
	if ctx.Err() != nil {
		return nil // stopped with Ctrl-C
	}
	return err
}
