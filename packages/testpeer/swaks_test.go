package testpeer

import (
	"net"
	"strings"
	"testing"
)

// TestSwaksRefusedConnection checks that Swaks returns swaks' exit code and
// transcript, and does not fail the test, when the server refuses the
// connection.
func TestSwaksRefusedConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()

	out, code := Swaks(t, "--server", host, "--port", port, "--to", "anna@example.test")
	if code == 0 {
		t.Errorf("exit code 0, want non-zero for a refused connection:\n%s", out)
	}
	if !strings.Contains(out, "Connection refused") {
		t.Errorf("transcript lacks %q:\n%s", "Connection refused", out)
	}
}
