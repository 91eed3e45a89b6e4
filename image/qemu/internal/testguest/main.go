//go:build linux

// Command testguest is the init process of the initramfs that the qemu
// package's tests boot. It configures eth0 with the address that QEMU's user
// network gives the first guest and greets every TCP connection on port 80.
// It dials the addresses and writes the disk that the kernel command line
// names, and prints each step on the console for the test to wait on.
package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// QEMU's user network (slirp) is 10.0.2.0/24 and gives the first guest
// 10.0.2.15; the test guest takes that address without DHCP.
var (
	guestAddr = [4]byte{10, 0, 2, 15}
	netmask   = [4]byte{255, 255, 255, 0}
)

func main() {
	say("testguest: started")

	if err := configureInterface("eth0"); err != nil {
		say("testguest: configuring eth0 failed: %v", err)
		halt()
	}

	ln, err := net.Listen("tcp", ":80")
	if err != nil {
		say("testguest: listening on port 80 failed: %v", err)
		halt()
	}
	go serve(ln)
	say("testguest: listening on port 80")

	// The kernel passes command line parameters that it does not know, and
	// that have no dot in the name, to init as environment variables.
	// testguest_dial is a comma-separated list of addresses.
	for addr := range strings.SplitSeq(os.Getenv("testguest_dial"), ",") {
		if addr != "" {
			dial(addr)
		}
	}
	if addr := os.Getenv("testguest_dial_blocked"); addr != "" {
		dial(addr)
	}
	if disk := os.Getenv("testguest_write_disk"); disk != "" {
		writeDisk(disk)
	}
	say("testguest: ready")
	halt()
}

func say(format string, args ...any) {
	fmt.Printf(format+"\n", args...)
}

// halt blocks forever, because the kernel panics when init exits.
func halt() {
	select {}
}

func serve(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			say("testguest: accept failed: %v", err)
			return
		}
		fmt.Fprintf(conn, "hello from testguest\n")
		conn.Close()
	}
}

// dial connects to addr, sends one line and prints whether that worked.
func dial(addr string) {
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		say("testguest: dial %s failed: %v", addr, err)
		return
	}
	defer conn.Close()

	if _, err := fmt.Fprintf(conn, "hello from testguest\n"); err != nil {
		say("testguest: writing to %s failed: %v", addr, err)
		return
	}
	say("testguest: dial %s succeeded", addr)
}

// diskMark is the text that writeDisk writes at the start of the disk.
const diskMark = "written by testguest"

// writeDisk writes diskMark at the start of the block device /dev/name.
func writeDisk(name string) {
	if err := syscall.Mount("devtmpfs", "/dev", "devtmpfs", 0, ""); err != nil {
		say("testguest: mounting devtmpfs failed: %v", err)
		return
	}

	f, err := os.OpenFile("/dev/"+name, os.O_WRONLY, 0)
	if err != nil {
		say("testguest: opening disk failed: %v", err)
		return
	}
	defer f.Close()

	if _, err := f.WriteString(diskMark); err != nil {
		say("testguest: writing disk failed: %v", err)
		return
	}
	if err := f.Sync(); err != nil {
		say("testguest: syncing disk failed: %v", err)
		return
	}
	say("testguest: wrote disk %s", name)
}

// ifreq is struct ifreq from <net/if.h>: the interface name and a 24-byte
// union, of which the tests use the sockaddr_in and the flags.
type ifreq struct {
	name  [syscall.IFNAMSIZ]byte
	union [24]byte
}

func newIfreq(name string) *ifreq {
	var ifr ifreq
	copy(ifr.name[:], name)
	return &ifr
}

func (ifr *ifreq) setInet4(addr [4]byte) {
	sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&ifr.union[0]))
	sa.Family = syscall.AF_INET
	sa.Addr = addr
}

// configureInterface gives name the guest address and netmask and sets it up,
// as `ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up` would.
func configureInterface(name string) error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, 0)
	if err != nil {
		return fmt.Errorf("opening socket: %w", err)
	}
	defer syscall.Close(fd)

	ifr := newIfreq(name)
	ifr.setInet4(guestAddr)
	if err := ioctl(fd, syscall.SIOCSIFADDR, ifr); err != nil {
		return fmt.Errorf("setting address: %w", err)
	}

	ifr = newIfreq(name)
	ifr.setInet4(netmask)
	if err := ioctl(fd, syscall.SIOCSIFNETMASK, ifr); err != nil {
		return fmt.Errorf("setting netmask: %w", err)
	}

	ifr = newIfreq(name)
	if err := ioctl(fd, syscall.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading flags: %w", err)
	}
	flags := (*uint16)(unsafe.Pointer(&ifr.union[0]))
	*flags |= syscall.IFF_UP | syscall.IFF_RUNNING
	if err := ioctl(fd, syscall.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("setting flags: %w", err)
	}
	return nil
}

func ioctl(fd int, request uintptr, ifr *ifreq) error {
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), request, uintptr(unsafe.Pointer(ifr)))
	if errno != 0 {
		return errno
	}
	return nil
}
