package portmap

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/netlab"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// testPorts are two of the box's ports; fewer ports keep the tests short.
var testPorts = []uint16{443, 5222}

// serveInBox listens on port in the box's namespace, on IPv4 and IPv6, and
// sends every client its own address.
func serveInBox(t *testing.T, h *netlab.Home, port uint16) {
	t.Helper()
	var ln net.Listener
	err := h.InNamespace(h.Box, func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(netip.IPv6Unspecified(), port).String())
		return err
	})
	if err != nil {
		t.Fatalf("listening on port %d in the box: %v", port, err)
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

// dialFromInternet connects from the internet namespace to addr and returns
// what the box's server sent.
func dialFromInternet(h *netlab.Home, addr netip.AddrPort) (string, error) {
	var got []byte
	err := h.InNamespace(h.Internet, func() error {
		c, err := net.DialTimeout("tcp", addr.String(), time.Second)
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

// checkReachable fails the test unless a client in the internet reaches the
// box's server on addr.
func checkReachable(t *testing.T, h *netlab.Home, addr netip.AddrPort) {
	t.Helper()
	got, err := dialFromInternet(h, addr)
	if err != nil {
		t.Errorf("dialing %s from the internet: %v, want the box's server", addr, err)
		return
	}
	if want := h.InternetV4.String(); addr.Addr().Is6() {
		want = h.InternetV6.String()
		if got != want {
			t.Errorf("box saw the client as %s, want %s", got, want)
		}
	} else if got != want {
		t.Errorf("box saw the client as %s, want %s", got, want)
	}
}

// waitUnreachable waits up to 5 seconds for addr to become unreachable from
// the internet. miniupnpd 2.3.1 rejects deleting an IPv6 pinhole over PCP, so
// the mapper shortens its lease to miniupnpd's min_lifetime (1 second in these
// tests), and miniupnpd drops it once that has passed.
func waitUnreachable(t *testing.T, h *netlab.Home, addr netip.AddrPort) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := dialFromInternet(h, addr); err != nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	checkUnreachable(t, h, addr)
}

func checkUnreachable(t *testing.T, h *netlab.Home, addr netip.AddrPort) {
	t.Helper()
	if got, err := dialFromInternet(h, addr); err == nil {
		t.Errorf("dialing %s from the internet reached %q, want no connection", addr, got)
	}
}

func TestMapThroughMiniupnpd(t *testing.T) {
	cases := []struct {
		name      string
		opts      netlab.Options
		protocols []Protocol
		want      Protocol
		// pinholes is set when the router opens IPv6 pinholes, and
		// lowPinholes when it does so for ports below 1024 too: miniupnpd
		// 2.3.1 in secure mode rejects those over UPnP with error 606, but
		// not over PCP.
		pinholes, lowPinholes bool
	}{
		{"upnp-igd2", netlab.Options{NoNATPMP: true}, []Protocol{ProtocolUPnP}, ProtocolUPnPIGD2, true, false},
		{"upnp-igd1", netlab.Options{NoNATPMP: true, IGDv1: true}, []Protocol{ProtocolUPnP}, ProtocolUPnPIGD1, false, false},
		{"pcp", netlab.Options{NoUPnP: true, MinLifetime: 1}, []Protocol{ProtocolPCP}, ProtocolPCP, true, true},
		{"nat-pmp", netlab.Options{NoUPnP: true}, []Protocol{ProtocolNATPMP}, ProtocolNATPMP, false, false},
		{"default order without upnp", netlab.Options{NoUPnP: true, MinLifetime: 1}, nil, ProtocolPCP, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := netlab.NewHomeWith(t, tc.opts)
			for _, p := range testPorts {
				serveInBox(t, h, p)
			}
			wan := netip.AddrPortFrom(h.WANv4(), testPorts[0])
			checkUnreachable(t, h, wan)

			// A lease of 4 seconds makes the mapper renew every 2 seconds.
			c := startChild(t, h, helperConfig{Ports: testPorts, Protocols: tc.protocols, Lease: 4 * time.Second, RetryInterval: time.Minute})
			line := c.waitFor(t, 30*time.Second, "all ports mapped", func(l helperLine) bool {
				return allPorts(l.State, func(p PortState) bool {
					switch {
					case !tc.pinholes:
						return p.Mapped
					case p.Port < 1024 && !tc.lowPinholes:
						return p.Mapped && p.PinholeError != ""
					default:
						return p.Mapped && p.Pinhole
					}
				})
			})
			for _, p := range line.State.Ports {
				if p.Protocol != tc.want {
					t.Errorf("port %d mapped by %q, want %q", p.Port, p.Protocol, tc.want)
				}
				if p.ExternalPort != p.Port {
					t.Errorf("port %d mapped to external port %d, want the same port", p.Port, p.ExternalPort)
				}
				if p.Expires.IsZero() {
					t.Errorf("port %d has no lease expiry", p.Port)
				}
			}
			if got := line.State.ExternalIPv4; got != h.WANv4() {
				t.Errorf("State().ExternalIPv4 = %s, want the router's WAN address %s", got, h.WANv4())
			}

			rules := h.Run(h.Router, "nft", "list", "table", "inet", netlab.RouterTable)
			for _, p := range testPorts {
				if want := "dnat ip to " + h.BoxV4.String() + ":" + itoa(p); !strings.Contains(rules, want) {
					t.Errorf("router ruleset has no %q:\n%s", want, rules)
				}
			}
			checkReachable(t, h, wan)
			if tc.pinholes {
				checkReachable(t, h, netip.AddrPortFrom(h.BoxV6, testPorts[1]))
			}
			if tc.lowPinholes {
				checkReachable(t, h, netip.AddrPortFrom(h.BoxV6, testPorts[0]))
			} else {
				checkUnreachable(t, h, netip.AddrPortFrom(h.BoxV6, testPorts[0]))
			}

			// Wait past two lease lengths: without renewal, miniupnpd would
			// have dropped the mappings.
			first := line.State.Ports[0].Expires
			line = c.waitFor(t, 20*time.Second, "two renewals", func(l helperLine) bool {
				return l.State != nil && l.State.Ports[0].Expires.After(first.Add(4*time.Second))
			})
			if !allPorts(line.State, func(p PortState) bool { return p.Mapped }) {
				t.Errorf("ports not mapped after renewals: %s", describe(line))
			}
			checkReachable(t, h, wan)

			final := c.stop(t)
			for _, p := range final.Ports {
				if p.Mapped || p.Pinhole {
					t.Errorf("port %d still mapped after shutdown: %+v", p.Port, p)
				}
			}
			rules = h.Run(h.Router, "nft", "list", "table", "inet", netlab.RouterTable)
			if strings.Contains(rules, "dnat ip to") {
				t.Errorf("router ruleset still has port forwardings after shutdown:\n%s", rules)
			}
			checkUnreachable(t, h, wan)
			if tc.pinholes {
				for _, p := range testPorts {
					waitUnreachable(t, h, netip.AddrPortFrom(h.BoxV6, p))
				}
			}
		})
	}
}

func itoa(p uint16) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), p).String()[len("0.0.0.0:"):]
}

func TestRouterWithoutPortMapping(t *testing.T) {
	h := netlab.NewHomeWith(t, netlab.Options{NoUPnP: true, NoNATPMP: true})
	c := startChild(t, h, helperConfig{Ports: testPorts, RetryInterval: time.Minute})
	line := c.waitFor(t, 60*time.Second, "every port not mapped", func(l helperLine) bool {
		return allPorts(l.State, func(p PortState) bool { return p.Error != "" })
	})
	for _, p := range line.State.Ports {
		if p.Mapped {
			t.Errorf("port %d is mapped on a router without port mapping", p.Port)
		}
		if p.Reason != ReasonNoService {
			t.Errorf("port %d has reason %q, want %q", p.Port, p.Reason, ReasonNoService)
		}
	}
	if len(line.State.Protocols) != 0 {
		t.Errorf("State().Protocols = %v, want none", line.State.Protocols)
	}
}

func TestRouterWithoutPublicIPv4(t *testing.T) {
	h := netlab.NewHomeWith(t, netlab.Options{WANv4: netip.MustParseAddr("100.64.0.2")})
	c := startChild(t, h, helperConfig{Ports: testPorts, RetryInterval: time.Minute})
	line := c.waitFor(t, 60*time.Second, "every port not mapped", func(l helperLine) bool {
		return allPorts(l.State, func(p PortState) bool { return p.Error != "" })
	})
	for _, p := range line.State.Ports {
		if p.Mapped {
			t.Errorf("port %d is mapped behind carrier-grade NAT", p.Port)
		}
		if p.Reason != ReasonNoPublicIPv4 {
			t.Errorf("port %d has reason %q, want %q", p.Port, p.Reason, ReasonNoPublicIPv4)
		}
	}
}

func TestExternalIPv4FollowsWANChange(t *testing.T) {
	h := netlab.NewHome(t)
	got, errText := externalIPv4(t, h)
	if errText != "" || got != h.WANv4() {
		t.Fatalf("ExternalIPv4() = %s, %q, want %s", got, errText, h.WANv4())
	}

	newWAN := netip.MustParseAddr("192.0.3.99")
	h.ChangeWANv4(newWAN)
	got, errText = externalIPv4(t, h)
	if errText != "" || got != newWAN {
		t.Errorf("ExternalIPv4() after the change = %s, %q, want %s", got, errText, newWAN)
	}
}

// TestUpnpcListsMappings checks the mappings with miniupnpc's client, an
// independent reader of the router's port mapping table.
func TestUpnpcListsMappings(t *testing.T) {
	h := netlab.NewHomeWith(t, netlab.Options{NoNATPMP: true})
	upnpc := testpeer.Require(t, "upnpc", "miniupnpc")
	c := startChild(t, h, helperConfig{Ports: testPorts, Protocols: []Protocol{ProtocolUPnP}, RetryInterval: time.Minute})
	c.waitFor(t, 30*time.Second, "all ports mapped", func(l helperLine) bool {
		return allPorts(l.State, func(p PortState) bool { return p.Mapped })
	})

	list := h.Run(h.Box, upnpc, "-l")
	for _, p := range testPorts {
		want := fmt.Sprintf("TCP %5d->%s:%-5d 'Heimwolke'", p, h.BoxV4, p)
		if !strings.Contains(list, want) {
			t.Errorf("upnpc -l does not list %q:\n%s", want, list)
		}
	}

	c.stop(t)
	if list := h.Run(h.Box, upnpc, "-l"); strings.Contains(list, "Heimwolke") {
		t.Errorf("upnpc -l still lists mappings after shutdown:\n%s", list)
	}
}

func TestRouterDeniesBox(t *testing.T) {
	// UPnP only: for a denied client, miniupnpd 2.3.1 searches all 65535
	// external ports for each PCP request and stops responding for seconds.
	h := netlab.NewHomeWith(t, netlab.Options{DenyBox: true, NoNATPMP: true})
	c := startChild(t, h, helperConfig{Ports: testPorts, Protocols: []Protocol{ProtocolUPnP}, RetryInterval: time.Minute})
	line := c.waitFor(t, 60*time.Second, "every port not mapped", func(l helperLine) bool {
		return allPorts(l.State, func(p PortState) bool { return p.Error != "" })
	})
	for _, p := range line.State.Ports {
		if p.Mapped {
			t.Errorf("port %d is mapped although the router denies the box", p.Port)
		}
		if p.Reason != ReasonNotAllowed {
			t.Errorf("port %d has reason %q, want %q (error %s)", p.Port, p.Reason, ReasonNotAllowed, p.Error)
		}
	}
}
