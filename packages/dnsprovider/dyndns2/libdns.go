package dyndns2

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/libdns/libdns"
)

var _ libdns.RecordSetter = (*Provider)(nil)

// SetRecords points each name in recs at its A and AAAA records with one
// update per name. The protocol carries one address per family, so recs may
// hold at most one A and one AAAA record per name, and no other types. The
// provider chooses the TTL, so the records' TTLs are ignored.
func (p *Provider) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	type addresses struct{ ipv4, ipv6 netip.Addr }
	byName := make(map[string]*addresses)
	var order []string
	for _, rec := range recs {
		r := rec.RR()
		if r.Type != "A" && r.Type != "AAAA" {
			return nil, fmt.Errorf("dyndns2: a dynDNS2 provider cannot publish the %s record %s: add it by hand in the provider's web interface", r.Type, r.Name)
		}
		ip, err := netip.ParseAddr(r.Data)
		if err != nil {
			return nil, fmt.Errorf("dyndns2: %s record %s: %w", r.Type, r.Name, err)
		}
		host := libdns.AbsoluteName(r.Name, zone)
		a := byName[host]
		if a == nil {
			a = new(addresses)
			byName[host] = a
			order = append(order, host)
		}
		slot := &a.ipv4
		if r.Type == "AAAA" {
			slot = &a.ipv6
		}
		if slot.IsValid() {
			return nil, fmt.Errorf("dyndns2: more than one %s record for %s: the protocol sets one address per family", r.Type, host)
		}
		*slot = ip
	}

	for _, host := range order {
		a := byName[host]
		if _, err := p.Update(ctx, host, a.ipv4, a.ipv6); err != nil {
			return nil, err
		}
	}

	set := make([]libdns.Record, 0, len(recs))
	for _, rec := range recs {
		r := rec.RR()
		ip, _ := netip.ParseAddr(r.Data)
		set = append(set, libdns.Address{Name: r.Name, TTL: r.TTL, IP: ip})
	}
	return set, nil
}
