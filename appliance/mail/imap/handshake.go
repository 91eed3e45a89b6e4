package imap

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// handshakeTimeout bounds the TLS handshake of a new connection. The
// library starts the handshake when it writes its greeting and sets no read
// deadline for it, so a client that connects and sends nothing would hold
// the connection open for good.
const handshakeTimeout = 30 * time.Second

// handshakeListener accepts TCP connections and completes each one's TLS
// handshake in its own goroutine within a time limit. Accept returns only
// connections whose handshake succeeded, as *tls.Conn, because the library
// allows logins only on a *tls.Conn.
type handshakeListener struct {
	net.Listener
	config  *tls.Config
	timeout time.Duration

	conns     chan *tls.Conn
	done      chan struct{}
	closeOnce sync.Once
	err       error // the error that ended the accept loop, read after done
}

func newHandshakeListener(ln net.Listener, config *tls.Config, timeout time.Duration) *handshakeListener {
	l := &handshakeListener{Listener: ln, config: config, timeout: timeout, conns: make(chan *tls.Conn), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

func (l *handshakeListener) acceptLoop() {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			l.closeOnce.Do(func() {
				l.err = err
				close(l.done)
			})
			return
		}
		go l.handshake(raw)
	}
}

func (l *handshakeListener) handshake(raw net.Conn) {
	conn := tls.Server(raw, l.config)
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return
	}
	select {
	case l.conns <- conn:
	case <-l.done:
		conn.Close()
	}
}

// Accept returns the next connection whose TLS handshake is complete.
func (l *handshakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// Close stops accepting; connections in their handshake are closed.
func (l *handshakeListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() {
		l.err = net.ErrClosed
		close(l.done)
	})
	return err
}
