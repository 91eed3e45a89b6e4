package netaddr

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
)

func TestClassify(t *testing.T) {
	addr := netip.MustParseAddr
	none := netip.Addr{}
	tests := []struct {
		name          string
		wan, observed netip.Addr
		routerErr     error
		want          Class
	}{
		{"public", addr("198.51.100.7"), addr("198.51.100.7"), nil, ClassPublic},
		{"public without outside source", addr("198.51.100.7"), none, nil, ClassPublic},
		{"cgnat", addr("100.72.1.2"), addr("198.51.100.7"), nil, ClassCGNAT},
		{"cgnat upper edge", addr("100.127.255.254"), none, nil, ClassCGNAT},
		{"just above cgnat", addr("100.128.0.1"), none, nil, ClassPublic},
		{"private wan", addr("192.168.178.2"), addr("198.51.100.7"), nil, ClassDoubleNAT},
		{"rfc1918 ten", addr("10.1.2.3"), none, nil, ClassDoubleNAT},
		{"public wan seen elsewhere", addr("198.51.100.7"), addr("203.0.113.9"), nil, ClassDoubleNAT},
		{"ds-lite b4 address", addr("192.0.0.2"), addr("203.0.113.9"), nil, ClassDSLite},
		{"router without ipv4", none, addr("203.0.113.9"), ErrNoIPv4, ClassDSLite},
		{"router hides its wan", none, addr("203.0.113.9"), fmt.Errorf("NAT-PMP: %w", ErrNoPublicIPv4), ClassNoPublicWAN},
		{"router fails", none, addr("203.0.113.9"), errors.New("timed out"), ClassUnknown},
		{"nothing at all", none, none, nil, ClassNoIPv4},
		{"no router", none, addr("203.0.113.9"), nil, ClassUnknown},
		{"mapped wan", netip.AddrFrom16(addr("198.51.100.7").As16()), addr("198.51.100.7"), nil, ClassPublic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.wan, tt.observed, tt.routerErr); got != tt.want {
				t.Errorf("Classify(%v, %v, %v) = %q, want %q", tt.wan, tt.observed, tt.routerErr, got, tt.want)
			}
		})
	}
}

func TestClassPublishable(t *testing.T) {
	want := map[Class]bool{
		ClassPublic:      true,
		ClassDoubleNAT:   true,
		ClassUnknown:     true,
		ClassCGNAT:       false,
		ClassDSLite:      false,
		ClassNoPublicWAN: false,
		ClassNoIPv4:      false,
	}
	for _, c := range Classes {
		if got := c.Publishable(); got != want[c] {
			t.Errorf("%q.Publishable() = %v, want %v", c, got, want[c])
		}
	}
}

func TestIsPublicIPv4(t *testing.T) {
	tests := map[string]bool{
		"198.51.100.7":    true,
		"8.8.8.8":         true,
		"10.0.0.1":        false,
		"172.16.5.4":      false,
		"192.168.1.1":     false,
		"100.64.0.1":      false,
		"192.0.0.1":       false,
		"127.0.0.1":       false,
		"169.254.1.1":     false,
		"0.1.2.3":         false,
		"198.18.0.1":      false,
		"224.0.0.1":       false,
		"255.255.255.255": false,
		"2001:db8::1":     false,
	}
	for s, want := range tests {
		if got := IsPublicIPv4(netip.MustParseAddr(s)); got != want {
			t.Errorf("IsPublicIPv4(%s) = %v, want %v", s, got, want)
		}
	}
}
