package qemu

import (
	"strconv"
	"strings"
)

// args returns QEMU's command line arguments for cfg, a Config that
// withDefaults returned and validate accepted, with every host port chosen.
// nc is the netcat program for the guest forwards.
func (cfg Config) args(accel, nc string) []string {
	args := []string{
		// The guest gets only the devices listed here, without QEMU's
		// default NIC, VGA, monitor and serial port.
		"-nodefaults",
		"-no-user-config",
		"-display", "none",
	}
	args = append(args, cfg.machineArgs(accel)...)

	args = append(args, "-kernel", cfg.Kernel, "-append", strings.TrimSpace(cfg.Cmdline))
	if cfg.Initrd != "" {
		args = append(args, "-initrd", cfg.Initrd)
	}
	if cfg.Target == TargetRPi {
		args = append(args, "-dtb", cfg.DTB)
	}

	// With direct kernel boot, a reboot would start the host's kernel file
	// with the old command line again, not what the image contains after an
	// update. So a guest reboot ends QEMU, and the caller starts it anew.
	args = append(args, "-no-reboot")

	args = append(args, cfg.serialArgs()...)
	args = append(args, cfg.diskArgs()...)
	args = append(args, cfg.networkArgs(nc)...)
	return args
}

func (cfg Config) machineArgs(accel string) []string {
	cpu := "max"
	if accel == AccelKVM {
		cpu = "host"
	}

	switch cfg.Target {
	case TargetAMD64:
		return []string{"-machine", "q35", "-accel", accel, "-cpu", cpu,
			"-smp", strconv.Itoa(cfg.CPUs), "-m", strconv.Itoa(cfg.MemoryMiB)}
	case TargetARM64:
		// gic-version=max takes the newest interrupt controller that the
		// accelerator offers: KVM on a GICv3 host cannot emulate the
		// default GICv2.
		return []string{"-machine", "virt,gic-version=max", "-accel", accel, "-cpu", cpu,
			"-smp", strconv.Itoa(cfg.CPUs), "-m", strconv.Itoa(cfg.MemoryMiB)}
	default:
		// The raspi3b machine fixes CPU model, count and memory size.
		return []string{"-machine", "raspi3b", "-accel", accel}
	}
}

// serialArgs connects the kernel's console UART to QEMU's standard output.
// QEMU numbers the raspi3b UARTs with the PL011 first and the mini UART
// second. With the bcm2710-rpi-3-b.dtb device tree, the gokrazy kernel names
// them ttyAMA1 and ttyS0, so the rpi console is ttyS0.
func (cfg Config) serialArgs() []string {
	if cfg.Target == TargetRPi {
		return []string{"-serial", "null", "-serial", "stdio"}
	}
	return []string{"-serial", "stdio"}
}

func (cfg Config) diskArgs() []string {
	var args []string
	if cfg.Snapshot {
		args = append(args, "-snapshot")
	}
	if cfg.Disk == "" {
		return args
	}

	file := "file=" + escapeOption(cfg.Disk) + ",format=raw"
	if cfg.Target == TargetRPi {
		return append(args, "-drive", file+",if=sd")
	}
	return append(args, "-drive", file+",if=none,id=disk0", "-device", "virtio-blk-pci,drive=disk0")
}

// networkArgs returns QEMU's user network (slirp) with the forwards. The
// option restrict=on stops the guest from opening connections to anywhere
// except the guest forwards, so its NTP and DNS clients cannot reach out.
func (cfg Config) networkArgs(nc string) []string {
	netdev := []string{"user", "id=net0", "restrict=on"}
	for _, f := range cfg.Forwards {
		netdev = append(netdev, "hostfwd="+f.hostfwd())
	}
	for _, g := range cfg.GuestForwards {
		netdev = append(netdev, "guestfwd="+g.guestfwd(nc))
	}

	// romfile= leaves out the PXE boot ROM, which would only print to the
	// console. The raspi3b machine has no PCI, so it gets a USB network
	// adapter, which the kernel's cdc_ether driver names usb0.
	device := "virtio-net-pci,netdev=net0,romfile="
	if cfg.Target == TargetRPi {
		device = "usb-net,netdev=net0"
	}
	return []string{"-netdev", strings.Join(netdev, ","), "-device", device}
}
