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
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/heimwolke/heimwolke/image/build"
	"github.com/heimwolke/heimwolke/image/flash"
	"github.com/heimwolke/heimwolke/image/qemu"
	"github.com/heimwolke/heimwolke/packages/setupcode"
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

// usageError is a mistake in the command line; main prints it with a hint
// to the verb's help.
type usageError struct{ verb, msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(verb, format string, args ...any) error {
	return &usageError{verb: verb, msg: fmt.Sprintf(format, args...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		var ue *usageError
		switch {
		case errors.As(err, &ue) && ue.verb != "":
			fmt.Fprintf(os.Stderr, "heimwolke-image %s: %v\nRun \"heimwolke-image %s -h\" for its options.\n", ue.verb, err, ue.verb)
			os.Exit(2)
		case errors.As(err, &ue):
			fmt.Fprintf(os.Stderr, "heimwolke-image: %v\n\n%s", err, usage)
			os.Exit(2)
		case errors.Is(err, errFlags):
			os.Exit(2) // the flag package has printed the problem
		}
		fmt.Fprintf(os.Stderr, "heimwolke-image: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("", "no verb given")
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
	return usagef("", "unknown verb %q", verb)
}

// errFlags means the flag package rejected the command line and has already
// printed why.
var errFlags = errors.New("invalid flags")

func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return errFlags
}

func runBuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	target := fs.String("target", "rpi", "kind of box: "+strings.Join(build.TargetNames(), ", "))
	out := fs.String("out", "", "image file to write (required)")
	src := fs.String("src", "", "Heimwolke source tree (default: the repository containing the working folder)")
	ver := fs.String("version", "", "version to stamp into the programs (default: git describe of the source tree)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("build", "unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return usagef("build", "--out FILE is required")
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
	noCode := fs.Bool("no-setup-code", false, "write no setup code: anyone on the LAN can then run the setup wizard")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("flash", "unexpected argument %q", fs.Arg(0))
	}
	if *image == "" {
		return usagef("flash", "--image FILE is required")
	}
	if *device == "" {
		return usagef("flash", "--device DEV is required: name the whole card, e.g. /dev/sdb (lsblk lists the disks)")
	}
	code := ""
	if !*noCode {
		var err error
		if code, err = setupcode.New(); err != nil {
			return err
		}
	}
	err := flash.Flash(ctx, flash.Options{
		Image:     *image,
		Device:    *device,
		SetupCode: code,
		Yes:       *yes,
		In:        os.Stdin,
		Out:       os.Stdout,
	})
	if err != nil || code == "" {
		return err
	}
	fmt.Printf("\nSetup code / Einrichtungscode: %s\n", code)
	fmt.Println("The setup wizard asks for it; it is also in setup-code.txt on the card.")
	fmt.Println("Der Einrichtungsassistent fragt danach; er steht auch in setup-code.txt auf der Karte.")
	return nil
}

func runVM(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("vm", flag.ContinueOnError)
	target := fs.String("target", "amd64", "kind of virtual machine the image was built for: amd64 or arm64")
	image := fs.String("image", "", "image file to boot (required)")
	accel := fs.String("accel", "auto", "auto (KVM where it works, else emulation), kvm or tcg")
	offset := fs.Int("port-offset", 20000, "host port = box port + offset, on 127.0.0.1 (0: pick free ports); the default keeps port 80 off 10080, which browsers block")
	memory := fs.Int("memory", 1024, "guest memory in MiB")
	snapshot := fs.Bool("snapshot", false, "discard the box's writes when QEMU stops, leaving the image unchanged")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("vm", "unexpected argument %q", fs.Arg(0))
	}
	if *image == "" {
		return usagef("vm", "--image FILE is required")
	}
	if *target != qemu.TargetAMD64 && *target != qemu.TargetARM64 {
		return usagef("vm", "target %q cannot run as a virtual machine: use amd64 or arm64", *target)
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
	if boot.RaspberryPi {
		return fmt.Errorf("%s is a Raspberry Pi image, which vm cannot boot: build one for the VM with make image TARGET=arm64 (or amd64), or write this one to a card with flash", *image)
	}
	if boot.GOARCH != *target {
		return fmt.Errorf("%s contains a linux/%s kernel: use --target %s", *image, boot.GOARCH, boot.GOARCH)
	}
	forwards, err := qemu.DefaultForwards(*offset)
	if err != nil {
		return err
	}
	if err := checkPortsFree(forwards); err != nil {
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
	if err != nil {
		return err
	}
	// QEMU runs with -no-reboot, so it ends by itself only when the box
	// rebooted or its kernel panicked.
	return errors.New("the box stopped by itself (a reboot or a kernel panic): the console output above shows why")
}

// checkPortsFree reports a host port that another program already uses,
// before QEMU fails on it with a long message.
func checkPortsFree(forwards []qemu.Forward) error {
	for _, f := range forwards {
		if f.HostPort == 0 {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", f.HostPort))
		if err != nil {
			return fmt.Errorf("port %d on 127.0.0.1 (for box port %d) is in use: choose another --port-offset, or 0 for free ports", f.HostPort, f.GuestPort)
		}
		ln.Close()
	}
	return nil
}
