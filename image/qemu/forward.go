package qemu

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Forward forwards a TCP port of the host's loopback address 127.0.0.1 to a
// TCP port of the guest (QEMU's hostfwd).
type Forward struct {
	// GuestPort is the port that the box listens on.
	GuestPort int

	// HostPort is the port on 127.0.0.1. Zero means a free port, which Start
	// picks.
	HostPort int
}

// String returns the mapping in the form "box port 80 -> 127.0.0.1:20080".
func (f Forward) String() string {
	return fmt.Sprintf("box port %d -> 127.0.0.1:%d", f.GuestPort, f.HostPort)
}

// hostfwd returns the rule for QEMU's -netdev user,hostfwd= option. The host
// address is always 127.0.0.1, so that nothing outside this host can reach
// the guest.
func (f Forward) hostfwd() string {
	return fmt.Sprintf("tcp:127.0.0.1:%d-:%d", f.HostPort, f.GuestPort)
}

// GuestForward forwards TCP connections that the guest opens to an address of
// QEMU's user network to a port of the host's 127.0.0.1 (QEMU's guestfwd).
type GuestForward struct {
	// Guest is the address and port that the guest connects to. The address
	// must be a free one of the user network 10.0.2.0/24, for example
	// 10.0.2.100.
	Guest netip.AddrPort

	// HostPort is the port on 127.0.0.1 that receives the connections.
	HostPort int
}

// String returns the mapping in the form "10.0.2.100:25 in the box -> 127.0.0.1:2525".
func (g GuestForward) String() string {
	return fmt.Sprintf("%s in the box -> 127.0.0.1:%d", g.Guest, g.HostPort)
}

// guestfwd returns the rule for QEMU's -netdev user,guestfwd= option. QEMU
// runs the command "cmd:..." once per guest connection, with the connection
// as its standard input and output. A "tcp:..." device instead would connect
// once when QEMU starts, and all guest connections would share that stream.
// nc is OpenBSD netcat, whose -N shuts down the host connection's write side
// when the guest closes its side.
func (g GuestForward) guestfwd(nc string) string {
	command := fmt.Sprintf("%s -N 127.0.0.1 %d", nc, g.HostPort)
	return fmt.Sprintf("tcp:%s-cmd:%s", g.Guest, escapeOption(command))
}

// QEMU's user network in its default configuration: the guest network, the
// host's address (the gateway), the DNS server and the addresses that its
// DHCP server hands out (libslirp's dhcpstart and NB_BOOTP_CLIENTS).
var (
	userNetwork   = netip.MustParsePrefix("10.0.2.0/24")
	userGateway   = netip.MustParseAddr("10.0.2.2")
	userDNS       = netip.MustParseAddr("10.0.2.3")
	userDHCPFirst = netip.MustParseAddr("10.0.2.15")
	userDHCPLast  = netip.MustParseAddr("10.0.2.30")
)

func (g GuestForward) validate() error {
	addr := g.Guest.Addr()
	switch {
	case !userNetwork.Contains(addr):
		return fmt.Errorf("guest forward %s: the address is outside QEMU's user network %s; use a free address in it such as 10.0.2.100", g.Guest, userNetwork)
	case addr == userNetwork.Addr() || addr == netip.MustParseAddr("10.0.2.255"):
		return fmt.Errorf("guest forward %s: the address is the network or broadcast address; use a free address such as 10.0.2.100", g.Guest)
	case addr == userGateway || addr == userDNS:
		return fmt.Errorf("guest forward %s: QEMU's user network uses that address itself; use a free address such as 10.0.2.100", g.Guest)
	case addr.Compare(userDHCPFirst) >= 0 && addr.Compare(userDHCPLast) <= 0:
		return fmt.Errorf("guest forward %s: the address is in the DHCP range %s-%s; use a free address such as 10.0.2.100", g.Guest, userDHCPFirst, userDHCPLast)
	case g.Guest.Port() == 0:
		return fmt.Errorf("guest forward %s: missing port", g.Guest)
	case !validPort(g.HostPort):
		return fmt.Errorf("guest forward %s: invalid host port %d; use 1-65535", g.Guest, g.HostPort)
	}
	return nil
}

// BoxPorts returns the TCP ports that the box serves: HTTP, HTTPS, SMTP,
// submission with implicit TLS and with STARTTLS, IMAPS, XMPP clients with
// STARTTLS and with direct TLS, and XMPP servers.
func BoxPorts() []int {
	return []int{80, 443, 25, 465, 587, 993, 5222, 5223, 5269}
}

// DefaultForwards returns a Forward for each of BoxPorts. With offset > 0,
// host port = box port + offset (offset 20000 maps 80 to 20080; 10080
// would be refused by browsers, which block it as a "bad port"). With offset
// 0, each host port is a free port of 127.0.0.1.
func DefaultForwards(offset int) ([]Forward, error) {
	ports := BoxPorts()
	if offset < 0 {
		return nil, fmt.Errorf("invalid port offset %d: use 0 for free ports or a positive offset such as 20000", offset)
	}

	forwards := make([]Forward, len(ports))
	for i, port := range ports {
		forwards[i].GuestPort = port
		if offset > 0 {
			forwards[i].HostPort = port + offset
		}
	}
	if offset > 0 {
		if last := slices.Max(ports); last+offset > 65535 {
			return nil, fmt.Errorf("port offset %d maps box port %d beyond 65535; use an offset of at most %d", offset, last, 65535-last)
		}
		return forwards, nil
	}

	if err := pickFreePorts(forwards); err != nil {
		return nil, err
	}
	return forwards, nil
}

// pickFreePorts sets each zero HostPort to a port that the kernel reports as
// free on 127.0.0.1. The listeners stay open until all ports are picked, so
// the ports differ from each other.
//
// NOTE: another process can take a port between this check and QEMU's bind;
// QEMU then exits with "Could not set up host forwarding rule".
func pickFreePorts(forwards []Forward) error {
	var listeners []net.Listener
	defer func() {
		for _, ln := range listeners {
			ln.Close()
		}
	}()

	for i := range forwards {
		if forwards[i].HostPort != 0 {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("picking a free host port for box port %d: %w", forwards[i].GuestPort, err)
		}
		listeners = append(listeners, ln)
		forwards[i].HostPort = ln.Addr().(*net.TCPAddr).Port
	}
	return nil
}

func validateForwards(forwards []Forward) error {
	guestPorts := make(map[int]bool)
	hostPorts := make(map[int]bool)
	for _, f := range forwards {
		if !validPort(f.GuestPort) {
			return fmt.Errorf("forward %d -> %d: invalid box port %d; use 1-65535", f.GuestPort, f.HostPort, f.GuestPort)
		}
		if f.HostPort != 0 && !validPort(f.HostPort) {
			return fmt.Errorf("forward %d -> %d: invalid host port %d; use 1-65535, or 0 for a free port", f.GuestPort, f.HostPort, f.HostPort)
		}
		if guestPorts[f.GuestPort] {
			return fmt.Errorf("box port %d is forwarded twice; forward each box port once", f.GuestPort)
		}
		if f.HostPort != 0 && hostPorts[f.HostPort] {
			return fmt.Errorf("host port %d is used by two forwards; give each its own port", f.HostPort)
		}
		guestPorts[f.GuestPort] = true
		hostPorts[f.HostPort] = true
	}
	return nil
}

func validPort(port int) bool {
	return port >= 1 && port <= 65535
}

// escapeOption escapes s for a value in a QEMU option list such as
// "-drive file=...", where a comma separates options and ",," stands for a
// literal comma.
func escapeOption(s string) string {
	return strings.ReplaceAll(s, ",", ",,")
}
