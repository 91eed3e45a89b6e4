package build

import (
	"fmt"
	"sort"
	"strings"
)

// Target describes one kind of box the builder makes images for.
type Target struct {
	Name   string
	GOARCH string
	// KernelModule is the Go module with vmlinuz, device trees and lib/modules.
	KernelModule string
	// FirmwareModule is the Go module with the Raspberry Pi boot firmware, or
	// "" for machines that boot the kernel directly.
	FirmwareModule string
	// Cmdline is the kernel command line without root=, which the builder
	// adds from the disk signature.
	Cmdline string
}

var targets = map[string]Target{
	"rpi": {
		Name:           "rpi",
		GOARCH:         "arm64",
		KernelModule:   "github.com/gokrazy/kernel.rpi",
		FirmwareModule: "github.com/gokrazy/firmware",
		// serial0 is the Raspberry Pi firmware's alias for the UART on
		// the GPIO header, which it rewrites for each model. The last
		// console= becomes /dev/console, where the init writes, so the
		// serial console comes last.
		Cmdline: "console=tty1 console=serial0,115200 init=/gokrazy/init rootwait panic=10 oops=panic",
	},
	"amd64": {
		Name:         "amd64",
		GOARCH:       "amd64",
		KernelModule: "github.com/gokrazy/kernel.amd64",
		Cmdline:      "console=ttyS0,115200 init=/gokrazy/init rootwait panic=10 oops=panic pci=nommconf",
	},
	"arm64": {
		Name:         "arm64",
		GOARCH:       "arm64",
		KernelModule: "github.com/gokrazy/kernel.arm64",
		Cmdline:      "console=ttyAMA0,115200 init=/gokrazy/init rootwait panic=10 oops=panic",
	},
}

// TargetNames returns the known target names, sorted.
func TargetNames() []string {
	names := make([]string, 0, len(targets))
	for name := range targets {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// LookupTarget returns the target called name.
func LookupTarget(name string) (Target, error) {
	t, ok := targets[name]
	if !ok {
		return Target{}, fmt.Errorf("unknown target %q: choose one of %s", name, strings.Join(TargetNames(), ", "))
	}
	return t, nil
}
