package ddns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/heimwolke/heimwolke/agent/netaddr"
	"github.com/heimwolke/heimwolke/packages/dnsprovider/dyndns2"
)

// memoryProvider is an in-memory zone behind libdns. fail, when set, is
// returned by SetRecords instead of changing the zone.
type memoryProvider struct {
	mu      sync.Mutex
	records []libdns.RR
	sets    []time.Time
	fail    error
}

func (p *memoryProvider) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	recs := make([]libdns.Record, len(p.records))
	for i, r := range p.records {
		recs[i] = r
	}
	return recs, nil
}

func (p *memoryProvider) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sets = append(p.sets, time.Now())
	if p.fail != nil {
		return nil, p.fail
	}
	for _, rec := range recs {
		rr := rec.RR()
		kept := p.records[:0]
		for _, old := range p.records {
			if old.Name != rr.Name || old.Type != rr.Type {
				kept = append(kept, old)
			}
		}
		p.records = append(kept, rr)
	}
	return recs, nil
}

func (p *memoryProvider) value(name, typ string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.records {
		if r.Name == name && r.Type == typ {
			return r.Data
		}
	}
	return ""
}

func (p *memoryProvider) ttl(name, typ string) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.records {
		if r.Name == name && r.Type == typ {
			return r.TTL
		}
	}
	return 0
}

func (p *memoryProvider) setCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sets)
}

func (p *memoryProvider) setFail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail = err
}

// staticAddrs is an IPv4Source and IPv6Source whose addresses the test sets.
type staticAddrs struct {
	mu    sync.Mutex
	ipv4  netip.Addr
	class netaddr.Class
	ipv6  netip.Addr
}

func (s *staticAddrs) Lookup(context.Context) (netaddr.IPv4Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return netaddr.IPv4Report{Addr: s.ipv4, Class: s.class}, nil
}

func (s *staticAddrs) set(ipv4, ipv6 string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ipv4, s.ipv6 = netip.MustParseAddr(ipv4), netip.MustParseAddr(ipv6)
}

type ipv6Of struct{ s *staticAddrs }

func (v ipv6Of) Lookup() (netip.Addr, bool, error) {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	return v.s.ipv6, v.s.ipv6.IsValid(), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testConfig(t *testing.T, p *memoryProvider, addrs *staticAddrs) Config {
	return Config{
		Zone:          "example.org.",
		Names:         []string{"@", "mail", "xmpp.example.org."},
		Provider:      p,
		ProviderName:  "memory",
		IPv4:          addrs,
		IPv6:          ipv6Of{addrs},
		CheckInterval: 20 * time.Millisecond,
		MinBackoff:    50 * time.Millisecond,
		MaxBackoff:    time.Second,
		Logger:        testLogger(t),
	}
}

// start runs the updater until the test ends.
func start(t *testing.T, cfg Config) *Updater {
	t.Helper()
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- u.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	return u
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	_, err := New(Config{Zone: "example.org.", Names: []string{"www.example.net.", ""}, TTL: 10 * time.Second})
	if err == nil {
		t.Fatal("got no error, want one")
	}
	for _, want := range []string{"provider is missing", "no address source", "TTL 10s is out of range", `"www.example.net." is outside zone`, "a name is empty"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestNewNormalizesNames(t *testing.T) {
	u, err := New(Config{
		Zone:     "Example.ORG",
		Names:    []string{"example.org.", "Mail", "mail.example.org.", "xmpp.example.org."},
		Provider: &memoryProvider{},
		IPv4:     &staticAddrs{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(u.names, " "), "@ mail xmpp"; got != want {
		t.Errorf("names: got %q, want %q", got, want)
	}
	if u.cfg.TTL != DefaultTTL {
		t.Errorf("TTL: got %v, want %v", u.cfg.TTL, DefaultTTL)
	}
}

func TestRunPublishesOnlyChanges(t *testing.T) {
	p := &memoryProvider{}
	addrs := &staticAddrs{class: netaddr.ClassPublic}
	addrs.set("198.51.100.1", "2001:db8:1::10")
	u := start(t, testConfig(t, p, addrs))

	waitFor(t, "A and AAAA are published", func() bool {
		return p.value("xmpp", "AAAA") == "2001:db8:1::10" && p.value("@", "A") == "198.51.100.1"
	})
	time.Sleep(100 * time.Millisecond) // several check intervals
	if got := p.setCount(); got != 2 {
		t.Errorf("SetRecords calls with unchanged addresses: got %d, want 2 (one per type)", got)
	}

	addrs.set("198.51.100.2", "2001:db8:1::10")
	waitFor(t, "A follows the new address", func() bool { return p.value("mail", "A") == "198.51.100.2" })
	time.Sleep(50 * time.Millisecond)
	if got := p.setCount(); got != 3 {
		t.Errorf("SetRecords calls after an IPv4 change: got %d, want 3", got)
	}

	s := u.State()
	if len(s.Records) != 6 {
		t.Fatalf("records in state: got %d, want 6", len(s.Records))
	}
	for _, r := range s.Records {
		if r.Updated.IsZero() || r.Error != "" {
			t.Errorf("record %s %s: updated %v, error %q; want a time and no error", r.Name, r.Type, r.Updated, r.Error)
		}
	}
	if s.Provider != "memory" || s.IPv4Class != netaddr.ClassPublic {
		t.Errorf("state: provider %q class %q, want memory and public", s.Provider, s.IPv4Class)
	}
}

func TestRunSkipsRecordsInPlace(t *testing.T) {
	p := &memoryProvider{records: []libdns.RR{
		{Name: "@", Type: "A", TTL: DefaultTTL, Data: "198.51.100.1"},
		{Name: "mail", Type: "A", TTL: DefaultTTL, Data: "198.51.100.1"},
		{Name: "xmpp", Type: "A", TTL: DefaultTTL, Data: "198.51.100.1"},
		{Name: "@", Type: "AAAA", TTL: time.Hour, Data: "2001:db8:1::10"},
		{Name: "mail", Type: "AAAA", TTL: time.Hour, Data: "2001:db8:1::10"},
		{Name: "xmpp", Type: "AAAA", TTL: time.Hour, Data: "2001:db8:1::10"},
	}}
	addrs := &staticAddrs{class: netaddr.ClassPublic}
	addrs.set("198.51.100.1", "2001:db8:1::10")
	start(t, testConfig(t, p, addrs))

	waitFor(t, "AAAA gets the configured TTL", func() bool { return p.ttl("@", "AAAA") == DefaultTTL })
	time.Sleep(60 * time.Millisecond)
	if got := p.setCount(); got != 1 {
		t.Errorf("SetRecords calls with A in place and AAAA with another TTL: got %d, want 1 (AAAA only)", got)
	}
}

func TestRunLeavesARecordsBehindCGNAT(t *testing.T) {
	p := &memoryProvider{}
	addrs := &staticAddrs{class: netaddr.ClassCGNAT}
	addrs.set("198.51.100.1", "2001:db8:1::10")
	u := start(t, testConfig(t, p, addrs))

	waitFor(t, "AAAA is published", func() bool { return p.value("@", "AAAA") == "2001:db8:1::10" })
	if got := p.value("@", "A"); got != "" {
		t.Errorf("A behind CGNAT: got %q, want none", got)
	}
	if got := u.State().IPv4Class; got != netaddr.ClassCGNAT {
		t.Errorf("state class: got %q, want %q", got, netaddr.ClassCGNAT)
	}
}

// rateLimited is a provider error that carries a Retry-After.
type rateLimited struct{ wait time.Duration }

func (e rateLimited) Error() string             { return fmt.Sprintf("rate limited, retry after %v", e.wait) }
func (e rateLimited) RetryAfter() time.Duration { return e.wait }

func TestRunBacksOffAndRespectsRetryAfter(t *testing.T) {
	p := &memoryProvider{fail: errors.New("server unreachable")}
	addrs := &staticAddrs{class: netaddr.ClassPublic}
	addrs.set("198.51.100.1", "2001:db8:1::10")
	cfg := testConfig(t, p, addrs)
	cfg.IPv6 = nil
	u := start(t, cfg)

	waitFor(t, "three attempts", func() bool { return p.setCount() >= 3 })
	p.setFail(rateLimited{wait: 700 * time.Millisecond})
	waitFor(t, "two more attempts", func() bool { return p.setCount() >= 5 })
	p.setFail(nil)
	waitFor(t, "A is published", func() bool { return p.value("@", "A") == "198.51.100.1" })

	p.mu.Lock()
	sets := p.sets
	p.mu.Unlock()
	gaps := make([]time.Duration, len(sets)-1)
	for i := range gaps {
		gaps[i] = sets[i+1].Sub(sets[i])
	}
	t.Logf("gaps between attempts: %v", gaps)

	// Backoff 50ms, 100ms, 200ms; the rate limit then requests 700ms, more
	// than the backoff of 400ms, and the backoff of 800ms wins again.
	for i, min := range []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 700 * time.Millisecond, 800 * time.Millisecond} {
		if gaps[i] < min {
			t.Errorf("gap %d: got %v, want at least %v", i, gaps[i], min)
		}
	}
	if s := u.State(); s.Failures != 0 || !s.NextAttempt.IsZero() || s.LastError == "" {
		t.Errorf("state after recovery: failures %d, next attempt %v, last error %q; want 0, zero and the last error kept", s.Failures, s.NextAttempt, s.LastError)
	}
}

func TestBackoffDelay(t *testing.T) {
	minimum, maximum := 30*time.Second, time.Hour
	tests := []struct {
		failures   int
		retryAfter time.Duration
		want       time.Duration
	}{
		{1, 0, 30 * time.Second},
		{2, 0, time.Minute},
		{5, 0, 8 * time.Minute},
		{7, 0, 32 * time.Minute},
		{8, 0, time.Hour}, // 64 minutes, capped
		{100, 0, time.Hour},
		{1, 5 * time.Minute, 5 * time.Minute},
		{3, 90 * time.Minute, 90 * time.Minute},
		{0, 0, 30 * time.Second},
	}
	for _, tt := range tests {
		if got := backoffDelay(tt.failures, minimum, maximum, tt.retryAfter); got != tt.want {
			t.Errorf("backoffDelay(%d, %v, %v, %v) = %v, want %v", tt.failures, minimum, maximum, tt.retryAfter, got, tt.want)
		}
	}
}

func TestRetryAfterAndPermanent(t *testing.T) {
	tests := []struct {
		name          string
		err           error
		wantWait      time.Duration
		wantPermanent bool
	}{
		{"plain", errors.New("boom"), 0, false},
		{"method", fmt.Errorf("publishing: %w", rateLimited{wait: time.Minute}), time.Minute, false},
		{"dyndns2 rate limit", fmt.Errorf("publishing: %w", &dyndns2.Error{Status: 429, RetryAfter: 2 * time.Minute}), 2 * time.Minute, false},
		{"dyndns2 badauth", &dyndns2.Error{Code: "badauth", Status: 200}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryAfter(tt.err); got != tt.wantWait {
				t.Errorf("retryAfter: got %v, want %v", got, tt.wantWait)
			}
			if got := isPermanent(tt.err); got != tt.wantPermanent {
				t.Errorf("isPermanent: got %v, want %v", got, tt.wantPermanent)
			}
		})
	}
}

func TestRunPublishesAtOnceOnChange(t *testing.T) {
	p := &memoryProvider{}
	addrs := &staticAddrs{class: netaddr.ClassPublic}
	addrs.set("198.51.100.1", "2001:db8:1::10")
	changes := make(chan struct{}, 1)
	cfg := testConfig(t, p, addrs)
	cfg.CheckInterval = time.Hour
	cfg.Changes = changes
	start(t, cfg)

	waitFor(t, "AAAA is published", func() bool { return p.value("@", "AAAA") == "2001:db8:1::10" })
	addrs.set("198.51.100.1", "2001:db8:2::10")
	changes <- struct{}{}
	waitFor(t, "AAAA follows the reported change", func() bool { return p.value("@", "AAAA") == "2001:db8:2::10" })
}

// failingVerifier fails its first n calls.
type failingVerifier struct {
	mu    sync.Mutex
	n     int
	calls int
}

func (v *failingVerifier) Verify(ctx context.Context, name, rrtype string, want netip.Addr) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls++
	if v.calls <= v.n {
		return fmt.Errorf("verifying %s %s: server returned [], want %s", name, rrtype, want)
	}
	return nil
}

func TestRunRepublishesUnverifiedRecords(t *testing.T) {
	p := &memoryProvider{}
	addrs := &staticAddrs{class: netaddr.ClassPublic}
	addrs.set("198.51.100.1", "2001:db8:1::10")
	cfg := testConfig(t, p, addrs)
	cfg.IPv6 = nil
	verifier := &failingVerifier{n: 2}
	cfg.Verifier = verifier
	u := start(t, cfg)

	waitFor(t, "the records are verified", func() bool {
		s := u.State()
		return len(s.Records) == 3 && !s.Records[2].Verified.IsZero()
	})
	if got := p.setCount(); got != 3 {
		t.Errorf("SetRecords calls with two failed verifications: got %d, want 3", got)
	}
	s := u.State()
	if !strings.Contains(s.LastError, "server returned []") {
		t.Errorf("last error: got %q, want the verification failure", s.LastError)
	}
	for _, r := range s.Records {
		if r.Error != "" {
			t.Errorf("record %s %s after success: error %q, want none", r.Name, r.Type, r.Error)
		}
	}
}
