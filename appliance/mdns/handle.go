package mdns

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// handle processes one packet that arrived through s from src for dst, and
// returns the packets to send in reply. A zero dst counts as the multicast
// group. handle never panics on malformed input, and it keeps no reference
// to pkt.
func (r *responder) handle(s *socket, pkt []byte, src netip.AddrPort, dst netip.Addr, now time.Time) []outgoing {
	if reason := precheck(pkt); reason != "" {
		r.ignore(s, src, reason)
		return nil
	}
	var msg dns.Msg
	if err := msg.Unpack(pkt); err != nil {
		r.ignore(s, src, "malformed packet")
		return nil
	}
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())

	if msg.Response {
		r.checkConflict(s.link, &msg, src)
		return nil
	}
	// RFC 6762 section 18.3 and 18.11: queries with another opcode or a
	// non-zero response code are silently ignored.
	if msg.Opcode != dns.OpcodeQuery || msg.Rcode != dns.RcodeSuccess {
		r.ignore(s, src, "opcode or rcode not zero")
		return nil
	}
	if !s.link.ready.Load() {
		return nil
	}
	// RFC 6762 section 5.5: a query sent straight to this host is answered
	// by unicast, and only when it comes from the link.
	direct := dst.IsValid() && !dst.IsMulticast()
	if direct && !onLink(src.Addr(), s.link.addrs) {
		r.ignore(s, src, "unicast query from outside the link's subnets")
		return nil
	}

	host := r.hostname()
	var out []outgoing
	// RFC 6762 section 6.7: a query from a port other than 5353 comes from
	// a simple resolver that expects a conventional unicast response.
	if src.Port() != port {
		out = r.answerLegacy(s, &msg, src, host)
	} else {
		out = r.answerQuery(s, &msg, src, direct, host, now)
	}
	if len(out) > 0 {
		r.log.Debug("mdns query answered", "interface", s.link.ifi.Name, "from", src, "question", msg.Question[0].String(), "packets", len(out))
	}
	return out
}

// precheck returns why pkt is ignored before it is parsed, or "".
func precheck(pkt []byte) string {
	switch {
	case len(pkt) > maxPacketSize:
		return "packet larger than 9000 bytes"
	case len(pkt) < 12:
		return "packet shorter than a DNS header"
	case binary.BigEndian.Uint16(pkt[4:6]) > maxQuestions:
		return "more than 32 questions"
	}
	return ""
}

func (r *responder) ignore(s *socket, src netip.AddrPort, reason string) {
	r.log.Debug("mdns packet ignored", "interface", s.link.ifi.Name, "from", src, "reason", reason)
}

// allow reports whether src may get another response about name.
func (r *responder) allow(s *socket, src netip.AddrPort, name string) bool {
	if r.limiter.Allow(src.Addr().WithZone("").String() + " " + strings.ToLower(name)) {
		return true
	}
	r.ignore(s, src, "rate limited: too many queries for "+name)
	return false
}

// answerLegacy builds the unicast response to a simple resolver (RFC 6762
// section 6.7): it repeats the query ID and the questions, carries no
// cache-flush bits, and caps the TTL at 10 seconds. A question about the host
// name that the link has no record for gets an empty answer, so the resolver
// need not wait for a time-out.
func (r *responder) answerLegacy(s *socket, msg *dns.Msg, src netip.AddrPort, host string) []outgoing {
	l := s.link
	if !onLink(src.Addr(), l.addrs) {
		r.ignore(s, src, "legacy query from outside the link's subnets")
		return nil
	}

	reply := &dns.Msg{}
	reply.Id = msg.Id
	reply.Response = true
	reply.Authoritative = true
	reply.Question = msg.Question
	answered := false
	for _, q := range msg.Question {
		rrs, owned := answers(q, host, l.addrs, legacyTTL, dns.ClassINET)
		if !owned || !r.allow(s, src, q.Name) {
			continue
		}
		answered = true
		reply.Answer = appendNew(reply.Answer, rrs...)
	}
	if !answered {
		return nil
	}
	return pack(r, s, reply, src)
}

// answerQuery builds the responses to a query from a full mDNS querier.
// Records go to the multicast group, except in two cases. A direct query gets
// a unicast response. A question with the QU bit gets one for records that
// were multicast on this link within the last quarter of their TTL (RFC 6762
// section 5.4).
func (r *responder) answerQuery(s *socket, msg *dns.Msg, src netip.AddrPort, direct bool, host string, now time.Time) []outgoing {
	l := s.link
	known := knownAnswers(msg.Answer)
	// RFC 6762 section 8.2: probe queries carry the proposed records in the
	// authority section, and are answered at most every 250 ms rather than
	// every second.
	minInterval := time.Second
	if len(msg.Ns) > 0 {
		minInterval = 250 * time.Millisecond
	}

	var multicast, unicast []dns.RR
	for _, q := range msg.Question {
		rrs, owned := answers(q, host, l.addrs, hostTTL, dns.ClassINET|cacheFlush)
		if !owned {
			continue
		}
		if len(rrs) == 0 {
			rrs = []dns.RR{negative(q, host, l.addrs)}
		}
		rrs = slices.DeleteFunc(rrs, func(rr dns.RR) bool { return known[recordKey(rr)] })
		if len(rrs) == 0 || !r.allow(s, src, q.Name) {
			continue
		}
		wantsUnicast := q.Qclass&unicastResponse != 0 && onLink(src.Addr(), l.addrs)
		for _, rr := range rrs {
			if direct || wantsUnicast && s.multicastWithin(rr, now, hostTTL*time.Second/4) {
				unicast = appendNew(unicast, rr)
			} else {
				multicast = appendNew(multicast, rr)
			}
		}
	}

	// RFC 6762 section 6: a record is multicast on a link at most once per
	// second, except in answers to probes.
	multicast = slices.DeleteFunc(multicast, func(rr dns.RR) bool { return s.multicastWithin(rr, now, minInterval) })

	var out []outgoing
	if len(multicast) > 0 {
		s.markMulticast(multicast, now)
		out = append(out, pack(r, s, response(multicast, host, l.addrs), s.group)...)
	}
	if len(unicast) > 0 {
		out = append(out, pack(r, s, response(unicast, host, l.addrs), src)...)
	}
	return out
}

// knownAnswers returns the keys of the records that a querier already has
// with at least half their TTL left, so that they are not sent again (RFC
// 6762 section 7.1).
func knownAnswers(rrs []dns.RR) map[string]bool {
	known := map[string]bool{}
	for _, rr := range rrs {
		if rr.Header().Ttl >= hostTTL/2 {
			known[recordKey(rr)] = true
		}
	}
	return known
}

// response builds an mDNS response with answer. When answer contains
// records about host, the additional section carries host's other address
// records, and an NSEC record when the link lacks an address family (RFC
// 6762 section 6.2).
func response(answer []dns.RR, host string, addrs []netip.Prefix) *dns.Msg {
	msg := &dns.Msg{}
	msg.Response = true
	msg.Authoritative = true
	msg.Answer = answer

	aboutHost := slices.ContainsFunc(answer, func(rr dns.RR) bool {
		return strings.EqualFold(rr.Header().Name, host) || rr.Header().Rrtype == dns.TypePTR
	})
	if !aboutHost {
		return msg
	}
	for _, rr := range addressRecords(host, addrs, hostTTL, dns.ClassINET|cacheFlush) {
		if !slices.ContainsFunc(answer, func(a dns.RR) bool { return recordKey(a) == recordKey(rr) }) {
			msg.Extra = append(msg.Extra, rr)
		}
	}
	types := hostTypes(addrs)
	hasNSEC := slices.ContainsFunc(answer, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeNSEC })
	if len(types) < 2 && !hasNSEC {
		msg.Extra = append(msg.Extra, nsec(host, types, hostTTL))
	}
	return msg
}

// appendNew appends the records of add that rrs does not contain yet.
func appendNew(rrs []dns.RR, add ...dns.RR) []dns.RR {
	for _, rr := range add {
		key := recordKey(rr)
		if !slices.ContainsFunc(rrs, func(have dns.RR) bool { return recordKey(have) == key }) {
			rrs = append(rrs, rr)
		}
	}
	return rrs
}

func pack(r *responder, s *socket, msg *dns.Msg, to netip.AddrPort) []outgoing {
	msg.Compress = true
	data, err := msg.Pack()
	if err != nil {
		r.log.Error("mdns packing response failed", "interface", s.link.ifi.Name, "err", err)
		return nil
	}
	return []outgoing{{to: to, data: data}}
}

// multicastWithin reports whether rr was multicast through s less than d
// before now.
func (s *socket) multicastWithin(rr dns.RR, now time.Time, d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok := s.lastMulticast[recordKey(rr)]
	return ok && now.Sub(last) < d
}

func (s *socket) markMulticast(rrs []dns.RR, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range rrs {
		s.lastMulticast[recordKey(rr)] = now
	}
}

// conflict is a response from another host that claims the responder's
// host name.
type conflict struct {
	name       string
	peer       netip.Addr
	iface      string
	record     string
	whileProbe bool
}

// checkConflict reports a conflict to the main loop when msg, a response
// from another host, claims host. While a link is probing, any record with
// the name is a conflict (RFC 6762 section 8.1). Afterwards, an address
// record with an address that is not the responder's own is (section 9).
func (r *responder) checkConflict(l *link, msg *dns.Msg, src netip.AddrPort) {
	if r.isOwn(src.Addr()) {
		return
	}
	host := r.hostname()
	probing := !l.ready.Load()
	for _, rr := range slices.Concat(msg.Answer, msg.Ns, msg.Extra) {
		h := rr.Header()
		// A TTL of 0 is a goodbye: the other host gives the record up.
		if h.Ttl == 0 || !strings.EqualFold(h.Name, host) {
			continue
		}
		if !probing && !r.foreignAddress(rr) {
			continue
		}
		c := conflict{name: host, peer: src.Addr(), iface: l.ifi.Name, record: rr.String(), whileProbe: probing}
		select {
		case r.conflicts <- c:
		default:
			// A conflict is already waiting for the main loop.
		}
		return
	}
}

// foreignAddress reports whether rr is an address record with an address
// that none of the responder's links has.
func (r *responder) foreignAddress(rr dns.RR) bool {
	var ip netip.Addr
	switch rr := rr.(type) {
	case *dns.A:
		ip, _ = netip.AddrFromSlice(rr.A)
	case *dns.AAAA:
		ip, _ = netip.AddrFromSlice(rr.AAAA)
	default:
		return false
	}
	return !r.isOwn(ip.Unmap())
}
