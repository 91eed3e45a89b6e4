// Package rrconv converts libdns records to and from the resource records of
// github.com/miekg/dns and the RDATA presentation format of RFC 1035 section
// 5.1, which the DNS providers' HTTP APIs take. It checks syntax only, not
// whether a provider accepts a record.
package rrconv

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"
)

// maxStringLen is the longest character-string in a TXT record, in octets
// (RFC 1035 section 3.3.14).
const maxStringLen = 255

// Zone returns zone as a lowercase absolute name with the trailing dot, or an
// error when it is empty or invalid.
func Zone(zone string) (string, error) {
	z := strings.ToLower(dns.Fqdn(strings.TrimSpace(zone)))
	if z == "." {
		return "", fmt.Errorf("zone is empty: give the zone name, for example example.org")
	}
	if _, ok := dns.IsDomainName(z); !ok {
		return "", fmt.Errorf("zone %q is not a valid domain name", zone)
	}
	return z, nil
}

// AbsoluteName returns the absolute name of the record name, which is
// relative to zone ("@" for the apex), with the trailing dot.
func AbsoluteName(name, zone string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("record name is empty: use \"@\" for the zone apex")
	}
	abs := dns.Fqdn(libdns.AbsoluteName(name, zone))
	if _, ok := dns.IsDomainName(abs); !ok {
		return "", fmt.Errorf("record name %q in zone %s is not a valid domain name", name, zone)
	}
	return abs, nil
}

// RelativeName returns the name relative to zone as libdns writes it: "@" for
// the apex, or the labels before the zone. A name outside zone is returned
// absolute, with its trailing dot.
func RelativeName(name, zone string) string {
	name = dns.Fqdn(name)
	zone = dns.Fqdn(zone)
	if strings.EqualFold(name, zone) {
		return "@"
	}
	if !dns.IsSubDomain(zone, name) {
		return name
	}
	return name[:len(name)-len(zone)-1]
}

// Type returns the RR type code of the libdns type name, for example
// dns.TypeTXT for "TXT".
func Type(name string) (uint16, error) {
	t, ok := dns.StringToType[strings.ToUpper(name)]
	if !ok || t == dns.TypeNone || t == dns.TypeANY {
		return 0, fmt.Errorf("record type %q is unknown: use a type name such as A, AAAA, TXT, MX, SRV, CAA or TLSA", name)
	}
	return t, nil
}

// ToRR converts rec, whose name is relative to zone, to a resource record of
// class IN. Names in the data that lack a trailing dot are relative to zone,
// as in a zone file.
func ToRR(zone string, rec libdns.Record) (dns.RR, error) {
	r := rec.RR()
	zone = dns.Fqdn(zone)
	owner, err := AbsoluteName(r.Name, zone)
	if err != nil {
		return nil, err
	}
	t, err := Type(r.Type)
	if err != nil {
		return nil, err
	}
	hdr := dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET, Ttl: TTL(r.TTL)}
	if t == dns.TypeTXT {
		// An empty text is a TXT record with one empty string.
		return &dns.TXT{Hdr: hdr, Txt: SplitTXT(r.Data)}, nil
	}
	if r.Data == "" {
		return nil, fmt.Errorf("%s record %s has no data", r.Type, owner)
	}

	line := fmt.Sprintf("%s %d IN %s %s", owner, hdr.Ttl, dns.TypeToString[t], r.Data)
	zp := dns.NewZoneParser(strings.NewReader(line), zone, "")
	rr, ok := zp.Next()
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("parsing %s record %s data %q: %w", r.Type, owner, r.Data, err)
	}
	if !ok {
		return nil, fmt.Errorf("parsing %s record %s data %q: no record", r.Type, owner, r.Data)
	}
	return rr, nil
}

// FromRR converts rr to the libdns type of its RR type (libdns.Address,
// libdns.TXT, libdns.MX, ...), or to libdns.RR for types that libdns does not
// parse, such as TLSA. The name becomes relative to zone.
func FromRR(zone string, rr dns.RR) (libdns.Record, error) {
	hdr := rr.Header()
	r := libdns.RR{
		Name: RelativeName(hdr.Name, zone),
		TTL:  time.Duration(hdr.Ttl) * time.Second,
		Type: dns.TypeToString[hdr.Rrtype],
		Data: Data(rr),
	}
	rec, err := r.Parse()
	if err != nil {
		return nil, fmt.Errorf("converting %s record %s: %w", r.Type, hdr.Name, err)
	}
	return rec, nil
}

// Data returns the RDATA of rr as libdns holds it: the text of a TXT record
// unescaped and joined into one string, and the presentation format for
// other types.
func Data(rr dns.RR) string {
	if txt, ok := rr.(*dns.TXT); ok {
		return JoinTXT(txt.Txt)
	}
	return strings.TrimPrefix(rr.String(), rr.Header().String())
}

// Presentation returns the RDATA of rec in the presentation format of RFC
// 1035 section 5.1, with absolute names, as provider APIs take it: TXT text
// is quoted and escaped.
func Presentation(zone string, rec libdns.Record) (string, error) {
	rr, err := ToRR(zone, rec)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(rr.String(), rr.Header().String()), nil
}

// ParsePresentation is the inverse of Presentation: it reads the RDATA data
// of a record of type typ named name (relative to zone).
func ParsePresentation(zone, name, typ string, ttl time.Duration, data string) (libdns.Record, error) {
	zone = dns.Fqdn(zone)
	owner, err := AbsoluteName(name, zone)
	if err != nil {
		return nil, err
	}
	t, err := Type(typ)
	if err != nil {
		return nil, err
	}
	// The zone parser accepts empty RDATA for many types, as in a dynamic
	// update that deletes an RRset, but no stored record lacks data.
	if strings.TrimSpace(data) == "" && t != dns.TypeTXT {
		return nil, fmt.Errorf("%s record %s has no data", typ, owner)
	}

	line := fmt.Sprintf("%s %d IN %s %s", owner, TTL(ttl), dns.TypeToString[t], data)
	zp := dns.NewZoneParser(strings.NewReader(line), zone, "")
	rr, ok := zp.Next()
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("parsing %s record %s data %q: %w", typ, owner, data, err)
	}
	if !ok {
		return nil, fmt.Errorf("parsing %s record %s data %q: no record", typ, owner, data)
	}
	return FromRR(zone, rr)
}

// TTL returns d in whole seconds, as a resource record holds it. Fractions
// are cut off, and durations beyond 2^31-1 seconds are capped there (RFC
// 2181 section 8).
func TTL(d time.Duration) uint32 {
	const maxTTL = 1<<31 - 1
	s := d / time.Second
	switch {
	case s < 0:
		return 0
	case s > maxTTL:
		return maxTTL
	}
	return uint32(s)
}

// SplitTXT splits text into character-strings of at most 255 octets and
// escapes each as github.com/miekg/dns keeps them in dns.TXT.Txt.
func SplitTXT(text string) []string {
	if text == "" {
		return []string{""}
	}
	var parts []string
	for len(text) > 0 {
		n := min(len(text), maxStringLen)
		parts = append(parts, escape(text[:n]))
		text = text[n:]
	}
	return parts
}

// JoinTXT is the inverse of SplitTXT: it unescapes the character-strings and
// joins them without a separator, as libdns.TXT expects.
func JoinTXT(parts []string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(unescape(p))
	}
	return b.String()
}

// escape writes s with the escapes of RFC 1035 section 5.1: a backslash
// before '"' and '\', and \DDD for octets that are not printable ASCII.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unescape reverses escape: \DDD becomes the octet DDD and \X becomes X.
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		if i+3 < len(s) && isDigits(s[i+1:i+4]) {
			n, _ := strconv.Atoi(s[i+1 : i+4])
			if n <= 255 {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
