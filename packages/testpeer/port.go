package testpeer

import (
	"net"
	"strings"
	"testing"
)

// FreePort returns a port of 127.0.0.1 that is free for both TCP and UDP
// at the time of the call. Another process may take it before the peer
// binds it, so a test that starts a peer on it retries with a new port
// when AddrInUse matches the peer's output.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", l.Addr().String())
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return port
	}
	t.Fatalf("finding a free port: no port of 127.0.0.1 was free for both TCP and UDP in 20 tries")
	return 0
}

// AddrInUse reports whether a peer's output contains the error for an
// address that another socket has already bound.
func AddrInUse(output string) bool {
	return strings.Contains(output, "Address already in use") ||
		strings.Contains(output, "address already in use")
}
