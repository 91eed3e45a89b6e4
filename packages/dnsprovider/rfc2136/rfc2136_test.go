package rfc2136

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/packages/dnsprovider/dnstest"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

const zone = "example.test."

var servers = map[string]func(testing.TB, string, string) *dnstest.Server{
	"bind": dnstest.StartBIND,
	"knot": dnstest.StartKnot,
}

func provider(s *dnstest.Server) *Provider {
	return &Provider{Server: s.Addr, KeyName: s.KeyName, KeyAlgorithm: s.Algorithm, Secret: s.Secret, Timeout: 5 * time.Second}
}

// answer returns the data of the records in the server's response for name
// and type, sorted.
func answer(t *testing.T, s *dnstest.Server, name string, qtype uint16) []string {
	t.Helper()
	var data []string
	for _, rr := range s.Query(t, name, qtype) {
		data = append(data, strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	slices.Sort(data)
	return data
}

func TestAppendSetDeleteGet(t *testing.T) {
	for name, start := range servers {
		t.Run(name, func(t *testing.T) {
			s := start(t, zone, "www IN A 192.0.2.1\n")
			p := provider(s)
			ctx := t.Context()

			appended, err := p.AppendRecords(ctx, "example.test", []libdns.Record{
				libdns.Address{Name: "www", TTL: 5 * time.Minute, IP: netip.MustParseAddr("192.0.2.2")},
				libdns.Address{Name: "www", TTL: 5 * time.Minute, IP: netip.MustParseAddr("2001:db8::1")},
				libdns.TXT{Name: "_acme-challenge.www", TTL: time.Minute, Text: `token "with" quotes ` + strings.Repeat("x", 300)},
				libdns.MX{Name: "@", TTL: time.Hour, Preference: 10, Target: "mail.example.test."},
				libdns.SRV{Service: "imaps", Transport: "tcp", Name: "@", TTL: time.Hour, Weight: 1, Port: 993, Target: "mail.example.test."},
				libdns.CAA{Name: "@", TTL: time.Hour, Tag: "issue", Value: "letsencrypt.org"},
				libdns.RR{Name: "_25._tcp.mail", TTL: time.Hour, Type: "TLSA", Data: "3 1 1 " + strings.Repeat("ab", 32)},
			})
			if err != nil {
				t.Fatalf("AppendRecords: %v\n%s", err, s.Log)
			}
			if len(appended) != 7 {
				t.Errorf("AppendRecords returned %d records, want 7", len(appended))
			}
			if _, ok := appended[2].(libdns.TXT); !ok {
				t.Errorf("AppendRecords returned %T for a TXT record, want libdns.TXT", appended[2])
			}

			if got, want := answer(t, s, "www.example.test", dns.TypeA), []string{"192.0.2.1", "192.0.2.2"}; !slices.Equal(got, want) {
				t.Errorf("after append, got www A %v, want %v", got, want)
			}
			if got := answer(t, s, "_imaps._tcp.example.test", dns.TypeSRV); !slices.Equal(got, []string{"0 1 993 mail.example.test."}) {
				t.Errorf("after append, got SRV %v, want [0 1 993 mail.example.test.]", got)
			}
			if got := answer(t, s, "_25._tcp.mail.example.test", dns.TypeTLSA); len(got) != 1 {
				t.Errorf("after append, got TLSA %v, want one record", got)
			}

			set, err := p.SetRecords(ctx, zone, []libdns.Record{
				libdns.Address{Name: "www", TTL: 10 * time.Minute, IP: netip.MustParseAddr("192.0.2.3")},
			})
			if err != nil {
				t.Fatalf("SetRecords: %v", err)
			}
			if len(set) != 1 {
				t.Errorf("SetRecords returned %d records, want 1", len(set))
			}
			if got, want := answer(t, s, "www.example.test", dns.TypeA), []string{"192.0.2.3"}; !slices.Equal(got, want) {
				t.Errorf("after set, got www A %v, want %v", got, want)
			}
			if got := answer(t, s, "www.example.test", dns.TypeAAAA); len(got) != 1 {
				t.Errorf("after setting A, got www AAAA %v, want it unchanged", got)
			}

			recs, err := p.GetRecords(ctx, zone)
			if err != nil {
				t.Fatalf("GetRecords: %v", err)
			}
			txt := findTXT(recs, "_acme-challenge.www")
			if want := `token "with" quotes ` + strings.Repeat("x", 300); txt != want {
				t.Errorf("GetRecords returned TXT %q, want %q", txt, want)
			}
			if n := countType(recs, "NS"); n != 1 {
				t.Errorf("GetRecords returned %d NS records, want 1", n)
			}
			if n := countType(recs, "SOA"); n != 0 {
				t.Errorf("GetRecords returned %d SOA records, want none", n)
			}

			deleted, err := p.DeleteRecords(ctx, zone, []libdns.Record{
				libdns.TXT{Name: "_acme-challenge.www"},                                             // any TXT
				libdns.Address{Name: "www", TTL: time.Hour, IP: netip.MustParseAddr("2001:db8::1")}, // TTL differs
				libdns.Address{Name: "nowhere", IP: netip.MustParseAddr("192.0.2.9")},               // absent
				libdns.RR{Name: "_25._tcp.mail"},                                                    // any type
			})
			if err != nil {
				t.Fatalf("DeleteRecords: %v", err)
			}
			if len(deleted) != 2 {
				t.Errorf("DeleteRecords returned %v, want the TXT and the TLSA record", deleted)
			}
			if got := answer(t, s, "_acme-challenge.www.example.test", dns.TypeTXT); len(got) != 0 {
				t.Errorf("after delete, got TXT %v, want none", got)
			}
			if got := answer(t, s, "_25._tcp.mail.example.test", dns.TypeTLSA); len(got) != 0 {
				t.Errorf("after delete, got TLSA %v, want none", got)
			}
			if got := answer(t, s, "www.example.test", dns.TypeAAAA); len(got) != 1 {
				t.Errorf("after deleting with another TTL, got AAAA %v, want it kept", got)
			}
		})
	}
}

func findTXT(recs []libdns.Record, name string) string {
	for _, r := range recs {
		if txt, ok := r.(libdns.TXT); ok && txt.Name == name {
			return txt.Text
		}
	}
	return ""
}

func countType(recs []libdns.Record, typ string) int {
	n := 0
	for _, r := range recs {
		if r.RR().Type == typ {
			n++
		}
	}
	return n
}

// TestDigSeesUpdate checks an update with dig, a client independent of the
// DNS library that the provider uses.
func TestDigSeesUpdate(t *testing.T) {
	dig := testpeer.Require(t, "dig", "bind9-dnsutils")
	s := dnstest.StartBIND(t, zone, "")
	_, err := provider(s).AppendRecords(t.Context(), zone, []libdns.Record{
		libdns.TXT{Name: "_acme-challenge", TTL: time.Minute, Text: "abc def"},
	})
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(s.Addr)
	out, err := exec.Command(dig, "+short", "+tcp", "-p", port, "@"+host, "_acme-challenge.example.test", "TXT").Output()
	if err != nil {
		t.Fatalf("dig: %v", err)
	}
	if got, want := strings.TrimSpace(string(out)), `"abc def"`; got != want {
		t.Errorf("dig printed %s, want %s", got, want)
	}
}

func TestRejectedUpdates(t *testing.T) {
	for name, start := range servers {
		t.Run(name, func(t *testing.T) {
			s := start(t, zone, "")
			rec := []libdns.Record{libdns.TXT{Name: "x", TTL: time.Minute, Text: "x"}}

			wrongSecret := provider(s)
			wrongSecret.Secret = "c2VjcmV0LXRoYXQtZG9lcy1ub3QtbWF0Y2gtYXQtYWxsLTEyMzQ="
			_, err := wrongSecret.AppendRecords(t.Context(), zone, rec)
			checkRejected(t, err, s, dns.RcodeBadSig, "check the secret")

			wrongName := provider(s)
			wrongName.KeyName = "other-key"
			_, err = wrongName.SetRecords(t.Context(), zone, rec)
			checkRejected(t, err, s, dns.RcodeBadKey, "check the key name")

			_, err = wrongName.GetRecords(t.Context(), zone)
			checkRejected(t, err, s, dns.RcodeBadKey, "check the key name")

			if got := answer(t, s, "x.example.test", dns.TypeTXT); len(got) != 0 {
				t.Errorf("after rejected updates, got TXT %v, want none", got)
			}
		})
	}
}

func checkRejected(t *testing.T, err error, s *dnstest.Server, tsigError uint16, hint string) {
	t.Helper()
	var rcodeErr *RcodeError
	if !errors.As(err, &rcodeErr) {
		t.Fatalf("got error %v, want an *RcodeError", err)
	}
	if rcodeErr.TSIGError != tsigError {
		t.Errorf("got TSIG error %d, want %d (%v)", rcodeErr.TSIGError, tsigError, err)
	}
	msg := err.Error()
	for _, want := range []string{s.Addr, "example.test.", "NOTAUTH", dns.RcodeToString[int(tsigError)], hint} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
}

func TestNameOutsideZone(t *testing.T) {
	s := dnstest.StartBIND(t, zone, "")
	_, err := provider(s).AppendRecords(t.Context(), zone, []libdns.Record{
		libdns.TXT{Name: "www.example.org.", TTL: time.Minute, Text: "x"},
	})
	var rcodeErr *RcodeError
	if !errors.As(err, &rcodeErr) || rcodeErr.Rcode != dns.RcodeNotZone {
		t.Errorf("got error %v, want NOTZONE", err)
	}
}

func TestTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() }) // never answers
		}
	}()

	p := &Provider{Server: l.Addr().String(), KeyName: "k", Secret: "c2VjcmV0", Timeout: 200 * time.Millisecond}
	start := time.Now()
	_, err = p.AppendRecords(context.Background(), zone, []libdns.Record{libdns.TXT{Name: "x", Text: "x"}})
	if err == nil {
		t.Fatal("AppendRecords to a silent server succeeded, want a timeout")
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("AppendRecords returned after %v, want about 200ms", elapsed)
	}
}

func TestInvalidProvider(t *testing.T) {
	tests := []struct {
		p    Provider
		want string
	}{
		{Provider{KeyName: "k", Secret: "c2VjcmV0"}, "server is empty"},
		{Provider{Server: "ns.example.test", KeyName: "k", Secret: "c2VjcmV0"}, "not host:port"},
		{Provider{Server: "127.0.0.1:53", Secret: "c2VjcmV0"}, "key name is empty"},
		{Provider{Server: "127.0.0.1:53", KeyName: "k", KeyAlgorithm: "hmac-md4", Secret: "c2VjcmV0"}, "not supported"},
		{Provider{Server: "127.0.0.1:53", KeyName: "k", Secret: "not base64!"}, "not standard base64"},
	}
	for _, tt := range tests {
		_, err := tt.p.AppendRecords(t.Context(), zone, []libdns.Record{libdns.TXT{Name: "x", Text: "x"}})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("AppendRecords with %+v: got error %v, want one containing %q", tt.p, err, tt.want)
		}
		if err != nil && tt.p.Secret != "" && strings.Contains(err.Error(), tt.p.Secret) {
			t.Errorf("error %q contains the secret", err)
		}
	}
}

// TestConcurrentAppends checks that parallel calls on one Provider all
// reach the zone, as the libdns interfaces require.
func TestConcurrentAppends(t *testing.T) {
	s := dnstest.StartBIND(t, zone, "")
	p := provider(s)
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := p.AppendRecords(t.Context(), zone, []libdns.Record{
				libdns.TXT{Name: "_acme-challenge", TTL: time.Minute, Text: "token-" + strconv.Itoa(i)},
			})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("AppendRecords: %v", err)
		}
	}
	if got := answer(t, s, "_acme-challenge.example.test", dns.TypeTXT); len(got) != n {
		t.Errorf("got %d TXT records, want %d: %v", len(got), n, got)
	}
}

// TestACMEChallengeCycle checks the calls that an ACME DNS-01 solver such
// as certmagic's makes: append a TXT record, then delete the same record.
func TestACMEChallengeCycle(t *testing.T) {
	s := dnstest.StartBIND(t, zone, "")
	p := provider(s)
	rec := libdns.TXT{Name: "_acme-challenge.www", TTL: 2 * time.Minute, Text: "dGVzdC10b2tlbg"}
	if _, err := p.AppendRecords(t.Context(), "example.test.", []libdns.Record{rec}); err != nil {
		t.Fatal(err)
	}
	deleted, err := p.DeleteRecords(t.Context(), "example.test.", []libdns.Record{rec})
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 1 {
		t.Errorf("DeleteRecords returned %v, want the challenge record", deleted)
	}
	if got := answer(t, s, "_acme-challenge.www.example.test", dns.TypeTXT); len(got) != 0 {
		t.Errorf("after the cycle, got TXT %v, want none", got)
	}
}
