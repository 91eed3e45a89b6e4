package mdns

import (
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// addressRecords returns an A or AAAA record of host for each address.
func addressRecords(host string, addrs []netip.Prefix, ttl uint32, class uint16) []dns.RR {
	var rrs []dns.RR
	for _, p := range addrs {
		a := p.Addr()
		if a.Is4() {
			rrs = append(rrs, &dns.A{
				Hdr: dns.RR_Header{Name: host, Rrtype: dns.TypeA, Class: class, Ttl: ttl},
				A:   net.IP(a.AsSlice()),
			})
			continue
		}
		rrs = append(rrs, &dns.AAAA{
			Hdr:  dns.RR_Header{Name: host, Rrtype: dns.TypeAAAA, Class: class, Ttl: ttl},
			AAAA: net.IP(a.AsSlice()),
		})
	}
	return rrs
}

// reverseRecord returns the PTR record that maps addr back to host, for
// example 1.0.99.10.in-addr.arpa. to heimwolke.local.
func reverseRecord(host string, addr netip.Addr, ttl uint32, class uint16) dns.RR {
	return &dns.PTR{
		Hdr: dns.RR_Header{Name: reverseName(addr), Rrtype: dns.TypePTR, Class: class, Ttl: ttl},
		Ptr: host,
	}
}

func reverseName(addr netip.Addr) string {
	// ReverseAddr fails only for strings that are not IP addresses.
	name, _ := dns.ReverseAddr(addr.WithZone("").String())
	return name
}

// allRecords returns what the responder announces on a link: host's address
// records and their reverse-mapping records.
func allRecords(host string, addrs []netip.Prefix, ttl uint32) []dns.RR {
	rrs := addressRecords(host, addrs, ttl, dns.ClassINET|cacheFlush)
	for _, p := range addrs {
		rrs = append(rrs, reverseRecord(host, p.Addr(), ttl, dns.ClassINET|cacheFlush))
	}
	return rrs
}

// nsec returns the record that asserts that name has only the given types
// (RFC 6762 section 6.1).
func nsec(name string, types []uint16, ttl uint32) dns.RR {
	return &dns.NSEC{
		Hdr:        dns.RR_Header{Name: name, Rrtype: dns.TypeNSEC, Class: dns.ClassINET | cacheFlush, Ttl: ttl},
		NextDomain: name,
		TypeBitMap: types,
	}
}

// hostTypes returns the address types that addrs have records of.
func hostTypes(addrs []netip.Prefix) []uint16 {
	var has4, has6 bool
	for _, p := range addrs {
		has4 = has4 || p.Addr().Is4()
		has6 = has6 || p.Addr().Is6()
	}
	var types []uint16
	if has4 {
		types = append(types, dns.TypeA)
	}
	if has6 {
		types = append(types, dns.TypeAAAA)
	}
	return types
}

// recordKey identifies a record by name, type and data, ignoring class bits
// and TTL, so that a known answer in a query matches the record it names.
func recordKey(rr dns.RR) string {
	h := rr.Header()
	var data string
	switch rr := rr.(type) {
	case *dns.A:
		data = rr.A.String()
	case *dns.AAAA:
		data = rr.AAAA.String()
	case *dns.PTR:
		data = strings.ToLower(rr.Ptr)
	}
	return strings.ToLower(h.Name) + " " + dns.TypeToString[h.Rrtype] + " " + data
}

// answers returns the records that answer q on a link with addrs: host's
// address records, or the PTR record of one of the link's addresses. owned
// reports whether q asks about a name the responder owns on this link; then
// an empty rrs means that the name has no record of the requested type.
func answers(q dns.Question, host string, addrs []netip.Prefix, ttl uint32, class uint16) (rrs []dns.RR, owned bool) {
	qclass := q.Qclass &^ unicastResponse
	if qclass != dns.ClassINET && qclass != dns.ClassANY {
		return nil, false
	}

	if strings.EqualFold(q.Name, host) {
		for _, rr := range addressRecords(host, addrs, ttl, class) {
			if q.Qtype == dns.TypeANY || q.Qtype == rr.Header().Rrtype {
				rrs = append(rrs, rr)
			}
		}
		return rrs, true
	}

	for _, p := range addrs {
		if !strings.EqualFold(q.Name, reverseName(p.Addr())) {
			continue
		}
		if q.Qtype == dns.TypePTR || q.Qtype == dns.TypeANY {
			rrs = append(rrs, reverseRecord(host, p.Addr(), ttl, class))
		}
		return rrs, true
	}
	return nil, false
}

// negative returns the NSEC record for a question about an owned name that
// has no record of the requested type.
func negative(q dns.Question, host string, addrs []netip.Prefix) dns.RR {
	if strings.EqualFold(q.Name, host) {
		return nsec(host, hostTypes(addrs), hostTTL)
	}
	return nsec(strings.ToLower(q.Name), []uint16{dns.TypePTR}, hostTTL)
}

// onLink reports whether a may be a neighbour on a link with addrs: a
// link-local address, or one in the subnet of one of the link's addresses.
// Unicast responses go only to such addresses (RFC 6762 section 11), so that
// a forged source address cannot direct them off the link.
func onLink(a netip.Addr, addrs []netip.Prefix) bool {
	a = a.WithZone("")
	if a.IsLinkLocalUnicast() {
		return true
	}
	for _, p := range addrs {
		if p.Masked().Contains(a) {
			return true
		}
	}
	return false
}
