// Package rfc2136 changes DNS zones with dynamic updates (RFC 2136) signed
// with TSIG (RFC 8945), behind the libdns interfaces. It works with any
// primary server that takes signed updates, such as BIND 9 and Knot DNS.
package rfc2136

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/packages/dnsprovider/rrconv"
)

// DefaultTimeout is the timeout of one request when Provider.Timeout is
// zero.
const DefaultTimeout = 10 * time.Second

// Provider sends updates for zones on one primary name server. All requests
// go over TCP and are signed with the TSIG key. A Provider is safe for
// concurrent use: the server applies each update message atomically.
//
// GetRecords, and DeleteRecords with an empty type, transfer the whole zone
// (AXFR), which the server must allow for the key: BIND 9.18 allows zone
// transfers to everyone unless allow-transfer limits them, Knot 3.2 only
// with an ACL whose action contains "transfer". The other methods send
// queries (allowed by both servers' defaults) and updates.
type Provider struct {
	// Server is the host:port of the zone's primary server, usually on port
	// 53.
	Server string
	// KeyName is the TSIG key's name as the server's configuration names
	// it.
	KeyName string
	// KeyAlgorithm is the key's HMAC algorithm: hmac-sha256 (the default
	// when empty), hmac-sha512, hmac-sha384, hmac-sha224 or hmac-sha1.
	KeyAlgorithm string
	// Secret is the key in standard base64, as tsig-keygen and keymgr
	// print it.
	Secret string
	// Timeout limits each request to the server. Zero means
	// DefaultTimeout.
	Timeout time.Duration
}

var (
	_ libdns.RecordGetter   = (*Provider)(nil)
	_ libdns.RecordAppender = (*Provider)(nil)
	_ libdns.RecordSetter   = (*Provider)(nil)
	_ libdns.RecordDeleter  = (*Provider)(nil)
)

// GetRecords returns the records of zone, transferred from the server with
// AXFR. It leaves out the SOA record and the DNSSEC records (DNSKEY, RRSIG,
// NSEC, NSEC3, NSEC3PARAM, CDS, CDNSKEY), which the server maintains.
func (p *Provider) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	z, err := rrconv.Zone(zone)
	if err != nil {
		return nil, err
	}
	rrs, err := p.transfer(ctx, z)
	if err != nil {
		return nil, err
	}

	var recs []libdns.Record
	for _, rr := range rrs {
		if serverManaged(rr.Header().Rrtype) {
			continue
		}
		rec, err := rrconv.FromRR(z, rr)
		if err != nil {
			return nil, fmt.Errorf("reading zone %s from %s: %w", z, p.Server, err)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// AppendRecords adds recs to zone in one update message. Records that
// exist already stay as they are, except that the server gives their RRset
// the TTL of the added record (RFC 2136 section 3.4.2.2).
func (p *Provider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	z, rrs, err := toRRs(zone, recs)
	if err != nil {
		return nil, err
	}

	m := new(dns.Msg)
	m.SetUpdate(z)
	m.Insert(rrs)
	if err := p.update(ctx, z, m); err != nil {
		return nil, err
	}
	return fromRRs(z, rrs)
}

// SetRecords replaces, for every name and type in recs, the RRset in zone
// with the records of recs. It sends one update message that deletes each
// RRset and adds the new records, so the server applies all of it or
// nothing (RFC 2136 section 3.7). The NS RRset at the zone apex is an
// exception: the server keeps the old NS records there and adds the new
// ones (RFC 2136 section 3.4.2.4).
func (p *Provider) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	z, rrs, err := toRRs(zone, recs)
	if err != nil {
		return nil, err
	}

	m := new(dns.Msg)
	m.SetUpdate(z)
	m.RemoveRRset(rrsets(rrs))
	m.Insert(rrs)
	if err := p.update(ctx, z, m); err != nil {
		return nil, err
	}
	return fromRRs(z, rrs)
}

// DeleteRecords deletes the records of zone that match recs and returns
// them. A record matches when its name is equal and its type, TTL and data
// are equal or empty (zero) in recs. It first reads the existing records
// with a query per name and type, or with a zone transfer for inputs
// without a type, and then deletes the matches in one update message.
func (p *Provider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	z, err := rrconv.Zone(zone)
	if err != nil {
		return nil, err
	}
	matches, err := p.matching(ctx, z, recs)
	if err != nil {
		return nil, err
	}
	if len(matches) == 0 {
		return nil, nil
	}

	m := new(dns.Msg)
	m.SetUpdate(z)
	removals := make([]dns.RR, len(matches))
	for i, rr := range matches {
		removals[i] = dns.Copy(rr)
	}
	m.Remove(removals)
	if err := p.update(ctx, z, m); err != nil {
		return nil, err
	}
	return fromRRs(z, matches)
}

// matching returns the records of zone that match one of recs.
func (p *Provider) matching(ctx context.Context, zone string, recs []libdns.Record) ([]dns.RR, error) {
	var zoneRRs []dns.RR // transferred once, when an input has no type
	var matches []dns.RR
	for _, rec := range recs {
		r := rec.RR()
		owner, err := rrconv.AbsoluteName(r.Name, zone)
		if err != nil {
			return nil, err
		}

		var candidates []dns.RR
		if r.Type == "" {
			if zoneRRs == nil {
				if zoneRRs, err = p.transfer(ctx, zone); err != nil {
					return nil, err
				}
			}
			candidates = zoneRRs
		} else if candidates, err = p.lookup(ctx, zone, owner, r.Type); err != nil {
			return nil, err
		}

		for _, rr := range candidates {
			ok, err := recordMatches(zone, owner, r, rr)
			if err != nil {
				return nil, err
			}
			if ok && !containsRR(matches, rr) && !serverManaged(rr.Header().Rrtype) {
				matches = append(matches, rr)
			}
		}
	}
	return matches, nil
}

// recordMatches reports whether the existing record rr matches the input r,
// whose empty type, zero TTL and empty data match anything.
func recordMatches(zone, owner string, r libdns.RR, rr dns.RR) (bool, error) {
	h := rr.Header()
	if !strings.EqualFold(h.Name, owner) {
		return false, nil
	}
	if r.Type != "" && !strings.EqualFold(r.Type, dns.TypeToString[h.Rrtype]) {
		return false, nil
	}
	if r.TTL != 0 && rrconv.TTL(r.TTL) != h.Ttl {
		return false, nil
	}
	if r.Data == "" {
		return true, nil
	}
	want, err := rrconv.ToRR(zone, r)
	if err != nil {
		return false, err
	}
	return dns.IsDuplicate(want, rr), nil
}

func containsRR(list []dns.RR, rr dns.RR) bool {
	for _, x := range list {
		if dns.IsDuplicate(x, rr) {
			return true
		}
	}
	return false
}

// serverManaged reports whether records of type t belong to the server: the
// SOA, whose serial the server counts, and the DNSSEC records that it signs.
func serverManaged(t uint16) bool {
	switch t {
	case dns.TypeSOA, dns.TypeDNSKEY, dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3,
		dns.TypeNSEC3PARAM, dns.TypeCDS, dns.TypeCDNSKEY:
		return true
	}
	return false
}

func toRRs(zone string, recs []libdns.Record) (string, []dns.RR, error) {
	z, err := rrconv.Zone(zone)
	if err != nil {
		return "", nil, err
	}
	rrs := make([]dns.RR, len(recs))
	for i, rec := range recs {
		if rrs[i], err = rrconv.ToRR(z, rec); err != nil {
			return "", nil, err
		}
	}
	return z, rrs, nil
}

func fromRRs(zone string, rrs []dns.RR) ([]libdns.Record, error) {
	recs := make([]libdns.Record, len(rrs))
	for i, rr := range rrs {
		rec, err := rrconv.FromRR(zone, rr)
		if err != nil {
			return nil, err
		}
		recs[i] = rec
	}
	return recs, nil
}

// rrsets returns one record per distinct name and type in rrs.
func rrsets(rrs []dns.RR) []dns.RR {
	type key struct {
		name  string
		rtype uint16
	}
	seen := make(map[key]bool)
	var sets []dns.RR
	for _, rr := range rrs {
		k := key{strings.ToLower(rr.Header().Name), rr.Header().Rrtype}
		if !seen[k] {
			seen[k] = true
			sets = append(sets, rr)
		}
	}
	return sets
}
