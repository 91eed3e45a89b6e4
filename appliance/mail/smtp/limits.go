package smtp

import (
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"time"
)

// limitListener caps the connections at once, in total and per source
// address. A connection over the limit gets "421 4.7.0" (RFC 5321 section
// 3.8, RFC 3463 section 3.8) and is closed before any session starts.
type limitListener struct {
	net.Listener
	maxTotal   int
	maxPerAddr int
	// greetPlain is false on implicit-TLS ports, where a plaintext reply
	// would garble the TLS handshake, so the connection is only closed.
	greetPlain bool
	onReject   func(addr netip.Addr)
	// keyOf maps a client address to the key that maxPerAddr counts.
	keyOf func(netip.Addr) netip.Prefix

	mu    sync.Mutex
	total int
	perIP map[netip.Prefix]int
}

func newLimitListener(l net.Listener, maxTotal, maxPerAddr int, greetPlain bool, keyOf func(netip.Addr) netip.Prefix, onReject func(netip.Addr)) *limitListener {
	return &limitListener{
		Listener:   l,
		maxTotal:   maxTotal,
		maxPerAddr: maxPerAddr,
		greetPlain: greetPlain,
		keyOf:      keyOf,
		onReject:   onReject,
		perIP:      map[netip.Prefix]int{},
	}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := remoteAddr(c)
		key := l.keyOf(addr)
		if l.acquire(key) {
			return &limitedConn{Conn: c, release: func() { l.release(key) }}, nil
		}
		l.onReject(addr)
		go l.reject(c)
	}
}

func (l *limitListener) reject(c net.Conn) {
	defer c.Close()
	if l.greetPlain {
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("421 4.7.0 Too many connections from your address, try again later\r\n"))
	}
}

func (l *limitListener) acquire(addr netip.Prefix) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.maxTotal || l.perIP[addr] >= l.maxPerAddr {
		return false
	}
	l.total++
	l.perIP[addr]++
	return true
}

func (l *limitListener) release(addr netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	l.perIP[addr]--
	if l.perIP[addr] <= 0 {
		delete(l.perIP, addr)
	}
}

// limitedConn gives its slot back once on Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// singleAddress returns addr as a prefix of its own. The submission ports
// count by it, because their clients are the household's devices, which
// share one IPv6 /64.
func singleAddress(addr netip.Addr) netip.Prefix {
	p, _ := addr.Prefix(addr.BitLen())
	return p
}

// sourceNetwork returns the /64 of an internet IPv6 address, because one
// client usually controls the whole /64 and could take a fresh address for
// each connection. IPv4, loopback, private and link-local addresses count
// one by one.
func sourceNetwork(addr netip.Addr) netip.Prefix {
	if addr.Is6() && !addr.IsPrivate() && !addr.IsLoopback() && !addr.IsLinkLocalUnicast() {
		p, _ := addr.Prefix(64)
		return p
	}
	return singleAddress(addr)
}

// remoteAddr returns the client's address, unmapped from IPv4-in-IPv6, so
// that one client has one key.
func remoteAddr(c net.Conn) netip.Addr {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
