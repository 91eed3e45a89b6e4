package imap

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// TestSilentClientClosed checks that a connection that never starts its
// TLS handshake is closed after the timeout, while a client that does
// handshake gets through.
func TestSilentClientClosed(t *testing.T) {
	config := testpeer.SelfSigned(t, "localhost", "127.0.0.1").ServerConfig()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newHandshakeListener(raw, config, 300*time.Millisecond)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("* OK\r\n"))
			c.Close()
		}
	}()

	silent, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := io.ReadAll(silent); err != nil {
		t.Fatalf("silent client: %v, want the server to close the connection", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("silent client closed after %v, want about 300 ms", d)
	}

	c, err := tls.Dial("tcp", raw.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS client: %v", err)
	}
	defer c.Close()
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "* OK\r\n" {
		t.Errorf("TLS client read %q, %v; want the greeting", buf[:n], err)
	}
}
