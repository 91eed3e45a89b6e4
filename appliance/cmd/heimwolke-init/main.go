// Command heimwolke-init is the box's init process (/gokrazy/init, PID 1). It
// lets gokrazy mount the file systems and bring up the loopback interface,
// then supervises gokrazy's network programs and the Heimwolke programs,
// restarting each one when it exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/gokrazy/gokrazy"

	"github.com/heimwolke/heimwolke/appliance/growperm"
	"github.com/heimwolke/heimwolke/packages/fat"
	"github.com/heimwolke/heimwolke/packages/setupcode"
	"github.com/heimwolke/heimwolke/packages/version"
)

// Programs lists the supervised programs and their paths in the root file
// system; the image builder puts them there.
var programs = [][]string{
	{"/gokrazy/dhcp"},
	{"/gokrazy/ntp"},
	{"/usr/bin/heimwolke", "--log-console", "--mdns=heimwolke", "--setup-code-file=" + setupCodeCopy},
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

	logger := slog.New(slog.NewTextHandler(os.Stdout, nil)).With("program", "heimwolke-init")
	if disk, ok := findDisk(logger); ok {
		growPerm(disk, logger)
		copySetupCode(disk, logger)
	}

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

// setupCodeCopy is the path of the setup code file that heimwolke reads.
// /run is a tmpfs, so the copy is made again at every boot.
const setupCodeCopy = "/run/heimwolke/setup-code.txt"

// findDisk returns the disk that holds the root file system and /perm.
func findDisk(logger *slog.Logger) (growperm.Devices, bool) {
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		logger.Error("reading kernel command line", "err", err)
		return growperm.Devices{}, false
	}
	devices, err := growperm.FindDevices(string(cmdline))
	if err != nil {
		logger.Error("finding the /perm partition", "err", err)
		return growperm.Devices{}, false
	}
	return devices, true
}

// growPerm extends /perm to the end of the card. It runs at every boot and
// does nothing when there is no room to grow.
func growPerm(devices growperm.Devices, logger *slog.Logger) {
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

// copySetupCode copies setup-code.txt from the card's boot partition to
// setupCodeCopy for heimwolke. gokrazy does not mount the boot partition,
// so the file is read from the disk with our FAT reader.
func copySetupCode(devices growperm.Devices, logger *slog.Logger) {
	disk, err := os.Open(devices.Disk)
	if err != nil {
		logger.Error("reading the setup code", "disk", devices.Disk, "err", err)
		return
	}
	defer disk.Close()
	boot, err := setupcode.BootOffset(disk)
	if err != nil {
		logger.Error("reading the setup code", "disk", devices.Disk, "err", err)
		return
	}
	data, err := fat.ReadFile(disk, boot, setupcode.FileName)
	if errors.Is(err, fs.ErrNotExist) {
		return // an image from before setup codes: none is asked for
	}
	if err != nil {
		logger.Error("reading the setup code", "disk", devices.Disk, "err", err)
		return
	}
	if err := os.MkdirAll(filepath.Dir(setupCodeCopy), 0o700); err != nil {
		logger.Error("copying the setup code", "err", err)
		return
	}
	if err := os.WriteFile(setupCodeCopy, data, 0o600); err != nil {
		logger.Error("copying the setup code", "err", err)
		return
	}
	// The code itself is a secret and never logged.
	logger.Info("setup code copied", "from", devices.Disk, "to", setupCodeCopy, "has_code", setupcode.Parse(data) != "")
}
