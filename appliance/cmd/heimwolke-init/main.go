// Command heimwolke-init is the box's init process (/gokrazy/init, PID 1). It
// lets gokrazy mount the file systems and bring up the loopback interface,
// then supervises gokrazy's network programs and the Heimwolke programs,
// restarting each one when it exits.
package main

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"time"

	"github.com/gokrazy/gokrazy"

	"github.com/heimwolke/heimwolke/appliance/growperm"
	"github.com/heimwolke/heimwolke/packages/version"
)

// Programs lists the supervised programs and their paths in the root file
// system; the image builder puts them there.
var programs = [][]string{
	{"/gokrazy/dhcp"},
	{"/gokrazy/ntp"},
	{"/usr/bin/heimwolke", "--log-console", "--mdns=heimwolke"},
	{"/usr/bin/heimwolke-agent", "--log-console"},
}

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println(version.Version)
		return
	}
	// The first line on the serial console; tests wait for it.
	fmt.Printf("heimwolke-init %s: starting\n", version.Version)

	// PID 1 must never exit (the kernel would panic), so failures below are
	// logged and the box keeps running with what works.
	if err := gokrazy.Boot(version.Version); err != nil {
		log.Printf("heimwolke-init: boot: %v", err)
	}

	growPerm()

	services := make([]*gokrazy.Service, 0, len(programs))
	for _, argv := range programs {
		services = append(services, gokrazy.NewService(exec.Command(argv[0], argv[1:]...)))
	}
	if err := gokrazy.SuperviseServices(services); err != nil {
		log.Printf("heimwolke-init: supervising: %v", err)
	}
	fmt.Printf("heimwolke-init %s: supervising %d programs\n", version.Version, len(services))
	select {}
}

// growPerm extends /perm to the end of the card. It runs at every boot and
// does nothing when there is no room to grow.
func growPerm() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, nil)).With("program", "heimwolke-init")
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		logger.Error("reading kernel command line", "err", err)
		return
	}
	devices, err := growperm.FindDevices(string(cmdline))
	if err != nil {
		logger.Error("finding the /perm partition", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := growperm.Grow(ctx, devices.Disk, "/perm", logger)
	if err != nil {
		logger.Error("growing /perm", "disk", devices.Disk, "err", err)
		return
	}
	if res.Changed() {
		logger.Info("grew /perm", "disk", devices.Disk, "old_bytes", res.OldFileSystemBytes, "new_bytes", res.NewFileSystemBytes)
	}
}
