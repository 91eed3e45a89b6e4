package netlab

import (
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// listen opens a TCP listener on addr inside ns that sends the remote
// address to every client and closes the connection.
func listen(t *testing.T, h *Home, ns string, addr netip.AddrPort) {
	t.Helper()
	var ln net.Listener
	err := h.InNamespace(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr.String())
		return err
	})
	if err != nil {
		t.Fatalf("listening on %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap().String())
			c.Close()
		}
	}()
}

// dial connects from ns to addr and returns what the server sent.
func dial(h *Home, ns string, addr netip.AddrPort) (string, error) {
	var got []byte
	err := h.InNamespace(ns, func() error {
		c, err := net.DialTimeout("tcp", addr.String(), 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		got, err = io.ReadAll(c)
		return err
	})
	return string(got), err
}

func TestHomeNATAndFirewall(t *testing.T) {
	h := NewHome(t)
	t.Log(h)

	server := netip.AddrPortFrom(h.InternetV4, 8080)
	listen(t, h, h.Internet, server)
	got, err := dial(h, h.Box, server)
	if err != nil {
		t.Fatalf("dialing %s from the box: %v", server, err)
	}
	if want := h.WANv4().String(); got != want {
		t.Errorf("internet server saw the box as %s, want the router's WAN address %s", got, want)
	}

	server6 := netip.AddrPortFrom(h.InternetV6, 8080)
	listen(t, h, h.Internet, server6)
	got, err = dial(h, h.Box, server6)
	if err != nil {
		t.Fatalf("dialing %s from the box: %v", server6, err)
	}
	if want := h.BoxV6.String(); got != want {
		t.Errorf("internet server saw the box as %s, want the box's own IPv6 address %s", got, want)
	}

	// Without a port mapping or pinhole, the router lets nothing in.
	listen(t, h, h.Box, netip.AddrPortFrom(netip.IPv6Unspecified(), 8443))
	if _, err := dial(h, h.Internet, netip.AddrPortFrom(h.BoxV6, 8443)); err == nil {
		t.Errorf("dialing the box's IPv6 address %s from the internet succeeded, want the router's firewall to drop it", h.BoxV6)
	}
	if _, err := dial(h, h.Internet, netip.AddrPortFrom(h.WANv4(), 8443)); err == nil {
		t.Errorf("dialing the router's WAN address %s:8443 without a mapping succeeded, want it refused", h.WANv4())
	}

	if out := h.Run(h.Router, "nft", "list", "table", "inet", RouterTable); !strings.Contains(out, "masquerade") {
		t.Errorf("router ruleset has no masquerade rule:\n%s", out)
	}
	if log := h.MiniupnpdLog.String(); !strings.Contains(log, "HTTP listening on port") {
		t.Errorf("miniupnpd does not serve UPnP, output:\n%s", log)
	}
}

func TestHomeChangeWANv4(t *testing.T) {
	h := NewHome(t)
	server := netip.AddrPortFrom(h.InternetV4, 8080)
	listen(t, h, h.Internet, server)

	newWAN := netip.MustParseAddr("192.0.3.77")
	h.ChangeWANv4(newWAN)
	if got := h.WANv4(); got != newWAN {
		t.Errorf("WANv4() = %s after ChangeWANv4, want %s", got, newWAN)
	}
	got, err := dial(h, h.Box, server)
	if err != nil {
		t.Fatalf("dialing %s from the box after the address change: %v", server, err)
	}
	if got != newWAN.String() {
		t.Errorf("internet server saw the box as %s, want the new WAN address %s", got, newWAN)
	}
}

func TestHomeAddRemoveBoxIPv6(t *testing.T) {
	h := NewHome(t)
	server := netip.AddrPortFrom(h.InternetV6, 8080)
	listen(t, h, h.Internet, server)

	prefix := netip.MustParsePrefix("2001:db8:0:2::/64")
	box := h.AddBoxIPv6(prefix)
	if want := netip.MustParseAddr("2001:db8:0:2::2"); box != want {
		t.Errorf("AddBoxIPv6(%s) = %s, want %s", prefix, box, want)
	}
	if out := h.Run(h.Box, "ip", "-6", "addr", "show", "dev", PeerInterface); !strings.Contains(out, box.String()) {
		t.Errorf("box has no address %s after AddBoxIPv6:\n%s", box, out)
	}

	h.RemoveBoxIPv6(prefix)
	if out := h.Run(h.Box, "ip", "-6", "addr", "show", "dev", PeerInterface); strings.Contains(out, box.String()) {
		t.Errorf("box still has %s after RemoveBoxIPv6:\n%s", box, out)
	}
	if _, err := dial(h, h.Box, server); err != nil {
		t.Errorf("dialing %s from the box with its first address: %v", server, err)
	}
}

func TestHomeStartInInternet(t *testing.T) {
	h := NewHome(t)
	p := h.StartInInternet("sleep", "60")
	if p.Cmd.Process == nil {
		t.Fatal("StartInInternet returned a command that did not start")
	}
	out := h.Run(h.Internet, "ip", "-br", "addr", "show", "dev", PeerInterface)
	if !strings.Contains(out, h.InternetV4.String()) {
		t.Errorf("internet namespace has no address %s:\n%s", h.InternetV4, out)
	}
}
