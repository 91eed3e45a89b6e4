package mdns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// openSocket returns a UDP socket for port 5353 on ifi. It receives the
// group's packets and unicast packets to port 5353 that arrive on ifi, and
// sends through ifi. SO_REUSEADDR and SO_REUSEPORT let another responder,
// such as Avahi on a developer's PC, share the port. The kernel then hands
// each unicast packet to only one of the sockets.
func openSocket(ifi net.Interface, group netip.Addr) (*net.UDPConn, error) {
	network := "udp4"
	bind := netip.AddrPortFrom(netip.IPv4Unspecified(), port)
	if group.Is6() {
		network = "udp6"
		bind = netip.AddrPortFrom(netip.IPv6Unspecified(), port)
	}

	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var optErr error
		err := c.Control(func(fd uintptr) { optErr = setOptions(int(fd), ifi, group) })
		return errors.Join(err, optErr)
	}}
	pc, err := lc.ListenPacket(context.Background(), network, bind.String())
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", bind, err)
	}
	return pc.(*net.UDPConn), nil
}

// sockopt is one integer socket option. An error equal to optionalErr is
// ignored, for options that older kernels lack.
type sockopt struct {
	name        string
	level, opt  int
	value       int
	optionalErr error
}

// setOptions prepares a socket before it is bound. Multicast packets leave
// with TTL (hop limit) 255 as RFC 6762 section 11 asks, and are looped back
// so that other mDNS software on the same host sees them.
func setOptions(fd int, ifi net.Interface, group netip.Addr) error {
	opts := []sockopt{
		{"SO_REUSEADDR", unix.SOL_SOCKET, unix.SO_REUSEADDR, 1, nil},
		{"SO_REUSEPORT", unix.SOL_SOCKET, unix.SO_REUSEPORT, 1, nil},
	}
	if group.Is4() {
		opts = append(opts,
			// Without this, Linux delivers the group's packets from
			// every interface that any socket joined it on.
			sockopt{"IP_MULTICAST_ALL", unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0, nil},
			sockopt{"IP_PKTINFO", unix.IPPROTO_IP, unix.IP_PKTINFO, 1, nil},
			sockopt{"IP_MULTICAST_TTL", unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 255, nil},
			sockopt{"IP_TTL", unix.IPPROTO_IP, unix.IP_TTL, 255, nil},
			sockopt{"IP_MULTICAST_LOOP", unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 1, nil},
		)
	} else {
		opts = append(opts,
			// IPV6_MULTICAST_ALL appeared in Linux 4.20; the device
			// binding below does its job on older kernels.
			sockopt{"IPV6_MULTICAST_ALL", unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0, unix.ENOPROTOOPT},
			sockopt{"IPV6_RECVPKTINFO", unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1, nil},
			sockopt{"IPV6_MULTICAST_IF", unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifi.Index, nil},
			sockopt{"IPV6_MULTICAST_HOPS", unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255, nil},
			sockopt{"IPV6_UNICAST_HOPS", unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 255, nil},
			sockopt{"IPV6_MULTICAST_LOOP", unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 1, nil},
		)
	}
	for _, o := range opts {
		err := unix.SetsockoptInt(fd, o.level, o.opt, o.value)
		if err != nil && !(o.optionalErr != nil && errors.Is(err, o.optionalErr)) {
			return fmt.Errorf("setting %s: %w", o.name, err)
		}
	}

	if err := unix.BindToDevice(fd, ifi.Name); err != nil {
		return fmt.Errorf("binding to device %s (SO_BINDTODEVICE): %w", ifi.Name, err)
	}
	return joinGroup(fd, ifi, group)
}

// joinGroup joins group on ifi and makes ifi the interface for multicast
// sends.
func joinGroup(fd int, ifi net.Interface, group netip.Addr) error {
	if group.Is4() {
		mreq := &unix.IPMreqn{Multiaddr: group.As4(), Ifindex: int32(ifi.Index)}
		if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, mreq); err != nil {
			return fmt.Errorf("setting IP_MULTICAST_IF: %w", err)
		}
		if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq); err != nil {
			return fmt.Errorf("joining %s on %s: %w", group, ifi.Name, err)
		}
		return nil
	}
	mreq := &unix.IPv6Mreq{Multiaddr: group.As16(), Interface: uint32(ifi.Index)}
	if err := unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, mreq); err != nil {
		return fmt.Errorf("joining %s on %s: %w", group, ifi.Name, err)
	}
	return nil
}

// packetDestination returns the destination address of a received packet
// from its IP_PKTINFO or IPV6_PKTINFO control message, or the zero Addr.
func packetDestination(oob []byte) netip.Addr {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ifindex, local address, header destination.
			return netip.AddrFrom4([4]byte(m.Data[8:12]))
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo: destination, ifindex.
			return netip.AddrFrom16([16]byte(m.Data[0:16]))
		}
	}
	return netip.Addr{}
}
