package mdns

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/miekg/dns"
)

// claim probes the host name on every link that is not ready, then
// announces it there. A conflict renames the host and starts over on every
// link. claim returns when all links are ready or ctx is canceled.
func (r *responder) claim(ctx context.Context) {
	for ctx.Err() == nil {
		var pending []*link
		for _, l := range r.links {
			if !l.ready.Load() {
				pending = append(pending, l)
			}
		}
		if len(pending) == 0 {
			return
		}

		if !r.backoff(ctx) {
			return
		}
		c, ok := r.probe(ctx, pending)
		if !ok {
			return
		}
		if c != nil {
			r.resolve(*c)
			continue
		}
		for _, l := range pending {
			l.ready.Store(true)
		}
		r.log.Info("mdns hostname claimed", "hostname", r.hostname(), "links", len(pending))
		r.announce(ctx, pending)
	}
}

// probe sends three probe queries 250 ms apart after a random delay of up to
// 250 ms, and waits 250 ms more for answers (RFC 6762 section 8.1). It
// returns the first conflict, or ok false when ctx is canceled.
//
// The probes leave the QU bit clear although section 8.1 asks for it: when
// another responder on the host shares port 5353, the kernel may hand a
// unicast answer to that responder's socket instead of this one.
func (r *responder) probe(ctx context.Context, links []*link) (c *conflict, ok bool) {
	r.drainConflicts()
	host := r.hostname()
	if !r.wait(ctx, rand.N(250*time.Millisecond)) {
		return nil, false
	}
	for range 3 {
		for _, l := range links {
			query := &dns.Msg{}
			query.Question = []dns.Question{{Name: host, Qtype: dns.TypeANY, Qclass: dns.ClassINET}}
			query.Ns = addressRecords(host, l.addrs, hostTTL, dns.ClassINET)
			r.sendAll(l, query)
		}
		select {
		case <-ctx.Done():
			return nil, false
		case got := <-r.conflicts:
			if got.name == host {
				return &got, true
			}
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil, true
}

// drainConflicts drops conflicts about names given up already.
func (r *responder) drainConflicts() {
	for {
		select {
		case <-r.conflicts:
		default:
			return
		}
	}
}

// wait sleeps for d and reports whether ctx is still alive.
func (r *responder) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// announce sends two unsolicited responses with all records, one second
// apart (RFC 6762 section 8.3).
func (r *responder) announce(ctx context.Context, links []*link) {
	host := r.hostname()
	for i := range 2 {
		if i > 0 && !r.wait(ctx, time.Second) {
			return
		}
		now := time.Now()
		for _, l := range links {
			rrs := allRecords(host, l.addrs, hostTTL)
			msg := &dns.Msg{}
			msg.Response = true
			msg.Authoritative = true
			msg.Answer = rrs
			for _, s := range l.sockets {
				s.markMulticast(rrs, now)
			}
			r.sendAll(l, msg)
		}
	}
}

// goodbye sends every record with TTL 0 on every ready link, so that caches
// drop them at once (RFC 6762 section 10.1).
func (r *responder) goodbye() {
	for _, l := range r.links {
		if l.ready.Load() {
			r.sendGoodbye(l, l.addrs)
		}
	}
}

// sendGoodbye sends the records of addrs with TTL 0 on l.
func (r *responder) sendGoodbye(l *link, addrs []netip.Prefix) {
	if len(addrs) == 0 || !l.ready.Load() {
		return
	}
	msg := &dns.Msg{}
	msg.Response = true
	msg.Authoritative = true
	msg.Answer = allRecords(r.hostname(), addrs, 0)
	r.sendAll(l, msg)
	r.log.Info("mdns goodbye sent", "interface", l.ifi.Name, "records", len(msg.Answer))
}

// sendAll multicasts msg through every socket of l.
func (r *responder) sendAll(l *link, msg *dns.Msg) {
	for _, s := range l.sockets {
		for _, out := range pack(r, s, msg, s.group) {
			r.send(s, out)
		}
	}
}

// resolve gives up the host name after a conflict and picks the next
// candidate: heimwolke, heimwolke-2, heimwolke-3 and so on. Every link probes
// again.
//
// TODO: simultaneous probes are not tie-broken (RFC 6762 section 8.2), so two
// hosts that probe the same name at the same time both rename.
func (r *responder) resolve(c conflict) {
	if c.name != r.hostname() {
		return
	}
	r.conflictTimes = append(r.conflictTimes, time.Now())
	next := r.nextName()
	r.log.Warn("mdns hostname conflict: another host claims the name, renaming",
		"hostname", c.name, "peer", c.peer, "interface", c.iface, "record", c.record,
		"while_probing", c.whileProbe, "new_hostname", next)

	r.mu.Lock()
	r.host = next
	r.mu.Unlock()
	for _, l := range r.links {
		l.ready.Store(false)
	}
}

// nextName returns the candidate after the current one: the base name with
// the next number appended.
func (r *responder) nextName() string {
	r.renames++
	suffix := fmt.Sprintf("-%d", r.renames+1)
	base := r.base
	// Keep the label within 63 bytes by shortening the base name.
	if len(base)+len(suffix) > 63 {
		base = base[:63-len(suffix)]
	}
	return base + suffix + ".local."
}

// backoff waits 5 seconds when there were 15 conflicts within the last 10
// seconds (RFC 6762 section 8.1), and reports whether ctx is still alive.
func (r *responder) backoff(ctx context.Context) bool {
	now := time.Now()
	r.conflictTimes = slices.DeleteFunc(r.conflictTimes, func(t time.Time) bool { return now.Sub(t) > 10*time.Second })
	if len(r.conflictTimes) < 15 {
		return true
	}
	r.log.Warn("mdns too many hostname conflicts, waiting 5 s", "conflicts", len(r.conflictTimes))
	r.conflictTimes = nil
	return r.wait(ctx, 5*time.Second)
}
