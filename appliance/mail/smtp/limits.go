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

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int
}

func newLimitListener(l net.Listener, maxTotal, maxPerAddr int, greetPlain bool, onReject func(netip.Addr)) *limitListener {
	return &limitListener{
		Listener:   l,
		maxTotal:   maxTotal,
		maxPerAddr: maxPerAddr,
		greetPlain: greetPlain,
		onReject:   onReject,
		perIP:      map[netip.Addr]int{},
	}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := remoteAddr(c)
		if l.acquire(addr) {
			return &limitedConn{Conn: c, release: func() { l.release(addr) }}, nil
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

func (l *limitListener) acquire(addr netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.maxTotal || l.perIP[addr] >= l.maxPerAddr {
		return false
	}
	l.total++
	l.perIP[addr]++
	return true
}

func (l *limitListener) release(addr netip.Addr) {
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
