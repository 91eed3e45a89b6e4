package desec

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"
)

const token = "desec-test-token-abc"

func start(t *testing.T) (*fakeDeSEC, *Provider) {
	t.Helper()
	f := newFakeDeSEC(t, token)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, &Provider{Token: token, Endpoint: srv.URL + "/api/v1"}
}

func TestAppendSetGetDelete(t *testing.T) {
	f, p := start(t)
	ctx := t.Context()
	long := `v=DKIM1; k=ed25519; "quoted" ` + strings.Repeat("x", 300)

	_, err := p.AppendRecords(ctx, "example.dedyn.io.", []libdns.Record{
		libdns.Address{Name: "@", TTL: time.Hour, IP: netip.MustParseAddr("192.0.2.1")},
		libdns.TXT{Name: "_acme-challenge", Text: "token-1"},
		libdns.TXT{Name: "mail._domainkey", TTL: time.Hour, Text: long},
		libdns.MX{Name: "@", TTL: time.Hour, Preference: 10, Target: "mail"},
		libdns.SRV{Service: "submissions", Transport: "tcp", Name: "@", TTL: time.Hour, Weight: 1, Port: 465, Target: "mail.example.dedyn.io."},
		libdns.CAA{Name: "@", TTL: time.Hour, Tag: "issue", Value: "letsencrypt.org"},
		libdns.RR{Name: "_25._tcp.mail", TTL: time.Hour, Type: "TLSA", Data: "3 1 1 " + strings.Repeat("ab", 32)},
	})
	if err != nil {
		t.Fatalf("AppendRecords: %v", err)
	}
	if n := f.count("PATCH "); n != 1 {
		t.Errorf("got %d PATCH requests, want 1 bulk request", n)
	}
	if got := f.records("", "MX"); !slices.Equal(got, []string{"10 mail.example.dedyn.io."}) {
		t.Errorf("got MX %v, want the target made absolute", got)
	}
	if got := f.records("_acme-challenge", "TXT"); !slices.Equal(got, []string{`"token-1"`}) {
		t.Errorf("got TXT %v, want [\"token-1\"]", got)
	}

	// A second append keeps the existing record in the RRset.
	if _, err := p.AppendRecords(ctx, "example.dedyn.io", []libdns.Record{
		libdns.TXT{Name: "_acme-challenge", Text: "token-2"},
		libdns.TXT{Name: "_acme-challenge", Text: "token-1"},
	}); err != nil {
		t.Fatalf("second AppendRecords: %v", err)
	}
	if got, want := f.records("_acme-challenge", "TXT"), []string{`"token-1"`, `"token-2"`}; !slices.Equal(got, want) {
		t.Errorf("after the second append, got TXT %v, want %v", got, want)
	}

	if _, err := p.SetRecords(ctx, "example.dedyn.io", []libdns.Record{
		libdns.Address{Name: "@", TTL: time.Hour, IP: netip.MustParseAddr("192.0.2.2")},
	}); err != nil {
		t.Fatalf("SetRecords: %v", err)
	}
	if got := f.records("", "A"); !slices.Equal(got, []string{"192.0.2.2"}) {
		t.Errorf("after set, got A %v, want [192.0.2.2]", got)
	}

	recs, err := p.GetRecords(ctx, "example.dedyn.io")
	if err != nil {
		t.Fatalf("GetRecords: %v", err)
	}
	if len(recs) != 8 {
		t.Errorf("GetRecords returned %d records, want 8: %v", len(recs), recs)
	}
	if n := f.count("GET /api/v1/domains/example.dedyn.io/rrsets/?cursor=6"); n != 1 {
		t.Errorf("got %d requests for the page at cursor 6, want 1 (pagination)", n)
	}
	var dkim string
	for _, r := range recs {
		if x, ok := r.(libdns.TXT); ok && x.Name == "mail._domainkey" {
			dkim = x.Text
		}
	}
	if dkim != long {
		t.Errorf("GetRecords returned DKIM TXT %q, want %q", dkim, long)
	}

	deleted, err := p.DeleteRecords(ctx, "example.dedyn.io", []libdns.Record{
		libdns.TXT{Name: "_acme-challenge", Text: "token-1"},
		libdns.RR{Name: "_25._tcp.mail"},
		libdns.Address{Name: "@", TTL: time.Minute, IP: netip.MustParseAddr("192.0.2.2")},
		libdns.Address{Name: "nowhere", IP: netip.MustParseAddr("192.0.2.9")},
	})
	if err != nil {
		t.Fatalf("DeleteRecords: %v", err)
	}
	if len(deleted) != 2 {
		t.Errorf("DeleteRecords returned %v, want one TXT and the TLSA record", deleted)
	}
	if got := f.records("_acme-challenge", "TXT"); !slices.Equal(got, []string{`"token-2"`}) {
		t.Errorf("after delete, got TXT %v, want [\"token-2\"]", got)
	}
	if got := f.records("_25._tcp.mail", "TLSA"); got != nil {
		t.Errorf("after delete, got TLSA %v, want the RRset gone", got)
	}
	if got := f.records("", "A"); len(got) != 1 {
		t.Errorf("after deleting with another TTL, got A %v, want it kept", got)
	}
}

func TestTTLBelowMinimum(t *testing.T) {
	f, p := start(t)
	set, err := p.SetRecords(t.Context(), "example.dedyn.io", []libdns.Record{libdns.TXT{Name: "x", TTL: time.Second, Text: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := set[0].RR().TTL; got != time.Minute {
		t.Errorf("SetRecords returned TTL %v, want the domain minimum 1m0s", got)
	}
	if want := `[{"subname":"x","type":"TXT","ttl":60,"records":["\"x\""]}]`; len(f.bodies) != 1 || f.bodies[0] != want {
		t.Errorf("got PATCH bodies %q, want [%s]", f.bodies, want)
	}
}

func TestWrongToken(t *testing.T) {
	_, p := start(t)
	p.Token = "wrong-secret-token"
	_, err := p.GetRecords(t.Context(), "example.dedyn.io")
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("got error %v, want ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-token") {
		t.Errorf("error %q contains the token", err)
	}
}

func TestUnknownDomain(t *testing.T) {
	_, p := start(t)
	_, err := p.SetRecords(t.Context(), "example.org", []libdns.Record{libdns.TXT{Name: "x", Text: "x"}})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("got error %v, want HTTP 404", err)
	}
	if !strings.Contains(err.Error(), "check the domain name") {
		t.Errorf("error %q does not say what to check", err)
	}
}

func TestThrottled(t *testing.T) {
	f, p := start(t)
	f.mu.Lock()
	f.throttle = 1
	f.mu.Unlock()
	began := time.Now()
	if _, err := p.GetRecords(t.Context(), "example.dedyn.io"); err != nil {
		t.Fatalf("GetRecords after one 429: %v", err)
	}
	if elapsed := time.Since(began); elapsed < time.Second {
		t.Errorf("GetRecords retried after %v, want at least the Retry-After of 1s", elapsed)
	}

	f.mu.Lock()
	f.throttle = 100
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	if _, err := p.GetRecords(ctx, "example.dedyn.io"); err == nil {
		t.Error("GetRecords while throttled succeeded, want an error")
	}
}

func TestInvalidRecordChangesNothing(t *testing.T) {
	f, p := start(t)
	_, err := p.SetRecords(t.Context(), "example.dedyn.io", []libdns.Record{
		libdns.TXT{Name: "ok", Text: "x"},
		libdns.RR{Name: "bad", Type: "MX", Data: "ten mail"},
	})
	if err == nil {
		t.Fatal("SetRecords with an invalid MX record succeeded, want an error")
	}
	if n := f.count("PATCH "); n != 0 {
		t.Errorf("got %d PATCH requests, want none", n)
	}
}

// FuzzNextPage checks that no Link header from the API panics the parser.
func FuzzNextPage(f *testing.F) {
	f.Add(`<https://desec.io/api/v1/domains/x/rrsets/?cursor=>; rel="first", <https://desec.io/api/v1/domains/x/rrsets/?cursor=abc>; rel="next"`)
	f.Add(`<>; rel="next"`)
	f.Add(`;;,,<%zz>; rel="next"`)
	f.Fuzz(func(t *testing.T, link string) {
		p := &Provider{}
		p.nextPage(link)
	})
}
