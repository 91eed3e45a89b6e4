// Package desec changes DNS zones hosted at deSEC through its REST API
// (https://desec.io/api/v1/domains/{domain}/rrsets/), behind the libdns
// interfaces. For only A and AAAA records of a dedyn.io name, the dynDNS2
// update URL in package dyndns2 is the simpler choice.
package desec

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/packages/dnsprovider/rrconv"
)

// Provider is a deSEC API token. Its methods are safe for concurrent use.
// A Provider must not be copied after first use.
//
// Changes go as one bulk PATCH per call, which deSEC applies completely or
// not at all. AppendRecords and DeleteRecords first read the RRsets they
// change, so a change by another client between the read and the PATCH is
// lost.
type Provider struct {
	// Token is a deSEC API token that may change the domain's RRsets.
	Token string
	// Endpoint is the API's base URL. Empty means DefaultEndpoint.
	Endpoint string
	// Client sends the requests. Nil means http.DefaultClient. Each
	// request is limited to RequestTimeout either way.
	Client *http.Client

	// mu serializes the read-modify-write of changes by this Provider.
	mu sync.Mutex
}

var (
	_ libdns.RecordGetter   = (*Provider)(nil)
	_ libdns.RecordAppender = (*Provider)(nil)
	_ libdns.RecordSetter   = (*Provider)(nil)
	_ libdns.RecordDeleter  = (*Provider)(nil)
)

// rrset is an RRset in the API's JSON form. Records are in presentation
// format, with absolute names in the data.
type rrset struct {
	Subname string   `json:"subname"`
	Type    string   `json:"type"`
	TTL     int      `json:"ttl,omitempty"`
	Records []string `json:"records"`
}

type rrsetKey struct {
	subname string
	rtype   string
}

// GetRecords returns all records of zone. deSEC manages the SOA record and
// does not list it.
func (p *Provider) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	origin, err := rrconv.Zone(zone)
	if err != nil {
		return nil, err
	}
	sets, err := p.list(ctx, domainName(origin), nil)
	if err != nil {
		return nil, err
	}
	var recs []libdns.Record
	for _, s := range sets {
		setRecs, err := fromRRSet(origin, s)
		if err != nil {
			return nil, err
		}
		recs = append(recs, setRecs...)
	}
	return recs, nil
}

// AppendRecords adds recs to the RRsets of zone. TTLs of zero, or below
// the domain's minimum TTL, become the minimum TTL; an RRset's TTL is the
// last one given for it.
func (p *Provider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return p.change(ctx, zone, recs, true)
}

// SetRecords replaces, for every name and type in recs, the RRset with the
// records of recs, in one bulk PATCH. TTLs are handled as in AppendRecords.
func (p *Provider) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return p.change(ctx, zone, recs, false)
}

func (p *Provider) change(ctx context.Context, zone string, recs []libdns.Record, keep bool) ([]libdns.Record, error) {
	origin, err := rrconv.Zone(zone)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	domain := domainName(origin)
	minTTL, err := p.minimumTTL(ctx, domain)
	if err != nil {
		return nil, err
	}

	var order []rrsetKey
	sets := make(map[rrsetKey]*rrset)
	var changed []libdns.Record
	for _, rec := range recs {
		rr, err := toRR(origin, rec)
		if err != nil {
			return nil, err
		}
		key := rrsetKey{subname(origin, rr.Header().Name), dns.TypeToString[rr.Header().Rrtype]}
		s := sets[key]
		if s == nil {
			s = &rrset{Subname: key.subname, Type: key.rtype}
			if keep {
				if s.Records, err = p.existing(ctx, domain, key); err != nil {
					return nil, err
				}
			}
			sets[key] = s
			order = append(order, key)
		}
		has, err := containsRR(origin, s, rr)
		if err != nil {
			return nil, err
		}
		if !has {
			s.Records = append(s.Records, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
		s.TTL = max(int(rrconv.TTL(rec.RR().TTL)), minTTL)
		rr.Header().Ttl = uint32(s.TTL)
		out, err := rrconv.FromRR(origin, rr)
		if err != nil {
			return nil, err
		}
		changed = append(changed, out)
	}

	patch := make([]rrset, 0, len(order))
	for _, key := range order {
		patch = append(patch, *sets[key])
	}
	if err := p.patch(ctx, domain, patch); err != nil {
		return nil, err
	}
	return changed, nil
}

// DeleteRecords removes the records of zone that match recs and returns
// them. A record matches when its name is equal and its type, TTL and data
// are equal or empty (zero) in recs. deSEC deletes an RRset whose last
// record is removed.
func (p *Provider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	origin, err := rrconv.Zone(zone)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	domain := domainName(origin)

	var order []rrsetKey
	remaining := make(map[rrsetKey]*rrset)
	var deleted []libdns.Record
	for _, rec := range recs {
		r := rec.RR()
		owner, err := rrconv.AbsoluteName(r.Name, origin)
		if err != nil {
			return nil, err
		}
		filter := rrsetKey{subname(origin, owner), strings.ToUpper(r.Type)}
		sets, err := p.list(ctx, domain, &filter)
		if err != nil {
			return nil, err
		}
		for _, s := range sets {
			if s.Subname != filter.subname || (filter.rtype != "" && s.Type != filter.rtype) {
				continue
			}
			key := rrsetKey{s.Subname, s.Type}
			if remaining[key] == nil {
				copied := s
				remaining[key] = &copied
				order = append(order, key)
			}
			removed, err := removeMatches(origin, r, remaining[key])
			if err != nil {
				return nil, err
			}
			deleted = append(deleted, removed...)
		}
	}
	if len(deleted) == 0 {
		return nil, nil
	}

	patch := make([]rrset, 0, len(order))
	for _, key := range order {
		s := *remaining[key]
		s.TTL = 0 // unchanged
		if s.Records == nil {
			s.Records = []string{} // deletes the RRset
		}
		patch = append(patch, s)
	}
	if err := p.patch(ctx, domain, patch); err != nil {
		return nil, err
	}
	return deleted, nil
}

// removeMatches removes the records of s that match r and returns them.
func removeMatches(origin string, r libdns.RR, s *rrset) ([]libdns.Record, error) {
	if r.TTL != 0 && int(rrconv.TTL(r.TTL)) != s.TTL {
		return nil, nil
	}
	var want dns.RR
	if r.Data != "" {
		var err error
		if want, err = toRR(origin, r); err != nil {
			return nil, err
		}
	}

	var removed []libdns.Record
	var kept []string
	for _, value := range s.Records {
		rec, err := rrconv.ParsePresentation(origin, name(s.Subname), s.Type, time.Duration(s.TTL)*time.Second, value)
		if err != nil {
			return nil, fmt.Errorf("desec: %w", err)
		}
		rr, err := rrconv.ToRR(origin, rec)
		if err != nil {
			return nil, fmt.Errorf("desec: %w", err)
		}
		if want != nil && !dns.IsDuplicate(want, rr) {
			kept = append(kept, value)
			continue
		}
		removed = append(removed, rec)
	}
	s.Records = kept
	return removed, nil
}

// containsRR reports whether s contains a record with the data of rr.
func containsRR(origin string, s *rrset, rr dns.RR) (bool, error) {
	for _, value := range s.Records {
		rec, err := rrconv.ParsePresentation(origin, name(s.Subname), s.Type, 0, value)
		if err != nil {
			return false, fmt.Errorf("desec: %w", err)
		}
		x, err := rrconv.ToRR(origin, rec)
		if err != nil {
			return false, fmt.Errorf("desec: %w", err)
		}
		if dns.IsDuplicate(x, rr) {
			return true, nil
		}
	}
	return false, nil
}

func toRR(origin string, rec libdns.Record) (dns.RR, error) {
	rr, err := rrconv.ToRR(origin, rec)
	if err != nil {
		return nil, fmt.Errorf("desec: %w", err)
	}
	if !dns.IsSubDomain(origin, rr.Header().Name) {
		return nil, fmt.Errorf("desec: record %s is outside zone %s", rr.Header().Name, origin)
	}
	return rr, nil
}

func fromRRSet(origin string, s rrset) ([]libdns.Record, error) {
	recs := make([]libdns.Record, 0, len(s.Records))
	for _, value := range s.Records {
		rec, err := rrconv.ParsePresentation(origin, name(s.Subname), s.Type, time.Duration(s.TTL)*time.Second, value)
		if err != nil {
			return nil, fmt.Errorf("desec: %w", err)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// domainName returns the domain as the API's paths contain it: without the
// trailing dot.
func domainName(origin string) string {
	return strings.TrimSuffix(origin, ".")
}

// subname returns the API's subname of owner: its labels before the zone,
// or "" for the apex.
func subname(origin, owner string) string {
	rel := strings.ToLower(rrconv.RelativeName(owner, origin))
	if rel == "@" {
		return ""
	}
	return rel
}

// name returns the libdns name of an API subname.
func name(subname string) string {
	if subname == "" {
		return "@"
	}
	return subname
}
