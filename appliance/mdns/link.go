package mdns

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// link is one interface with its addresses and its sockets, one per address
// family. Its addresses never change: when the interface's addresses change,
// the main loop closes the link and opens a new one.
type link struct {
	ifi     net.Interface
	addrs   []netip.Prefix
	sockets []*socket
	// ready is set once the host name is probed on this link, and cleared
	// on a rename. Queries are answered only while it is set.
	ready atomic.Bool
}

// socket is a UDP socket bound to one mDNS group on one link.
type socket struct {
	link *link
	// conn is nil in tests that call handle without a network.
	conn  *net.UDPConn
	group netip.AddrPort

	mu sync.Mutex
	// lastMulticast is when each record (by recordKey) was last multicast
	// through this socket, for the limits of RFC 6762 sections 5.4 and 6.
	lastMulticast map[string]time.Time
}

// usable reports whether the responder serves ifi.
func usable(ifi net.Interface) bool {
	return ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0 && ifi.Flags&net.FlagLoopback == 0
}

// interfaceAddrs returns the unicast addresses of ifi, leaving out loopback,
// unspecified and multicast addresses.
func interfaceAddrs(ifi net.Interface) ([]netip.Prefix, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, err
	}
	var prefixes []netip.Prefix
	for _, a := range addrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipnet.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.IsLoopback() || ip.IsUnspecified() || ip.IsMulticast() {
			continue
		}
		ones, _ := ipnet.Mask.Size()
		prefixes = append(prefixes, netip.PrefixFrom(ip, ones))
	}
	slices.SortFunc(prefixes, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return prefixes, nil
}

// syncLinks reads the interface list and opens, replaces or closes links to
// match it. New links start unready; claim probes them.
func (r *responder) syncLinks() {
	ifaces, err := r.interfaces()
	if err != nil {
		r.log.Error("mdns listing interfaces failed", "err", err)
		return
	}

	seen := map[int]bool{}
	for _, ifi := range ifaces {
		if !usable(ifi) {
			continue
		}
		addrs, err := interfaceAddrs(ifi)
		if err != nil {
			r.log.Warn("mdns reading interface addresses failed", "interface", ifi.Name, "err", err)
			continue
		}
		if len(addrs) == 0 {
			continue
		}
		seen[ifi.Index] = true

		old := r.links[ifi.Index]
		if old != nil && old.ifi.Name == ifi.Name && slices.Equal(old.addrs, addrs) {
			continue
		}
		if old != nil {
			r.sendGoodbye(old, removedAddrs(old.addrs, addrs))
			r.closeLink(old)
		}
		if l := r.openLink(ifi, addrs); l != nil {
			r.links[ifi.Index] = l
		}
	}

	for index, l := range r.links {
		if !seen[index] {
			r.closeLink(l)
		}
	}
	r.updateOwn()
}

// removedAddrs returns the addresses in old that are missing from current.
func removedAddrs(old, current []netip.Prefix) []netip.Prefix {
	var gone []netip.Prefix
	for _, p := range old {
		if !slices.ContainsFunc(current, func(c netip.Prefix) bool { return c.Addr() == p.Addr() }) {
			gone = append(gone, p)
		}
	}
	return gone
}

// openLink opens a socket per address family that ifi has an address of, and
// starts a reader on each. It returns nil when no socket could be opened; the
// next rescan tries again.
func (r *responder) openLink(ifi net.Interface, addrs []netip.Prefix) *link {
	l := &link{ifi: ifi, addrs: addrs}
	for _, group := range []netip.Addr{group4, group6} {
		if !slices.ContainsFunc(addrs, func(p netip.Prefix) bool { return p.Addr().Is4() == group.Is4() }) {
			continue
		}
		conn, err := openSocket(ifi, group)
		if err != nil {
			r.log.Error("mdns opening socket failed", "interface", ifi.Name, "group", group, "err", err)
			continue
		}
		s := newSocket(l, conn, group)
		l.sockets = append(l.sockets, s)
		r.readers.Add(1)
		go r.read(s)
	}
	if len(l.sockets) == 0 {
		return nil
	}
	r.log.Info("mdns link up", "interface", ifi.Name, "addrs", addrs)
	return l
}

func newSocket(l *link, conn *net.UDPConn, group netip.Addr) *socket {
	if group.Is6() {
		group = group.WithZone(l.ifi.Name)
	}
	return &socket{
		link:          l,
		conn:          conn,
		group:         netip.AddrPortFrom(group, port),
		lastMulticast: map[string]time.Time{},
	}
}

func (r *responder) closeLink(l *link) {
	for _, s := range l.sockets {
		s.conn.Close()
	}
	delete(r.links, l.ifi.Index)
	r.log.Info("mdns link down", "interface", l.ifi.Name)
}

func (r *responder) closeAll() {
	for _, l := range r.links {
		r.closeLink(l)
	}
	r.readers.Wait()
}

// updateOwn recomputes the set of the responder's own addresses.
func (r *responder) updateOwn() {
	own := map[netip.Addr]bool{}
	for _, l := range r.links {
		for _, p := range l.addrs {
			own[p.Addr()] = true
		}
	}
	r.mu.Lock()
	r.own = own
	r.mu.Unlock()
}

// read handles the packets of one socket until the socket is closed. It reads
// one byte more than maxPacketSize so that oversized packets are recognised.
func (r *responder) read(s *socket) {
	defer r.readers.Done()
	buf := make([]byte, maxPacketSize+1)
	oob := make([]byte, 128)
	for {
		n, oobn, _, src, err := s.conn.ReadMsgUDPAddrPort(buf, oob)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			r.log.Warn("mdns reading packet failed", "interface", s.link.ifi.Name, "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		dst := packetDestination(oob[:oobn])
		for _, out := range r.handle(s, buf[:n], src, dst, time.Now()) {
			r.send(s, out)
		}
	}
}

// outgoing is one packet to send through a socket.
type outgoing struct {
	to   netip.AddrPort
	data []byte
}

func (r *responder) send(s *socket, out outgoing) {
	if _, err := s.conn.WriteToUDPAddrPort(out.data, out.to); err != nil {
		r.log.Warn("mdns sending failed", "interface", s.link.ifi.Name, "to", out.to, "err", err)
	}
}
