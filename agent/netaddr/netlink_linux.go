package netaddr

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// ListAddrs returns every address of every interface in the calling
// thread's network namespace, with an RTM_GETADDR dump (rtnetlink(7)).
func ListAddrs() ([]InterfaceAddr, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening rtnetlink socket: %w", err)
	}
	defer unix.Close(fd)

	if err := unix.Sendto(fd, addrDumpRequest(), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sending RTM_GETADDR: %w", err)
	}

	var all []InterfaceAddr
	buf := make([]byte, 64*1024)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("reading RTM_GETADDR dump: %w", err)
		}
		addrs, done, err := parseAddrMessages(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("reading RTM_GETADDR dump: %w", err)
		}
		all = append(all, addrs...)
		if done {
			return all, nil
		}
	}
}

// addrDumpRequest builds an RTM_GETADDR request with NLM_F_DUMP for all
// address families: struct nlmsghdr followed by an empty struct ifaddrmsg.
func addrDumpRequest() []byte {
	const length = unix.SizeofNlMsghdr + unix.SizeofIfAddrmsg
	b := make([]byte, length)
	binary.NativeEndian.PutUint32(b[0:4], length)
	binary.NativeEndian.PutUint16(b[4:6], unix.RTM_GETADDR)
	binary.NativeEndian.PutUint16(b[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(b[8:12], 1) // sequence number
	b[unix.SizeofNlMsghdr] = unix.AF_UNSPEC
	return b
}

// IPv6Finder finds the box's stable global IPv6 address on one interface.
type IPv6Finder struct {
	// Interface is the name of the interface, such as "eth0". Empty means
	// every interface.
	Interface string
}

// Lookup returns the address StableIPv6 picks, or ok false when the
// interface has no publishable IPv6 address.
func (f *IPv6Finder) Lookup() (addr netip.Addr, ok bool, err error) {
	index := 0
	if f.Interface != "" {
		ifi, err := net.InterfaceByName(f.Interface)
		if err != nil {
			return netip.Addr{}, false, fmt.Errorf("finding interface %q for the IPv6 address: %w", f.Interface, err)
		}
		index = ifi.Index
	}

	addrs, err := ListAddrs()
	if err != nil {
		return netip.Addr{}, false, err
	}
	addr, ok = StableIPv6(addrs, index)
	return addr, ok, nil
}

// WatchAddrs reports address changes on any interface. It joins the
// rtnetlink groups RTMGRP_IPV4_IFADDR and RTMGRP_IPV6_IFADDR, and sends on
// the returned channel as soon as the kernel announces an added or removed
// address. Changes that arrive while a report is pending merge into it. The
// channel is closed when ctx ends or the socket fails; a failure is logged
// to log, which may be nil for slog.Default().
func WatchAddrs(ctx context.Context, log *slog.Logger) (<-chan struct{}, error) {
	if log == nil {
		log = slog.Default()
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening rtnetlink socket: %w", err)
	}
	groups := uint32(unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("joining rtnetlink address groups: %w", err)
	}

	// The os.File puts the non-blocking socket under Go's poller, so that
	// Close wakes a pending Read.
	f := os.NewFile(uintptr(fd), "rtnetlink")
	changes := make(chan struct{}, 1)
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	go readChanges(ctx, f, changes, log)
	return changes, nil
}

func readChanges(ctx context.Context, f *os.File, changes chan<- struct{}, log *slog.Logger) {
	defer close(changes)
	buf := make([]byte, 64*1024)
	for {
		n, err := f.Read(buf)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// ENOBUFS means the kernel dropped announcements because
			// they came faster than this loop read them: report a change
			// and read on.
			if errors.Is(err, unix.ENOBUFS) {
				notify(changes)
				continue
			}
			log.Error("address watch failed", "err", err)
			return
		}
		if containsAddrChange(buf[:n]) {
			notify(changes)
		}
	}
}

func containsAddrChange(b []byte) bool {
	for len(b) >= unix.SizeofNlMsghdr {
		length := int(binary.NativeEndian.Uint32(b[0:4]))
		typ := binary.NativeEndian.Uint16(b[4:6])
		if typ == unix.RTM_NEWADDR || typ == unix.RTM_DELADDR {
			return true
		}
		if length < unix.SizeofNlMsghdr || length > len(b) {
			return false
		}
		b = b[min(nlmAlign(length), len(b)):]
	}
	return false
}

func notify(changes chan<- struct{}) {
	select {
	case changes <- struct{}{}:
	default:
	}
}
