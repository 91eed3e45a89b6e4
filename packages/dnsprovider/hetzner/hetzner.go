// Package hetzner changes DNS zones hosted at Hetzner through the Hetzner
// Cloud API (zones and RRsets at https://api.hetzner.cloud/v1), behind the
// libdns interfaces. The older DNS Console API at dns.hetzner.com is not
// used.
package hetzner

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/packages/dnsprovider/rrconv"
)

// Provider is an API token of a Hetzner Console project that holds the
// zones. Its methods are safe for concurrent use, and changes are sent one
// at a time. A Provider must not be copied after first use.
type Provider struct {
	// Token is an API token with Read & Write permission.
	Token string
	// Endpoint is the API's base URL. Empty means
	// https://api.hetzner.cloud/v1.
	Endpoint string

	// mu serializes changes, so that one change's action ends before the
	// next change starts and the API does not reject it as locked.
	mu sync.Mutex
}

var (
	_ libdns.RecordGetter   = (*Provider)(nil)
	_ libdns.RecordAppender = (*Provider)(nil)
	_ libdns.RecordSetter   = (*Provider)(nil)
	_ libdns.RecordDeleter  = (*Provider)(nil)
	_ libdns.ZoneLister     = (*Provider)(nil)
)

// ListZones returns the zones of the token's project.
func (p *Provider) ListZones(ctx context.Context) ([]libdns.Zone, error) {
	api, err := p.client()
	if err != nil {
		return nil, err
	}
	zones, err := api.Zone.All(ctx)
	if err != nil {
		return nil, p.wrap(err, "listing the zones")
	}
	list := make([]libdns.Zone, len(zones))
	for i, z := range zones {
		list[i] = libdns.Zone{Name: dns.Fqdn(z.Name)}
	}
	return list, nil
}

// rrsetKey is an RRset's name relative to the zone ("@" for the apex) and
// its type, as the API's paths contain them.
type rrsetKey struct {
	name  string
	rtype string
}

// group is the records of one RRset in an input.
type group struct {
	key    rrsetKey
	ttl    *int
	values []hcloud.ZoneRRSetRecord
	rrs    []dns.RR
}

// GetRecords returns all records of zone except its SOA record.
func (p *Provider) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	api, z, err := p.zone(ctx, zone)
	if err != nil {
		return nil, err
	}
	rrsets, err := api.Zone.AllRRSets(ctx, z)
	if err != nil {
		return nil, p.wrap(err, "listing the RRsets of zone "+z.Name)
	}

	var recs []libdns.Record
	for _, set := range rrsets {
		if set.Type == hcloud.ZoneRRSetTypeSOA {
			continue
		}
		setRecs, err := fromRRSet(z, set)
		if err != nil {
			return nil, err
		}
		recs = append(recs, setRecs...)
	}
	return recs, nil
}

// AppendRecords adds recs to zone with the add_records action per RRset,
// which creates RRsets that do not exist. The TTL of the first record of
// an RRset applies when the RRset is created; a TTL of zero means the
// zone's default TTL.
//
// NOTE: whether the live API rejects or ignores a TTL that differs from an
// existing RRset's is unchecked; the test fake ignores it.
func (p *Provider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	groups, err := groupRecords(zone, recs)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	api, z, err := p.zone(ctx, zone)
	if err != nil {
		return nil, err
	}

	var added []libdns.Record
	for _, g := range groups {
		set := &hcloud.ZoneRRSet{Zone: z, Name: g.key.name, Type: hcloud.ZoneRRSetType(g.key.rtype)}
		action, _, err := api.Zone.AddRRSetRecords(ctx, set, hcloud.ZoneRRSetAddRecordsOpts{Records: g.values, TTL: g.ttl})
		if err := p.finish(ctx, api, action, err, "adding", z, g.key); err != nil {
			return added, err
		}
		added = append(added, g.records(z)...)
	}
	return added, nil
}

// SetRecords replaces, for every name and type in recs, the RRset with the
// records of recs: it creates a missing RRset, and overwrites the records
// (set_records) and the TTL (change_ttl) of an existing one. Each RRset
// changes on its own, so an error can leave earlier RRsets of the same
// call changed.
func (p *Provider) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	groups, err := groupRecords(zone, recs)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	api, z, err := p.zone(ctx, zone)
	if err != nil {
		return nil, err
	}

	var set []libdns.Record
	for _, g := range groups {
		if err := p.setRRSet(ctx, api, z, g); err != nil {
			return set, err
		}
		set = append(set, g.records(z)...)
	}
	return set, nil
}

func (p *Provider) setRRSet(ctx context.Context, api *hcloud.Client, z *hcloud.Zone, g group) error {
	existing, _, err := api.Zone.GetRRSetByNameAndType(ctx, z, g.key.name, hcloud.ZoneRRSetType(g.key.rtype))
	if err != nil {
		return p.wrap(err, fmt.Sprintf("reading RRset %s %s in zone %s", g.key.name, g.key.rtype, z.Name))
	}
	if existing == nil {
		result, _, err := api.Zone.CreateRRSet(ctx, z, hcloud.ZoneRRSetCreateOpts{
			Name: g.key.name, Type: hcloud.ZoneRRSetType(g.key.rtype), TTL: g.ttl, Records: g.values,
		})
		return p.finish(ctx, api, result.Action, err, "creating", z, g.key)
	}

	existing.Zone = z
	action, _, err := api.Zone.SetRRSetRecords(ctx, existing, hcloud.ZoneRRSetSetRecordsOpts{Records: g.values})
	if err := p.finish(ctx, api, action, err, "setting", z, g.key); err != nil {
		return err
	}
	if sameTTL(existing.TTL, g.ttl) {
		return nil
	}
	action, _, err = api.Zone.ChangeRRSetTTL(ctx, existing, hcloud.ZoneRRSetChangeTTLOpts{TTL: g.ttl})
	return p.finish(ctx, api, action, err, "changing the TTL of", z, g.key)
}

func sameTTL(a, b *int) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// DeleteRecords removes the records of zone that match recs (remove_records
// per RRset) and returns them. A record matches when its name is equal and
// its type, TTL and data are equal or empty (zero) in recs. The API deletes
// an RRset whose last record is removed.
func (p *Provider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	api, z, err := p.zone(ctx, zone)
	if err != nil {
		return nil, err
	}
	removals, err := p.matching(ctx, api, z, recs)
	if err != nil {
		return nil, err
	}

	var deleted []libdns.Record
	for _, g := range removals {
		set := &hcloud.ZoneRRSet{Zone: z, Name: g.key.name, Type: hcloud.ZoneRRSetType(g.key.rtype)}
		action, _, err := api.Zone.RemoveRRSetRecords(ctx, set, hcloud.ZoneRRSetRemoveRecordsOpts{Records: g.values})
		if err := p.finish(ctx, api, action, err, "removing", z, g.key); err != nil {
			return deleted, err
		}
		deleted = append(deleted, g.records(z)...)
	}
	return deleted, nil
}

// matching returns, per RRset, the existing records that match recs.
func (p *Provider) matching(ctx context.Context, api *hcloud.Client, z *hcloud.Zone, recs []libdns.Record) ([]group, error) {
	origin := dns.Fqdn(z.Name)
	var groups []group
	index := make(map[rrsetKey]int)
	for _, rec := range recs {
		r := rec.RR()
		sets, err := p.candidates(ctx, api, z, r)
		if err != nil {
			return nil, err
		}
		for _, set := range sets {
			for _, v := range set.Records {
				rr, ok, err := recordMatches(origin, r, set, v.Value, z.TTL)
				if err != nil {
					return nil, err
				}
				if !ok {
					continue
				}
				key := rrsetKey{set.Name, string(set.Type)}
				i, seen := index[key]
				if !seen {
					i = len(groups)
					index[key] = i
					groups = append(groups, group{key: key, ttl: set.TTL})
				}
				if !containsRR(groups[i].rrs, rr) {
					groups[i].values = append(groups[i].values, hcloud.ZoneRRSetRecord{Value: v.Value})
					groups[i].rrs = append(groups[i].rrs, rr)
				}
			}
		}
	}
	return groups, nil
}

// candidates returns the RRsets that can contain records matching r: the
// RRset of r's name and type, or all RRsets of the name when r has no type.
func (p *Provider) candidates(ctx context.Context, api *hcloud.Client, z *hcloud.Zone, r libdns.RR) ([]*hcloud.ZoneRRSet, error) {
	name, err := relativeName(z, r.Name)
	if err != nil {
		return nil, err
	}
	if r.Type == "" {
		sets, err := api.Zone.AllRRSetsWithOpts(ctx, z, hcloud.ZoneRRSetListOpts{Name: name})
		if err != nil {
			return nil, p.wrap(err, fmt.Sprintf("listing the RRsets of %s in zone %s", name, z.Name))
		}
		return sets, nil
	}
	set, _, err := api.Zone.GetRRSetByNameAndType(ctx, z, name, hcloud.ZoneRRSetType(strings.ToUpper(r.Type)))
	if err != nil {
		return nil, p.wrap(err, fmt.Sprintf("reading RRset %s %s in zone %s", name, r.Type, z.Name))
	}
	if set == nil {
		return nil, nil
	}
	return []*hcloud.ZoneRRSet{set}, nil
}

// recordMatches reports whether the record with value in set matches r,
// whose empty type, zero TTL and empty data match anything.
func recordMatches(origin string, r libdns.RR, set *hcloud.ZoneRRSet, value string, zoneTTL int) (dns.RR, bool, error) {
	if set.Type == hcloud.ZoneRRSetTypeSOA || !strings.EqualFold(set.Name, rrsetName(origin, r.Name)) {
		return nil, false, nil
	}
	if r.Type != "" && !strings.EqualFold(r.Type, string(set.Type)) {
		return nil, false, nil
	}
	ttl := ttlOf(set, zoneTTL)
	if r.TTL != 0 && rrconv.TTL(r.TTL) != rrconv.TTL(ttl) {
		return nil, false, nil
	}
	rec, err := rrconv.ParsePresentation(origin, set.Name, string(set.Type), ttl, value)
	if err != nil {
		return nil, false, fmt.Errorf("hetzner: zone %s: %w", origin, err)
	}
	rr, err := rrconv.ToRR(origin, rec)
	if err != nil {
		return nil, false, err
	}
	if r.Data == "" {
		return rr, true, nil
	}
	want, err := rrconv.ToRR(origin, r)
	if err != nil {
		return nil, false, err
	}
	return rr, dns.IsDuplicate(want, rr), nil
}

func containsRR(list []dns.RR, rr dns.RR) bool {
	for _, x := range list {
		if dns.IsDuplicate(x, rr) {
			return true
		}
	}
	return false
}

// groupRecords converts recs into the API's values and groups them by
// RRset, in the order of their first appearance.
func groupRecords(zone string, recs []libdns.Record) ([]group, error) {
	origin, err := rrconv.Zone(zone)
	if err != nil {
		return nil, err
	}
	var groups []group
	index := make(map[rrsetKey]int)
	for _, rec := range recs {
		rr, err := rrconv.ToRR(origin, rec)
		if err != nil {
			return nil, fmt.Errorf("hetzner: %w", err)
		}
		if !dns.IsSubDomain(origin, rr.Header().Name) {
			return nil, fmt.Errorf("hetzner: record %s is outside zone %s", rr.Header().Name, origin)
		}
		key := rrsetKey{rrsetName(origin, rr.Header().Name), dns.TypeToString[rr.Header().Rrtype]}
		i, seen := index[key]
		if !seen {
			i = len(groups)
			index[key] = i
			groups = append(groups, group{key: key, ttl: apiTTL(rec.RR().TTL)})
		}
		value := strings.TrimPrefix(rr.String(), rr.Header().String())
		groups[i].values = append(groups[i].values, hcloud.ZoneRRSetRecord{Value: value})
		groups[i].rrs = append(groups[i].rrs, rr)
	}
	return groups, nil
}

// records converts the group's records back to libdns types.
func (g group) records(z *hcloud.Zone) []libdns.Record {
	recs := make([]libdns.Record, 0, len(g.rrs))
	for _, rr := range g.rrs {
		if rec, err := rrconv.FromRR(dns.Fqdn(z.Name), rr); err == nil {
			recs = append(recs, rec)
		}
	}
	return recs
}

// fromRRSet converts the records of set to libdns types.
func fromRRSet(z *hcloud.Zone, set *hcloud.ZoneRRSet) ([]libdns.Record, error) {
	origin := dns.Fqdn(z.Name)
	ttl := ttlOf(set, z.TTL)
	recs := make([]libdns.Record, 0, len(set.Records))
	for _, v := range set.Records {
		rec, err := rrconv.ParsePresentation(origin, set.Name, string(set.Type), ttl, v.Value)
		if err != nil {
			return nil, fmt.Errorf("hetzner: zone %s: %w", z.Name, err)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// ttlOf returns the TTL of set, which is the zone's default TTL when the
// RRset has none.
func ttlOf(set *hcloud.ZoneRRSet, zoneTTL int) time.Duration {
	if set.TTL != nil {
		return time.Duration(*set.TTL) * time.Second
	}
	return time.Duration(zoneTTL) * time.Second
}

// apiTTL returns the TTL for the API: nil (the zone's default) for zero.
func apiTTL(d time.Duration) *int {
	if d < time.Second {
		return nil
	}
	s := int(rrconv.TTL(d))
	return &s
}

// rrsetName returns the RRset name of the record name (relative to origin,
// or absolute) in lowercase, with "@" for the apex.
func rrsetName(origin, name string) string {
	abs := dns.Fqdn(libdns.AbsoluteName(name, origin))
	return strings.ToLower(rrconv.RelativeName(abs, origin))
}

func relativeName(z *hcloud.Zone, name string) (string, error) {
	origin := dns.Fqdn(z.Name)
	abs, err := rrconv.AbsoluteName(name, origin)
	if err != nil {
		return "", fmt.Errorf("hetzner: %w", err)
	}
	if !dns.IsSubDomain(origin, abs) {
		return "", fmt.Errorf("hetzner: record %s is outside zone %s", abs, z.Name)
	}
	return rrsetName(origin, abs), nil
}
