package hetzner

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"
)

const token = "test-token-0123456789"

func start(t *testing.T) (*fakeAPI, *Provider) {
	t.Helper()
	f := newFakeAPI(t, token)
	srv := httptest.NewServer(http.StripPrefix("/v1", f))
	t.Cleanup(srv.Close)
	return f, &Provider{Token: token, Endpoint: srv.URL + "/v1"}
}

func TestAppendSetGetDelete(t *testing.T) {
	f, p := start(t)
	ctx := t.Context()
	long := `token "quoted" ` + strings.Repeat("x", 300)

	added, err := p.AppendRecords(ctx, "example.test.", []libdns.Record{
		libdns.Address{Name: "www", TTL: 5 * time.Minute, IP: netip.MustParseAddr("192.0.2.1")},
		libdns.Address{Name: "www", TTL: 5 * time.Minute, IP: netip.MustParseAddr("192.0.2.2")},
		libdns.TXT{Name: "_acme-challenge", TTL: time.Minute, Text: long},
		libdns.MX{Name: "@", TTL: time.Hour, Preference: 10, Target: "mail.example.test."},
		libdns.SRV{Service: "imaps", Transport: "tcp", Name: "@", Weight: 1, Port: 993, Target: "mail.example.test."},
		libdns.CAA{Name: "@", Tag: "issue", Value: "letsencrypt.org"},
		libdns.RR{Name: "_25._tcp.mail", Type: "TLSA", Data: "3 1 1 " + strings.Repeat("ab", 32)},
	})
	if err != nil {
		t.Fatalf("AppendRecords: %v", err)
	}
	if len(added) != 7 {
		t.Errorf("AppendRecords returned %d records, want 7", len(added))
	}
	if got, want := f.values("www", "A"), []string{"192.0.2.1", "192.0.2.2"}; !slices.Equal(got, want) {
		t.Errorf("got www A values %v, want %v", got, want)
	}
	if got := f.ttl("www", "A"); got != "300" {
		t.Errorf("got www A TTL %s, want 300", got)
	}
	if got := f.ttl("@", "CAA"); got != "none" {
		t.Errorf("got CAA TTL %s for a zero TTL, want none (the zone default)", got)
	}
	if got := f.values("_acme-challenge", "TXT"); len(got) != 1 || !strings.HasPrefix(got[0], `"token \"quoted\" xxx`) || !strings.Contains(got[0], `" "`) {
		t.Errorf("got TXT value %q, want quoted and escaped strings of at most 255 octets", got)
	}
	if n := f.count("POST /zones/4711/rrsets/www/A/actions/add_records"); n != 1 {
		t.Errorf("got %d add_records requests for www A, want 1 for both records", n)
	}
	if n := f.count("GET /zones/actions/"); n != 6 {
		t.Errorf("got %d action polls, want one for each of the 6 changes", n)
	}

	if _, err := p.SetRecords(ctx, "example.test", []libdns.Record{
		libdns.Address{Name: "www", TTL: 10 * time.Minute, IP: netip.MustParseAddr("192.0.2.3")},
		libdns.TXT{Name: "new", Text: "fresh"},
	}); err != nil {
		t.Fatalf("SetRecords: %v", err)
	}
	if got, want := f.values("www", "A"), []string{"192.0.2.3"}; !slices.Equal(got, want) {
		t.Errorf("after set, got www A values %v, want %v", got, want)
	}
	if got := f.ttl("www", "A"); got != "600" {
		t.Errorf("after set, got www A TTL %s, want 600", got)
	}
	if got := f.values("new", "TXT"); !slices.Equal(got, []string{`"fresh"`}) {
		t.Errorf("after set, got new TXT %v, want [\"fresh\"]", got)
	}
	if n := f.count("POST /zones/4711/rrsets"); n != 9 {
		t.Errorf("got %d POST requests, want 9: 6 add_records, then set_records, change_ttl and a create", n)
	}
	if n := f.count("POST /zones/4711/rrsets/www/A/actions/change_ttl"); n != 1 {
		t.Errorf("got %d change_ttl requests, want 1", n)
	}

	recs, err := p.GetRecords(ctx, "example.test")
	if err != nil {
		t.Fatalf("GetRecords: %v", err)
	}
	if len(recs) != 7 {
		t.Errorf("GetRecords returned %d records, want 7: %v", len(recs), recs)
	}
	if n := f.count("GET /zones/4711/rrsets?page=3"); n != 1 {
		t.Errorf("got %d requests for page 3 of the RRsets, want 1 (pagination)", n)
	}
	var txt string
	for _, r := range recs {
		if x, ok := r.(libdns.TXT); ok && x.Name == "_acme-challenge" {
			txt = x.Text
		}
	}
	if txt != long {
		t.Errorf("GetRecords returned TXT %q, want %q", txt, long)
	}

	deleted, err := p.DeleteRecords(ctx, "example.test", []libdns.Record{
		libdns.TXT{Name: "_acme-challenge"},
		libdns.Address{Name: "www", TTL: time.Hour, IP: netip.MustParseAddr("192.0.2.3")},
		libdns.RR{Name: "_25._tcp.mail"},
		libdns.Address{Name: "nowhere", IP: netip.MustParseAddr("192.0.2.9")},
	})
	if err != nil {
		t.Fatalf("DeleteRecords: %v", err)
	}
	if len(deleted) != 2 {
		t.Errorf("DeleteRecords returned %v, want the TXT and the TLSA record", deleted)
	}
	if got := f.values("_acme-challenge", "TXT"); got != nil {
		t.Errorf("after delete, got TXT %v, want the RRset gone", got)
	}
	if got := f.values("www", "A"); len(got) != 1 {
		t.Errorf("after deleting with another TTL, got www A %v, want it kept", got)
	}
}

// TestRequestShapes checks the JSON that goes to add_records against the
// documented request body.
func TestRequestShapes(t *testing.T) {
	f, p := start(t)
	_, err := p.AppendRecords(t.Context(), "example.test", []libdns.Record{
		libdns.TXT{Name: "_acme-challenge", TTL: 2 * time.Minute, Text: "abc"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"records":[{"value":"\"abc\""}],"ttl":120}`; len(f.bodies) != 1 || f.bodies[0] != want {
		t.Errorf("got request bodies %q, want [%s]", f.bodies, want)
	}
}

func TestWrongToken(t *testing.T) {
	_, p := start(t)
	p.Token = "wrong-token-secret"
	_, err := p.AppendRecords(t.Context(), "example.test", []libdns.Record{libdns.TXT{Name: "x", Text: "x"}})
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("got error %v, want ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), "wrong-token-secret") {
		t.Errorf("error %q contains the token", err)
	}
	if !strings.Contains(err.Error(), "Read & Write") {
		t.Errorf("error %q does not say which token to create", err)
	}
}

func TestEmptyToken(t *testing.T) {
	_, err := (&Provider{}).GetRecords(t.Context(), "example.test")
	if err == nil || !strings.Contains(err.Error(), "token is empty") {
		t.Errorf("got error %v, want one about the empty token", err)
	}
}

func TestZoneNotFound(t *testing.T) {
	_, p := start(t)
	_, err := p.GetRecords(t.Context(), "example.org")
	if err == nil || !strings.Contains(err.Error(), "zone example.org not found") {
		t.Errorf("got error %v, want zone example.org not found", err)
	}
}

func TestRateLimitRetry(t *testing.T) {
	f, p := start(t)
	f.mu.Lock()
	f.reject429 = 2
	f.mu.Unlock()
	if _, err := p.GetRecords(t.Context(), "example.test"); err != nil {
		t.Fatalf("GetRecords after two 429 responses: %v", err)
	}
	if n := f.count("GET /zones/example.test"); n != 3 {
		t.Errorf("got %d zone requests, want 3 (two rejected, then one accepted)", n)
	}
}

func TestRateLimitExhausted(t *testing.T) {
	f, p := start(t)
	f.mu.Lock()
	f.reject429 = 1000
	f.mu.Unlock()
	_, err := p.GetRecords(t.Context(), "example.test")
	if err == nil || !strings.Contains(err.Error(), "rate limit") {
		t.Errorf("got error %v, want one about the rate limit", err)
	}
}

func TestRateLimitWait(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	tests := []struct {
		header http.Header
		want   time.Duration
	}{
		{http.Header{"Retry-After": {"3"}}, 3 * time.Second},
		{http.Header{"Ratelimit-Limit": {"3600"}, "Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {"1003600"}}, time.Second},
		{http.Header{"Ratelimit-Limit": {"100"}, "Ratelimit-Remaining": {"50"}, "Ratelimit-Reset": {"1000100"}}, 2 * time.Second},
		{http.Header{"Ratelimit-Limit": {"3600"}, "Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {"999999"}}, 0},
		{http.Header{}, time.Second},
	}
	for _, tt := range tests {
		if got := rateLimitWait(tt.header, now); got != tt.want {
			t.Errorf("rateLimitWait(%v) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

// TestActionPolling checks that a change waits until its action leaves the
// running state.
func TestActionPolling(t *testing.T) {
	f, p := start(t)
	f.mu.Lock()
	f.runningPolls = 2
	f.mu.Unlock()
	if _, err := p.AppendRecords(t.Context(), "example.test", []libdns.Record{libdns.TXT{Name: "x", Text: "x"}}); err != nil {
		t.Fatal(err)
	}
	if n := f.count("GET /zones/actions/1001"); n != 3 {
		t.Errorf("got %d polls of the action, want 3 (running twice, then success)", n)
	}
}

func TestActionTimeout(t *testing.T) {
	f, p := start(t)
	f.mu.Lock()
	f.runningPolls = 1 << 30 // actions never finish
	f.mu.Unlock()
	ctx, cancel := contextWithTimeout(t, 500*time.Millisecond)
	defer cancel()
	_, err := p.AppendRecords(ctx, "example.test", []libdns.Record{libdns.TXT{Name: "x", Text: "x"}})
	if err == nil || !strings.Contains(err.Error(), "waiting for action") {
		t.Errorf("got error %v, want a timeout while waiting for the action", err)
	}
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}

func TestListZones(t *testing.T) {
	f, p := start(t)
	zones, err := p.ListZones(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []libdns.Zone{{Name: "example.test."}, {Name: "other.test."}}
	if !slices.Equal(zones, want) {
		t.Errorf("ListZones returned %v, want %v", zones, want)
	}
	if n := f.count("GET /zones?page=2"); n != 1 {
		t.Errorf("got %d requests for page 2 of the zones, want 1", n)
	}
}
