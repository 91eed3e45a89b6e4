// Package authlimit slows down password guessing: it counts failed logins per
// account and per source address and makes every attempt past a free budget
// wait with exponential backoff. Every protocol shares one Limiter, and
// failures from the internet never throttle the same account on the LAN.
package authlimit

import (
	"cmp"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Config sets the budgets of a Limiter. The zero value of each field selects
// its default.
type Config struct {
	// Free is the number of failures per key that cost no delay. Default 5.
	Free int

	// BaseDelay is the wait after the first failure past Free. Each further
	// failure doubles it. Default 1 s.
	BaseDelay time.Duration

	// MaxDelay caps the doubled wait. Default 15 min.
	MaxDelay time.Duration

	// Forget is how long a key must see no failure before its count is
	// dropped. It must exceed MaxDelay, or an attacker who waits it out gets
	// a fresh free budget. Default 24 h.
	Forget time.Duration

	// MaxKeys caps the number of counters kept in memory. Default 10,000,
	// minimum 3. When full, the counters with the fewest failures are
	// dropped first.
	MaxKeys int

	// LocalPrefixes returns further prefixes that count as LAN, for example
	// the global IPv6 /64 of the box's own home network. Nil means none.
	LocalPrefixes func() []netip.Prefix

	// Now returns the current time. Nil means time.Now. Tests inject a clock.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Free <= 0 {
		c.Free = 5
	}
	if c.BaseDelay <= 0 {
		c.BaseDelay = time.Second
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = 15 * time.Minute
	}
	if c.Forget <= 0 {
		c.Forget = 24 * time.Hour
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = 10_000
	}
	c.MaxKeys = max(c.MaxKeys, 3) // one failure adds three keys
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Limiter counts failed logins. It keeps three counters per failure:
//
//   - The account within the source's network class (LAN or internet). It
//     slows down guessing from many addresses at once.
//   - The source: an IPv4 address or an IPv6 /64 from the internet, a single
//     address on the LAN. It slows down one client that tries many accounts.
//   - The pair of account and source. It only records how many failures a
//     later success from that source cancels.
//
// A LAN source that logged in to an account successfully within Forget is
// a known device of that account: the account's LAN counter does not slow
// it down, so that another device on the LAN that guesses the password
// cannot lock the household out of its own phones and computers. The
// source counter still applies to it.
//
// A Limiter is safe for concurrent use. The zero value is not usable; call New.
type Limiter struct {
	cfg Config

	mu       sync.Mutex
	counters map[key]*counter
}

type key struct {
	kind    kind
	account string
	source  string
}

type kind uint8

const (
	kindAccountLAN kind = iota
	kindAccountInternet
	kindSource
	kindPair
	kindKnown // a LAN source's last successful login to an account
)

type counter struct {
	failures int
	last     time.Time
}

// New returns a Limiter with cfg's budgets.
func New(cfg Config) *Limiter {
	return &Limiter{cfg: cfg.withDefaults(), counters: map[key]*counter{}}
}

// Check returns how long a login attempt for account from src must wait
// before it may be tried, or 0 when it may be tried now. It changes nothing:
// the caller reports the outcome with Fail or Succeed. Attempts that run in
// parallel may all pass Check before the first of them calls Fail, so a
// caller with a slow check bounds its parallelism and checks again after
// waiting.
func (l *Limiter) Check(account string, src netip.Addr) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()

	now := l.cfg.Now()
	keys := l.keys(account, src)
	known := l.known(keys, now)
	var wait time.Duration
	for _, k := range keys {
		if k.kind == kindPair || (k.kind == kindAccountLAN && known) {
			continue
		}
		wait = max(wait, l.waitFor(l.counters[k], now))
	}
	return wait
}

// known reports whether the LAN source of keys logged in to the account
// successfully within Forget.
func (l *Limiter) known(keys [3]key, now time.Time) bool {
	if keys[0].kind != kindAccountLAN {
		return false
	}
	c := l.counters[key{kind: kindKnown, account: keys[2].account, source: keys[2].source}]
	return c != nil && !l.forgotten(c, now)
}

// Fail counts a failed login for account from src.
func (l *Limiter) Fail(account string, src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()

	now := l.cfg.Now()
	keys := l.keys(account, src)
	if len(l.counters)+len(keys) > l.cfg.MaxKeys {
		l.prune(now)
	}
	for _, k := range keys {
		c := l.counters[k]
		if c == nil || l.forgotten(c, now) {
			c = &counter{}
			l.counters[k] = c
		}
		c.failures++
		c.last = now
	}
}

// Succeed records a successful login for account from src. It cancels the
// failures that this account made from this source, so that a user who
// mistyped and then got it right is not slowed down later, while failures
// from other sources keep counting.
func (l *Limiter) Succeed(account string, src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()

	keys := l.keys(account, src)
	accountKey, sourceKey, pairKey := keys[0], keys[1], keys[2]
	now := l.cfg.Now()
	if accountKey.kind == kindAccountLAN {
		knownKey := key{kind: kindKnown, account: account, source: pairKey.source}
		if l.counters[knownKey] == nil && len(l.counters) >= l.cfg.MaxKeys {
			l.prune(now)
		}
		l.counters[knownKey] = &counter{last: now}
	}
	pair := l.counters[pairKey]
	if pair == nil {
		return
	}
	delete(l.counters, pairKey)
	if l.forgotten(pair, now) {
		return
	}

	for _, k := range []key{accountKey, sourceKey} {
		c := l.counters[k]
		if c == nil {
			continue
		}
		c.failures -= pair.failures
		if c.failures <= 0 {
			delete(l.counters, k)
		}
	}
}

// IsLAN reports whether src counts as the box's own network: private IPv4,
// unique local IPv6 (fc00::/7), link-local, loopback, or a prefix that
// Config.LocalPrefixes returns. Carrier-grade NAT space (100.64.0.0/10) is
// not LAN, because other customers of the provider share it.
//
// NOTE: src must be the real client address. Behind the relay tunnel that is
// the address from the PROXY protocol header, because the tunnel's own
// address is loopback and would make every internet client a LAN client.
func (l *Limiter) IsLAN(src netip.Addr) bool {
	src = src.Unmap()
	if src.IsPrivate() || src.IsLoopback() || src.IsLinkLocalUnicast() {
		return true
	}
	if l.cfg.LocalPrefixes == nil {
		return false
	}
	for _, p := range l.cfg.LocalPrefixes() {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// keys returns the account, source and pair keys for a login attempt, in
// that order.
func (l *Limiter) keys(account string, src netip.Addr) [3]key {
	src = src.Unmap()
	accountKind := kindAccountInternet
	source := internetSource(src)
	if l.IsLAN(src) {
		accountKind = kindAccountLAN
		// One address, not a /64: LAN devices share their /64, and one
		// device's typos must not slow down the others.
		source = src.String()
	}
	return [3]key{
		{kind: accountKind, account: account},
		{kind: kindSource, source: source},
		{kind: kindPair, account: account, source: source},
	}
}

// internetSource returns the source key of an internet address: the address
// for IPv4 and its /64 for IPv6, because one IPv6 client usually controls a
// whole /64 and can pick a new address in it for every attempt.
func internetSource(src netip.Addr) string {
	if src.Is6() {
		p, err := src.Prefix(64)
		if err == nil {
			return p.String()
		}
	}
	// Also the zero Addr, for callers that know no address: all such
	// attempts share one source counter.
	return src.String()
}

// waitFor returns how long after now c allows the next attempt.
func (l *Limiter) waitFor(c *counter, now time.Time) time.Duration {
	if c == nil || c.failures < l.cfg.Free || l.forgotten(c, now) {
		return 0
	}
	delay := l.cfg.MaxDelay
	if doublings := c.failures - l.cfg.Free; doublings < 32 {
		delay = min(l.cfg.MaxDelay, l.cfg.BaseDelay<<doublings)
		if delay <= 0 { // the shift overflowed
			delay = l.cfg.MaxDelay
		}
	}
	return max(0, c.last.Add(delay).Sub(now))
}

func (l *Limiter) forgotten(c *counter, now time.Time) bool {
	return now.Sub(c.last) >= l.cfg.Forget
}

// prune drops forgotten counters and, if that frees too little, the counters
// with the fewest failures (the oldest first among equals) until the map is
// at 90% of MaxKeys, leaving room for the three keys of a failure. Dropping in
// bulk keeps the sort off most inserts.
// Keeping the highest counts means that an attacker who floods the map must
// first earn many failures per key, each of them slowed down.
func (l *Limiter) prune(now time.Time) {
	for k, c := range l.counters {
		if l.forgotten(c, now) {
			delete(l.counters, k)
		}
	}
	target := max(0, min(l.cfg.MaxKeys*9/10, l.cfg.MaxKeys-3))
	if len(l.counters) <= target {
		return
	}

	type entry struct {
		k key
		c *counter
	}
	entries := make([]entry, 0, len(l.counters))
	for k, c := range l.counters {
		entries = append(entries, entry{k, c})
	}
	// Known devices go last: a flood of failures must not make the
	// household's own devices strangers again.
	isKnown := func(e entry) int {
		if e.k.kind == kindKnown {
			return 1
		}
		return 0
	}
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(isKnown(a), isKnown(b)), cmp.Compare(a.c.failures, b.c.failures), a.c.last.Compare(b.c.last))
	})
	for _, e := range entries[:len(entries)-target] {
		delete(l.counters, e.k)
	}
}
