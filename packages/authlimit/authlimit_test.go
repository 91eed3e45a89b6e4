package authlimit

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func (c *clock) Advance(d time.Duration) { c.now = c.now.Add(d) }

func newTestLimiter(t *testing.T, cfg Config) (*Limiter, *clock) {
	t.Helper()
	c := &clock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	cfg.Now = c.Now
	return New(cfg), c
}

var (
	internetAddr = netip.MustParseAddr("203.0.113.7")
	lanAddr      = netip.MustParseAddr("192.168.178.20")
)

func TestBackoffDoublesToCap(t *testing.T) {
	l, clk := newTestLimiter(t, Config{})
	for i := range 5 {
		if wait := l.Check("anna", internetAddr); wait != 0 {
			t.Fatalf("attempt %d: got wait %v, want 0 within the free budget", i+1, wait)
		}
		l.Fail("anna", internetAddr)
	}

	want := time.Second
	for i := range 15 {
		if wait := l.Check("anna", internetAddr); wait != want {
			t.Fatalf("after %d failures: got wait %v, want %v", 5+i, wait, want)
		}
		clk.Advance(want)
		if wait := l.Check("anna", internetAddr); wait != 0 {
			t.Fatalf("after waiting %v: got wait %v, want 0", want, wait)
		}
		l.Fail("anna", internetAddr)
		want = min(2*want, 15*time.Minute)
	}
	if want != 15*time.Minute {
		t.Fatalf("backoff reached %v after 20 failures, want the 15 min cap", want)
	}
}

func TestCheckChangesNothing(t *testing.T) {
	l, _ := newTestLimiter(t, Config{})
	for range 100 {
		l.Check("anna", internetAddr)
	}
	if len(l.counters) != 0 {
		t.Fatalf("Check created %d counters, want 0", len(l.counters))
	}
}

func TestSucceedCancelsOwnFailures(t *testing.T) {
	l, _ := newTestLimiter(t, Config{})
	other := netip.MustParseAddr("198.51.100.9")
	for range 3 {
		l.Fail("anna", other)
	}
	for range 3 {
		l.Fail("anna", internetAddr)
	}
	if wait := l.Check("anna", internetAddr); wait == 0 {
		t.Fatal("got no wait after 6 failures on the account, want a wait")
	}

	l.Succeed("anna", internetAddr)

	if wait := l.Check("anna", internetAddr); wait != 0 {
		t.Fatalf("got wait %v after success, want 0", wait)
	}
	got := l.counters[key{kind: kindAccountInternet, account: "anna"}]
	if got == nil || got.failures != 3 {
		t.Fatalf("got account counter %+v, want the 3 failures from the other source kept", got)
	}
}

func TestInternetFailuresSpareLAN(t *testing.T) {
	l, _ := newTestLimiter(t, Config{})
	for i := range 100 {
		src := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		l.Fail("anna", src)
	}
	if wait := l.Check("anna", netip.MustParseAddr("198.51.100.1")); wait == 0 {
		t.Fatal("got no wait for a new internet source after 100 failures on the account, want a wait")
	}

	lan := []string{
		"192.168.178.20", "10.0.0.5", "172.16.1.1", "127.0.0.1", "::1",
		"fe80::1", "fd00:1234::5", "169.254.1.1", "::ffff:192.168.178.20",
	}
	for _, s := range lan {
		if wait := l.Check("anna", netip.MustParseAddr(s)); wait != 0 {
			t.Errorf("Check(anna, %s) = %v, want 0 for a LAN source", s, wait)
		}
	}
}

func TestLANFailuresThrottleLAN(t *testing.T) {
	l, _ := newTestLimiter(t, Config{})
	for i := range 6 {
		l.Fail("anna", netip.AddrFrom4([4]byte{192, 168, 1, byte(i)}))
	}
	if wait := l.Check("anna", netip.MustParseAddr("192.168.1.200")); wait == 0 {
		t.Fatal("got no wait after 6 LAN failures on the account, want a wait")
	}
	if wait := l.Check("anna", internetAddr); wait != 0 {
		t.Fatalf("got wait %v from the internet after LAN failures, want 0", wait)
	}
}

func TestIsLAN(t *testing.T) {
	l := New(Config{LocalPrefixes: func() []netip.Prefix {
		return []netip.Prefix{netip.MustParsePrefix("2001:db8:1:2::/64")}
	}})
	tests := []struct {
		addr string
		want bool
	}{
		{"192.168.0.1", true},
		{"10.1.2.3", true},
		{"172.31.255.255", true},
		{"172.32.0.1", false},
		{"127.0.0.1", true},
		{"169.254.0.1", true},
		{"100.64.0.1", false},
		{"8.8.8.8", false},
		{"::1", true},
		{"fe80::1", true},
		{"fd12:3456::1", true},
		{"2001:db8:1:2::99", true},
		{"2001:db8:1:3::99", false},
		{"::ffff:10.0.0.1", true},
		{"::ffff:8.8.8.8", false},
	}
	for _, tt := range tests {
		if got := l.IsLAN(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("IsLAN(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if New(Config{}).IsLAN(netip.Addr{}) {
		t.Error("IsLAN(zero Addr) = true, want false")
	}
}

func TestSourceAcrossAccounts(t *testing.T) {
	l, _ := newTestLimiter(t, Config{})
	for i := range 6 {
		// Every attempt from another address of the same /64.
		src := netip.MustParseAddr(fmt.Sprintf("2001:db8:0:1::%x", i+1))
		l.Fail(fmt.Sprintf("user%d", i), src)
	}
	if wait := l.Check("someone", netip.MustParseAddr("2001:db8:0:1::ffff")); wait == 0 {
		t.Fatal("got no wait for a new account from a /64 with 6 failures, want a wait")
	}
	if wait := l.Check("someone", netip.MustParseAddr("2001:db8:0:2::1")); wait != 0 {
		t.Fatalf("got wait %v for another /64, want 0", wait)
	}
}

func TestLANSourceIsOneAddress(t *testing.T) {
	l, _ := newTestLimiter(t, Config{})
	for i := range 6 {
		l.Fail(fmt.Sprintf("user%d", i), netip.MustParseAddr("fd00::1"))
	}
	if wait := l.Check("someone", netip.MustParseAddr("fd00::2")); wait != 0 {
		t.Fatalf("got wait %v for another LAN address of the same /64, want 0", wait)
	}
	if wait := l.Check("someone", netip.MustParseAddr("fd00::1")); wait == 0 {
		t.Fatal("got no wait for the failing LAN address, want a wait")
	}
}

func TestForgetAfterQuiet(t *testing.T) {
	l, clk := newTestLimiter(t, Config{Forget: time.Hour})
	for range 10 {
		l.Fail("anna", internetAddr)
	}
	clk.Advance(time.Hour)
	if wait := l.Check("anna", internetAddr); wait != 0 {
		t.Fatalf("got wait %v after an hour without failures, want 0", wait)
	}
	l.Fail("anna", internetAddr)
	got := l.counters[key{kind: kindAccountInternet, account: "anna"}]
	if got.failures != 1 {
		t.Fatalf("got %d failures after a forgotten count, want 1", got.failures)
	}
}

func TestMaxKeysKeepsHighCounts(t *testing.T) {
	l, clk := newTestLimiter(t, Config{MaxKeys: 100})
	for range 10 {
		l.Fail("anna", internetAddr)
	}
	for i := range 1000 {
		clk.Advance(time.Millisecond)
		src := netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
		l.Fail(fmt.Sprintf("guess%d", i), src)
		if n := len(l.counters); n > 100 {
			t.Fatalf("after %d inserts: got %d counters, want at most 100", i+1, n)
		}
	}
	if wait := l.Check("anna", netip.MustParseAddr("192.0.2.1")); wait == 0 {
		t.Fatal("got no wait for anna after the flood, want the counter with 10 failures kept")
	}
}

func TestConcurrentUse(t *testing.T) {
	l := New(Config{MaxKeys: 50})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				src := netip.AddrFrom4([4]byte{203, 0, byte(g), byte(i)})
				account := fmt.Sprintf("user%d", i%7)
				l.Check(account, src)
				l.Fail(account, src)
				if i%3 == 0 {
					l.Succeed(account, src)
				}
			}
		})
	}
	wg.Wait()
	if n := len(l.counters); n > 50 {
		t.Fatalf("got %d counters, want at most 50", n)
	}
}

// TestKnownLANDeviceNotLockedOut checks that a LAN device that logged in to
// an account before keeps logging in while another LAN device guesses that
// account's password, and that a new LAN device is still slowed down.
func TestKnownLANDeviceNotLockedOut(t *testing.T) {
	l, clk := newTestLimiter(t, Config{})
	phone := netip.MustParseAddr("192.168.178.30")
	attacker := netip.MustParseAddr("192.168.178.66")
	l.Succeed("anna", phone)
	for range 20 {
		l.Fail("anna", attacker)
		clk.Advance(time.Second)
	}
	if wait := l.Check("anna", phone); wait != 0 {
		t.Errorf("known phone: wait %v after another LAN device failed 20 times, want 0", wait)
	}
	if wait := l.Check("anna", attacker); wait == 0 {
		t.Error("attacker: no wait after 20 failures, want a wait")
	}
	if wait := l.Check("anna", netip.MustParseAddr("192.168.178.77")); wait == 0 {
		t.Error("new LAN device: no wait after 20 failures on the account, want a wait")
	}
	clk.Advance(25 * time.Hour)
	l.Fail("anna", attacker)
	for range 6 {
		l.Fail("anna", netip.MustParseAddr("192.168.178.67"))
	}
	if wait := l.Check("anna", phone); wait == 0 {
		t.Error("phone that has not logged in for 25 hours: no wait, want the account's LAN wait")
	}
}
