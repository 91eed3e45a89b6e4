package ddns

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/libdns/libdns"

	"github.com/heimwolke/heimwolke/agent/netaddr"
)

// providerTimeout bounds one request to the provider.
const providerTimeout = time.Minute

// recordTypes are the published types, in the order they are published.
var recordTypes = []string{"A", "AAAA"}

// published records, per type, the address that every name has at the
// provider, and whether the authoritative server returned it.
type published struct {
	addr     netip.Addr
	verified bool
}

// loop is the state that only Run's goroutine touches.
type loop struct {
	published map[string]published
	notBefore time.Time // no update before this time, while backing off
	failures  int
	lastIPv4  netaddr.Class
	lastErrs  map[string]string // last logged lookup error per source
}

// Run checks the addresses at once, then every CheckInterval and whenever
// Config.Changes reports a change, and publishes what changed. It returns
// when ctx ends, with ctx's error.
func (u *Updater) Run(ctx context.Context) error {
	u.log.Info("dynamic dns started", "names", strings.Join(u.names, " "), "ttl", u.cfg.TTL)
	defer u.log.Info("dynamic dns stopped")

	l := &loop{published: map[string]published{}, lastErrs: map[string]string{}}
	u.readPublished(ctx, l)

	changes := u.cfg.Changes
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		case _, open := <-changes:
			if !open {
				u.log.Warn("address watch ended, checking every interval only")
				changes = nil
				continue
			}
			u.log.Debug("interface addresses changed")
		}
		timer.Reset(u.check(ctx, l))
	}
}

// readPublished fills l.published from the provider's records, if the
// provider can read them, so that a restart does not publish again.
func (u *Updater) readPublished(ctx context.Context, l *loop) {
	getter, ok := u.cfg.Provider.(libdns.RecordGetter)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, providerTimeout)
	defer cancel()
	recs, err := getter.GetRecords(ctx, u.cfg.Zone)
	if err != nil {
		u.log.Warn("reading published records failed, publishing anew", "err", err)
		return
	}

	for _, typ := range recordTypes {
		addr, ok := commonAddress(recs, u.names, typ, u.cfg.TTL)
		if !ok {
			continue
		}
		l.published[typ] = published{addr: addr, verified: true}
		u.updateState(func(s *State) {
			for _, name := range u.names {
				s.record(libdns.AbsoluteName(name, u.cfg.Zone), typ).Value = addr
			}
		})
		u.log.Info("found published records", "type", typ, "addr", addr)
	}
}

// commonAddress returns the address when every name has exactly one record
// of typ, all with that address and the TTL ttl.
func commonAddress(recs []libdns.Record, names []string, typ string, ttl time.Duration) (netip.Addr, bool) {
	var common netip.Addr
	for _, name := range names {
		var found []netip.Addr
		for _, rec := range recs {
			rr := rec.RR()
			if !strings.EqualFold(rr.Name, name) || rr.Type != typ {
				continue
			}
			a, err := netip.ParseAddr(rr.Data)
			if err != nil || rr.TTL != ttl {
				return netip.Addr{}, false
			}
			found = append(found, a)
		}
		if len(found) != 1 || (common.IsValid() && found[0] != common) {
			return netip.Addr{}, false
		}
		common = found[0]
	}
	return common, common.IsValid()
}

// check looks up the addresses, publishes those that changed or were not
// verified yet, and returns the time until the next check.
func (u *Updater) check(ctx context.Context, l *loop) time.Duration {
	want := u.lookup(ctx, l)

	var pending []string
	for _, typ := range recordTypes {
		addr, ok := want[typ]
		if ok && (l.published[typ].addr != addr || !l.published[typ].verified) {
			pending = append(pending, typ)
		}
	}
	if len(pending) == 0 {
		return u.cfg.CheckInterval
	}
	if wait := time.Until(l.notBefore); wait > 0 {
		return min(wait, u.cfg.CheckInterval)
	}

	for _, typ := range pending {
		if err := u.publish(ctx, l, typ, want[typ]); err != nil {
			if ctx.Err() != nil {
				return 0
			}
			return u.fail(l, err)
		}
	}
	u.succeed(l)
	return u.cfg.CheckInterval
}

// lookup returns the addresses to publish, by record type.
func (u *Updater) lookup(ctx context.Context, l *loop) map[string]netip.Addr {
	want := map[string]netip.Addr{}
	if u.cfg.IPv4 != nil {
		if addr, ok := u.lookupIPv4(ctx, l); ok {
			want["A"] = addr
		}
	}
	if u.cfg.IPv6 != nil {
		addr, ok, err := u.cfg.IPv6.Lookup()
		u.logLookupError(l, "ipv6", err)
		if ok {
			want["AAAA"] = addr
		}
		u.updateState(func(s *State) { s.IPv6 = addr })
	}
	u.updateState(func(s *State) { s.LastCheck = time.Now() })
	return want
}

func (u *Updater) lookupIPv4(ctx context.Context, l *loop) (netip.Addr, bool) {
	report, err := u.cfg.IPv4.Lookup(ctx)
	u.logLookupError(l, "ipv4", err)
	if err != nil {
		return netip.Addr{}, false
	}

	for _, answer := range report.Answers {
		u.logLookupError(l, answer.Source, answer.Err)
	}

	disagreement := ""
	if report.Disagreement {
		disagreement = report.DisagreementText()
	}
	u.updateState(func(s *State) {
		s.IPv4, s.IPv4Class, s.IPv4Disagreement = report.Addr, report.Class, disagreement
	})

	if report.Class != l.lastIPv4 {
		u.log.Info("ipv4 connection classified", "class", report.Class, "wan", report.WAN, "addr", report.Addr)
		l.lastIPv4 = report.Class
	}
	// NOTE: Behind CGNAT or DS-Lite the A records are left as they are,
	// not deleted, because the relay may publish its own address there.
	if !report.Class.Publishable() || !report.Addr.IsValid() {
		return netip.Addr{}, false
	}
	return report.Addr, true
}

// logLookupError logs a lookup error once until it changes or clears, so
// that a lasting failure does not fill the log every interval.
func (u *Updater) logLookupError(l *loop, source string, err error) {
	text := ""
	if err != nil {
		text = err.Error()
	}
	if text == l.lastErrs[source] {
		return
	}
	l.lastErrs[source] = text
	if err != nil {
		u.log.Warn("address lookup failed", "source", source, "err", err)
	} else {
		u.log.Info("address lookup works again", "source", source)
	}
}

// publish sets the records of typ for every name to addr in one request,
// then verifies them.
func (u *Updater) publish(ctx context.Context, l *loop, typ string, addr netip.Addr) error {
	recs := make([]libdns.Record, len(u.names))
	for i, name := range u.names {
		recs[i] = libdns.Address{Name: name, TTL: u.cfg.TTL, IP: addr}
	}

	setCtx, cancel := context.WithTimeout(ctx, providerTimeout)
	_, err := u.cfg.Provider.SetRecords(setCtx, u.cfg.Zone, recs)
	cancel()
	if err != nil {
		err = fmt.Errorf("publishing %s %s: %w", typ, addr, err)
		u.recordError(typ, err)
		return err
	}

	l.published[typ] = published{addr: addr}
	now := time.Now()
	u.updateState(func(s *State) {
		s.LastUpdate = now
		for _, name := range u.names {
			r := s.record(libdns.AbsoluteName(name, u.cfg.Zone), typ)
			r.Value, r.Updated, r.Error = addr, now, ""
		}
	})
	u.log.Info("records published", "type", typ, "addr", addr, "names", strings.Join(u.names, " "))

	return u.verify(ctx, l, typ, addr)
}

func (u *Updater) verify(ctx context.Context, l *loop, typ string, addr netip.Addr) error {
	if u.cfg.Verifier == nil {
		l.published[typ] = published{addr: addr, verified: true}
		return nil
	}
	for _, name := range u.names {
		fqdn := libdns.AbsoluteName(name, u.cfg.Zone)
		if err := u.cfg.Verifier.Verify(ctx, fqdn, typ, addr); err != nil {
			u.recordError(typ, err)
			return err
		}
		u.updateState(func(s *State) { s.record(fqdn, typ).Verified = time.Now() })
	}
	l.published[typ] = published{addr: addr, verified: true}
	u.log.Info("records verified", "type", typ, "addr", addr)
	return nil
}

// recordError stores err in the state of every record of typ.
func (u *Updater) recordError(typ string, err error) {
	u.updateState(func(s *State) {
		for _, name := range u.names {
			s.record(libdns.AbsoluteName(name, u.cfg.Zone), typ).Error = err.Error()
		}
	})
}

// fail counts a failed update and returns the backoff delay.
func (u *Updater) fail(l *loop, err error) time.Duration {
	l.failures++
	delay := backoffDelay(l.failures, u.cfg.MinBackoff, u.cfg.MaxBackoff, retryAfter(err))
	if isPermanent(err) {
		delay = max(delay, u.cfg.MaxBackoff)
	}
	now := time.Now()
	l.notBefore = now.Add(delay)

	u.updateState(func(s *State) {
		s.LastError, s.LastErrorAt = err.Error(), now
		s.Failures, s.NextAttempt = l.failures, l.notBefore
	})
	u.log.Warn("dns update failed, backing off", "err", err, "failures", l.failures, "retry_in", delay)
	return delay
}

func (u *Updater) succeed(l *loop) {
	if l.failures > 0 {
		u.log.Info("dns update works again", "after_failures", l.failures)
	}
	l.failures = 0
	l.notBefore = time.Time{}
	u.updateState(func(s *State) {
		s.Failures, s.NextAttempt = 0, time.Time{}
	})
}
