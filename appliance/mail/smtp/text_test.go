package smtp

import (
	"bufio"
	"io"
	"net"
	"net/textproto"
	"testing"
	"time"
)

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }

// dialText connects to addr and reads the greeting.
func dialText(t *testing.T, addr string) *textproto.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	c := textproto.NewConn(conn)
	t.Cleanup(func() { c.Close() })
	if _, _, err := c.ReadResponse(220); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	return c
}

// command sends one command and returns the last reply line with its code.
func command(t *testing.T, c *textproto.Conn, cmd string) string {
	t.Helper()
	if err := c.PrintfLine("%s", cmd); err != nil {
		t.Fatal(err)
	}
	var last string
	for {
		line, err := c.ReadLine()
		if err != nil {
			t.Fatalf("reading reply to %.20s: %v", cmd, err)
		}
		last = line
		if len(line) < 4 || line[3] != '-' {
			return last
		}
	}
}
