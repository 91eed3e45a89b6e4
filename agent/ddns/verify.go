package ddns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Verifier checks that a record is published.
type Verifier interface {
	// Verify returns nil once the record name (absolute) of type rrtype
	// ("A" or "AAAA") contains exactly the address want.
	Verify(ctx context.Context, name, rrtype string, want netip.Addr) error
}

// AuthoritativeVerifier queries the zone's authoritative servers directly,
// without recursion, so that no cache can return an old address.
type AuthoritativeVerifier struct {
	// Servers are the host:port addresses of the authoritative servers.
	// Every one must return the record. ZoneServers finds them.
	Servers []string

	// Wait is how long Verify keeps querying while the provider
	// distributes the change to its servers. Zero means one minute.
	Wait time.Duration

	// Interval is the pause between two rounds of queries. Zero means 2
	// seconds.
	Interval time.Duration
}

// Verify queries every server until all return exactly want, or Wait ends.
func (v *AuthoritativeVerifier) Verify(ctx context.Context, name, rrtype string, want netip.Addr) error {
	qtype, ok := dns.StringToType[rrtype]
	if !ok {
		return fmt.Errorf("verifying %s: record type %q is unknown", name, rrtype)
	}
	if len(v.Servers) == 0 {
		return fmt.Errorf("verifying %s %s: no authoritative servers configured", name, rrtype)
	}
	wait, interval := v.Wait, v.Interval
	if wait == 0 {
		wait = time.Minute
	}
	if interval == 0 {
		interval = 2 * time.Second
	}
	deadline := time.Now().Add(wait)

	for {
		err := v.verifyOnce(ctx, name, qtype, want)
		if err == nil || time.Now().Add(interval).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

func (v *AuthoritativeVerifier) verifyOnce(ctx context.Context, name string, qtype uint16, want netip.Addr) error {
	for _, server := range v.Servers {
		got, err := queryAddrs(ctx, server, name, qtype)
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0] != want {
			return fmt.Errorf("verifying %s %s at %s: server returned [%s], want %s", name, dns.TypeToString[qtype], server, joinAddrs(got), want)
		}
	}
	return nil
}

// queryAddrs returns the addresses of the A or AAAA records of name at
// server, asked over UDP, and over TCP when the answer is truncated.
func queryAddrs(ctx context.Context, server, name string, qtype uint16) ([]netip.Addr, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false

	r, err := exchange(ctx, "udp", server, m)
	if err == nil && r.Truncated {
		r, err = exchange(ctx, "tcp", server, m)
	}
	if err != nil {
		return nil, fmt.Errorf("verifying %s %s at %s: %w", name, dns.TypeToString[qtype], server, err)
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("verifying %s %s at %s: server returned %s", name, dns.TypeToString[qtype], server, dns.RcodeToString[r.Rcode])
	}

	var addrs []netip.Addr
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(rr.A); ok && qtype == dns.TypeA {
				addrs = append(addrs, a.Unmap())
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(rr.AAAA); ok && qtype == dns.TypeAAAA {
				addrs = append(addrs, a)
			}
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	return addrs, nil
}

func exchange(ctx context.Context, network, server string, m *dns.Msg) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.ExchangeContext(ctx, m, server)
	return r, err
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, " ")
}

// ZoneServers returns the host:53 addresses of the name servers in the NS
// records of zone, as the system resolver returns them.
func ZoneServers(ctx context.Context, zone string) ([]string, error) {
	nss, err := net.DefaultResolver.LookupNS(ctx, zone)
	if err != nil {
		return nil, fmt.Errorf("looking up the name servers of %s: %w", zone, err)
	}
	servers := make([]string, 0, len(nss))
	for _, ns := range nss {
		servers = append(servers, net.JoinHostPort(strings.TrimSuffix(ns.Host, "."), "53"))
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("looking up the name servers of %s: no NS records", zone)
	}
	return servers, nil
}
