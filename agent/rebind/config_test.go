package rebind

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/packages/control"
)

func TestClassify(t *testing.T) {
	v4 := netip.MustParseAddr("192.168.178.20")
	cases := []struct {
		name   string
		rcode  int
		answer []netip.Addr
		want   State
	}{
		{"address", dns.RcodeSuccess, []netip.Addr{v4}, OK},
		{"empty answer", dns.RcodeSuccess, nil, Blocked},
		{"nxdomain", dns.RcodeNameError, nil, Blocked},
		{"refused", dns.RcodeRefused, nil, Blocked},
		{"zero IPv4", dns.RcodeSuccess, []netip.Addr{netip.IPv4Unspecified()}, Blocked},
		{"zero IPv6", dns.RcodeSuccess, []netip.Addr{netip.IPv6Unspecified()}, Blocked},
		{"zero and address", dns.RcodeSuccess, []netip.Addr{netip.IPv4Unspecified(), v4}, OK},
		{"servfail", dns.RcodeServerFailure, nil, Unknown},
		{"notimp", dns.RcodeNotImplemented, nil, Unknown},
	}
	for _, c := range cases {
		if got := classify(c.rcode, c.answer); got != c.want {
			t.Errorf("classify(%s, %v) = %q, want %q", dns.RcodeToString[c.rcode], c.answer, got, c.want)
		}
	}
}

func TestOverall(t *testing.T) {
	cases := []struct {
		states []State
		want   State
	}{
		{[]State{OK, OK}, OK},
		{[]State{OK, Unknown}, Unknown},
		{[]State{Unknown, Blocked}, Blocked},
		{[]State{Blocked, OK}, Blocked},
	}
	for _, c := range cases {
		var queries []Query
		for _, s := range c.states {
			queries = append(queries, Query{State: s})
		}
		if got := overall(queries); got != c.want {
			t.Errorf("overall(%v) = %q, want %q", c.states, got, c.want)
		}
	}
}

func TestResolverFromResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	content := "# written by the DHCP client\nsearch fritz.box\nnameserver 192.168.178.1\nnameserver fd00::1\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Config{ResolvConf: path}.resolver()
	if err != nil {
		t.Fatalf("resolver(): %v", err)
	}
	if want := netip.MustParseAddrPort("192.168.178.1:53"); got != want {
		t.Errorf("resolver() = %s, want %s", got, want)
	}

	explicit, err := Config{Resolver: netip.AddrPortFrom(netip.MustParseAddr("fd00::1"), 0), ResolvConf: path}.resolver()
	if err != nil {
		t.Fatalf("resolver() with Resolver set: %v", err)
	}
	if want := netip.MustParseAddrPort("[fd00::1]:53"); explicit != want {
		t.Errorf("resolver() with Resolver set = %s, want %s", explicit, want)
	}
}

func TestCheckInvalidConfig(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(empty, []byte("search fritz.box\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	published := []netip.Addr{netip.MustParseAddr("192.168.178.20")}
	cases := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no name", Config{Published: published, ResolvConf: empty}, "missing name"},
		{"bad name", Config{Name: "familie mueller..de", Published: published, ResolvConf: empty}, "invalid name"},
		{"no addresses", Config{Name: "familie-mueller.de", ResolvConf: empty}, "no published addresses"},
		{"no nameserver", Config{Name: "familie-mueller.de", Published: published, ResolvConf: empty}, "no nameserver"},
		{"no resolv.conf", Config{Name: "familie-mueller.de", Published: published, ResolvConf: empty + ".missing"}, "reading the LAN resolver"},
	}
	for _, c := range cases {
		_, err := Check(context.Background(), c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: Check error = %v, want one containing %q", c.name, err, c.wantErr)
		}
	}
}

func TestResultFill(t *testing.T) {
	ns := &control.NetworkStatus{Class: control.NetworkPublic}
	Result{State: Blocked, Name: "familie-mueller.de."}.Fill(ns)
	if ns.Rebind != "blocked" {
		t.Errorf("Rebind = %q, want %q", ns.Rebind, "blocked")
	}
	if ns.RebindName != "familie-mueller.de" {
		t.Errorf("RebindName = %q, want %q", ns.RebindName, "familie-mueller.de")
	}
	if ns.Class != control.NetworkPublic {
		t.Errorf("Class = %q, want it unchanged as %q", ns.Class, control.NetworkPublic)
	}
}
