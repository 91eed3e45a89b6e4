package smtp

import (
	"net/netip"
	"testing"
)

func TestSourceNetworkKeys(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"203.0.113.7", "203.0.113.7/32"},
		{"192.168.178.20", "192.168.178.20/32"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:bbbb::2", "2001:db8:1:2::/64"},
		{"fd00::1:2", "fd00::1:2/128"},
		{"fe80::1", "fe80::1/128"},
		{"::1", "::1/128"},
	} {
		if got := sourceNetwork(netip.MustParseAddr(c.addr)).String(); got != c.want {
			t.Errorf("sourceNetwork(%s) = %s, want %s", c.addr, got, c.want)
		}
	}
	if got := singleAddress(netip.MustParseAddr("2001:db8:1:2:aaaa::1")).String(); got != "2001:db8:1:2:aaaa::1/128" {
		t.Errorf("singleAddress(2001:db8:1:2:aaaa::1) = %s, want the address alone", got)
	}
}
