package netaddr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/agent/portmap"
)

var (
	addrA = netip.MustParseAddr("198.51.100.1")
	addrB = netip.MustParseAddr("198.51.100.2")
	addrC = netip.MustParseAddr("198.51.100.3")
)

func TestAgree(t *testing.T) {
	none := netip.Addr{}
	tests := []struct {
		name         string
		votes        map[netip.Addr]int
		configured   int
		current      netip.Addr
		want         netip.Addr
		wantAccepted bool
	}{
		{"two agree on first address", map[netip.Addr]int{addrA: 2}, 3, none, addrA, true},
		{"one of three is not enough", map[netip.Addr]int{addrA: 1}, 3, none, addrA, false},
		{"change needs two", map[netip.Addr]int{addrB: 1, addrA: 1}, 2, addrA, addrA, true},
		{"change with two votes", map[netip.Addr]int{addrB: 2, addrA: 1}, 3, addrA, addrB, true},
		{"current keeps one vote", map[netip.Addr]int{addrA: 1}, 3, addrA, addrA, true},
		{"tie without current", map[netip.Addr]int{addrB: 2, addrC: 2}, 4, addrA, none, false},
		{"tie with current", map[netip.Addr]int{addrB: 2, addrA: 2}, 4, addrA, addrA, true},
		{"lone source proposes", map[netip.Addr]int{addrB: 1}, 1, addrA, addrB, false},
		{"lone source keeps current", map[netip.Addr]int{addrA: 1}, 1, addrA, addrA, true},
		{"no votes", map[netip.Addr]int{}, 2, addrA, none, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, accepted := agree(tt.votes, tt.configured, tt.current)
			if got != tt.want || accepted != tt.wantAccepted {
				t.Errorf("agree(%v, %d, %v) = %v, %v; want %v, %v", tt.votes, tt.configured, tt.current, got, accepted, tt.want, tt.wantAccepted)
			}
		})
	}
}

// scripted is an IPv4Source that returns its answers in order and then
// repeats the last one.
type scripted struct {
	name    string
	mu      sync.Mutex
	answers []any // netip.Addr or error
	calls   int
}

func (s *scripted) Name() string { return s.name }

func (s *scripted) IPv4(context.Context) (netip.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.answers[min(s.calls, len(s.answers)-1)]
	s.calls++
	if err, ok := a.(error); ok {
		return netip.Addr{}, err
	}
	return a.(netip.Addr), nil
}

func (s *scripted) ExternalIPv4(ctx context.Context) (netip.Addr, error) { return s.IPv4(ctx) }

func TestLookupTwoSourcesAgree(t *testing.T) {
	router := &scripted{name: "router", answers: []any{addrA, addrB}}
	outside := &scripted{name: "outside", answers: []any{addrA, addrA, addrB}}
	f := &IPv4Finder{Logger: testLogger(t), Router: router, Sources: []IPv4Source{outside}}
	ctx := t.Context()

	r := mustLookup(t, f)
	if r.Addr != addrA || !r.Changed || r.Class != ClassPublic || r.Disagreement {
		t.Fatalf("first lookup: got %v changed=%v class=%s disagreement=%v, want %v changed=true class=public disagreement=false", r.Addr, r.Changed, r.Class, r.Disagreement, addrA)
	}

	r = mustLookup(t, f)
	if r.Addr != addrA || r.Changed {
		t.Errorf("router alone changed: got %v changed=%v, want %v unchanged", r.Addr, r.Changed, addrA)
	}
	if !r.Disagreement {
		t.Errorf("router and outside source named %s: got no disagreement, want one", r.DisagreementText())
	}
	if r.Class != ClassDoubleNAT {
		t.Errorf("class with WAN %v and accepted %v: got %q, want %q", r.WAN, r.Addr, r.Class, ClassDoubleNAT)
	}

	r, _ = f.Lookup(ctx)
	if r.Addr != addrB || !r.Changed {
		t.Errorf("both sources moved: got %v changed=%v, want %v changed=true", r.Addr, r.Changed, addrB)
	}
}

func TestLookupLoneSourceConfirms(t *testing.T) {
	flaky := &scripted{name: "flaky", answers: []any{addrA, addrB, addrB}}
	f := &IPv4Finder{Logger: testLogger(t), Sources: []IPv4Source{flaky}, ConfirmDelay: time.Millisecond}

	r := mustLookup(t, f)
	if r.Addr.IsValid() || r.Candidate != addrA {
		t.Fatalf("source named %v then %v: got accepted %v candidate %v, want nothing accepted and candidate %v", addrA, addrB, r.Addr, r.Candidate, addrA)
	}

	r = mustLookup(t, f)
	if r.Addr != addrB || !r.Changed {
		t.Errorf("source named %v twice: got %v changed=%v, want it accepted", addrB, r.Addr, r.Changed)
	}
	if r.Class != ClassUnknown {
		t.Errorf("class without router: got %q, want %q", r.Class, ClassUnknown)
	}
	if flaky.calls != 4 {
		t.Errorf("source calls: got %d, want 4 (each lookup asks twice to confirm)", flaky.calls)
	}
}

func TestLookupCGNATRouterIsNoVote(t *testing.T) {
	router := &scripted{name: "router", answers: []any{netip.MustParseAddr("100.64.3.4")}}
	outside := &scripted{name: "outside", answers: []any{addrA}}
	f := &IPv4Finder{Logger: testLogger(t), Router: router, Sources: []IPv4Source{outside}}

	r := mustLookup(t, f)
	if r.Class != ClassCGNAT {
		t.Errorf("class: got %q, want %q", r.Class, ClassCGNAT)
	}
	if r.Addr.IsValid() {
		t.Errorf("accepted address with one public vote of two sources: got %v, want none", r.Addr)
	}
}

func TestLookupRouterWithoutIPv4(t *testing.T) {
	router := &scripted{name: "router", answers: []any{netip.IPv4Unspecified()}}
	f := &IPv4Finder{Logger: testLogger(t), Router: router, ConfirmDelay: time.Millisecond}

	r := mustLookup(t, f)
	if r.Class != ClassDSLite {
		t.Errorf("class: got %q, want %q", r.Class, ClassDSLite)
	}
	if !errors.Is(r.Answers[0].Err, ErrNoIPv4) {
		t.Errorf("router answer error: got %v, want ErrNoIPv4", r.Answers[0].Err)
	}
}

func TestLookupRouterHidesWAN(t *testing.T) {
	hidden := fmt.Errorf("NAT-PMP external address: %w", portmap.ErrNoExternalIPv4)
	router := &scripted{name: "router", answers: []any{hidden}}
	outside := &scripted{name: "outside", answers: []any{addrA}}
	f := &IPv4Finder{Logger: testLogger(t), Router: router, Sources: []IPv4Source{outside, outside}}

	r := mustLookup(t, f)
	if r.Class != ClassNoPublicWAN {
		t.Errorf("class: got %q, want %q", r.Class, ClassNoPublicWAN)
	}
	if !errors.Is(r.Answers[0].Err, ErrNoPublicIPv4) {
		t.Errorf("router answer error: got %v, want ErrNoPublicIPv4", r.Answers[0].Err)
	}
	if r.Class.Publishable() {
		t.Errorf("class %q is publishable, want not", r.Class)
	}
}

func TestLookupFailingSources(t *testing.T) {
	broken := &scripted{name: "broken", answers: []any{errors.New("timed out")}}
	f := &IPv4Finder{Logger: testLogger(t), Sources: []IPv4Source{broken, broken}}

	r := mustLookup(t, f)
	if r.Addr.IsValid() || r.Class != ClassNoIPv4 {
		t.Errorf("got %v class %q, want no address and class %q", r.Addr, r.Class, ClassNoIPv4)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func mustLookup(t *testing.T, f *IPv4Finder) IPv4Report {
	t.Helper()
	r, err := f.Lookup(t.Context())
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	return r
}

// startWhoami runs a DNS server on 127.0.0.1 that answers the OpenDNS and
// Google names with the address the query came from, like the real ones.
func startWhoami(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		client := w.RemoteAddr().(*net.UDPAddr).IP
		name := q.Question[0].Name
		hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: 0}
		switch {
		case name == "myip.opendns.com." && q.Question[0].Qtype == dns.TypeA:
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: client})
		case name == "o-o.myaddr.l.google.com." && q.Question[0].Qtype == dns.TypeTXT:
			hdr.Rrtype = dns.TypeTXT
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{client.String()}})
		default:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: handler}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestDNSSources(t *testing.T) {
	server := startWhoami(t)
	want := netip.MustParseAddr("127.0.0.1")
	for _, s := range []*DNSSource{OpenDNS(server), GoogleDNS(server)} {
		got, err := s.IPv4(t.Context())
		if err != nil {
			t.Errorf("%s: %v", s.Name(), err)
			continue
		}
		if got != want {
			t.Errorf("%s: got %v, want %v", s.Name(), got, want)
		}
	}

	missing := &DNSSource{Server: server, Query: "unknown.example.", Type: dns.TypeA}
	if _, err := missing.IPv4(t.Context()); err == nil {
		t.Errorf("%s: got no error for NXDOMAIN, want one", missing.Name())
	}
}

func TestHTTPSource(t *testing.T) {
	tests := []struct {
		body    string
		status  int
		want    netip.Addr
		wantErr bool
	}{
		{"198.51.100.1\n", http.StatusOK, addrA, false},
		{"  198.51.100.1  ", http.StatusOK, addrA, false},
		{"2001:db8::1\n", http.StatusOK, netip.Addr{}, true},
		{"<html>blocked</html>", http.StatusOK, netip.Addr{}, true},
		{"198.51.100.1", http.StatusTooManyRequests, netip.Addr{}, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %q", tt.status, tt.body), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			t.Cleanup(srv.Close)

			got, err := (&HTTPSource{URL: srv.URL}).IPv4(t.Context())
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzParseIPv4(f *testing.F) {
	for _, s := range []string{"198.51.100.1", " 1.2.3.4\n", "::ffff:1.2.3.4", "2001:db8::1", "", "1.2.3.4.5", "01.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parseIPv4(s)
		if err == nil && !a.Is4() {
			t.Errorf("parseIPv4(%q) = %v, which is not IPv4", s, a)
		}
	})
}
