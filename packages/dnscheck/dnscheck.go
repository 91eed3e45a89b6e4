// Package dnscheck verifies that DNS records are published, by querying
// every authoritative server of the zone directly, not a caching resolver.
// It compares record data and ignores TTLs, and it does not validate DNSSEC.
package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/packages/dnsprovider/rrconv"
)

// DefaultTimeout is the timeout of one query when Resolver.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Resolver locates the authoritative servers of a zone.
type Resolver struct {
	// Servers are the host:port addresses of the zone's authoritative
	// servers, for example the RFC 2136 primary. Empty means that Check
	// finds them from the zone's NS records through Recursive.
	Servers []string
	// Recursive is the host:port of the recursive resolver that finds the
	// NS records and the servers' addresses. Empty means the first
	// nameserver in /etc/resolv.conf.
	Recursive string
	// Port is the port of the servers found through NS records. Zero means
	// 53.
	Port int
	// Timeout limits each query. Zero means DefaultTimeout.
	Timeout time.Duration
}

// State is the outcome of the check of one record.
type State int

const (
	// Published means that every server that responded returns the record.
	Published State = iota
	// Missing means that at least one server returns no record of that
	// name and type, and none returns other data.
	Missing
	// Wrong means that at least one server returns records of that name
	// and type, but not this one: for example an old address.
	Wrong
	// Unknown means that no server responded.
	Unknown
)

func (s State) String() string {
	switch s {
	case Published:
		return "published"
	case Missing:
		return "missing"
	case Wrong:
		return "wrong"
	}
	return "unknown"
}

// Status is the result of the check of one wanted record.
type Status struct {
	// Record is the wanted record, as passed to Check.
	Record libdns.Record
	State  State
	// Answers maps each server that responded to the data of the records
	// of the wanted name and type in its response, in presentation format
	// (libdns data for TXT).
	Answers map[string][]string
	// Errors maps each server that failed to respond to the error.
	Errors map[string]error
}

func (s Status) String() string {
	r := s.Record.RR()
	return fmt.Sprintf("%s %s %q: %s (servers returned %v)", r.Name, r.Type, r.Data, s.State, s.Answers)
}

// Check queries the authoritative servers of zone for every record in want
// and returns one Status per record, in the order of want. It returns an
// error when a record is invalid or when no authoritative server is found.
func Check(ctx context.Context, r Resolver, zone string, want []libdns.Record) ([]Status, error) {
	z, err := rrconv.Zone(zone)
	if err != nil {
		return nil, err
	}
	wanted := make([]dns.RR, len(want))
	for i, rec := range want {
		if wanted[i], err = rrconv.ToRR(z, rec); err != nil {
			return nil, fmt.Errorf("dnscheck: %w", err)
		}
	}
	servers := r.Servers
	if len(servers) == 0 {
		if servers, err = r.authoritative(ctx, z); err != nil {
			return nil, err
		}
	}

	answers := make(map[question]map[string]result)
	statuses := make([]Status, len(want))
	for i, rr := range wanted {
		q := question{strings.ToLower(rr.Header().Name), rr.Header().Rrtype}
		if answers[q] == nil {
			answers[q] = r.askAll(ctx, servers, q)
		}
		statuses[i] = evaluate(want[i], rr, answers[q])
	}
	return statuses, nil
}

type question struct {
	name  string
	qtype uint16
}

// result is one server's response to a question.
type result struct {
	rrs []dns.RR
	err error
}

func (r Resolver) askAll(ctx context.Context, servers []string, q question) map[string]result {
	results := make(map[string]result, len(servers))
	for _, server := range servers {
		rrs, err := r.query(ctx, server, q.name, q.qtype, false)
		results[server] = result{rrs: rrs, err: err}
	}
	return results
}

// evaluate compares the wanted record with the servers' results.
func evaluate(rec libdns.Record, want dns.RR, results map[string]result) Status {
	s := Status{Record: rec, Answers: make(map[string][]string), Errors: make(map[string]error)}
	var has, empty, differ int
	for server, res := range results {
		if res.err != nil {
			s.Errors[server] = res.err
			continue
		}
		data := make([]string, 0, len(res.rrs))
		found := false
		for _, rr := range res.rrs {
			data = append(data, rrconv.Data(rr))
			found = found || dns.IsDuplicate(want, rr)
		}
		slices.Sort(data)
		s.Answers[server] = data
		switch {
		case found:
			has++
		case len(res.rrs) == 0:
			empty++
		default:
			differ++
		}
	}

	switch {
	case len(s.Answers) == 0:
		s.State = Unknown
	case differ > 0:
		s.State = Wrong
	case empty > 0:
		s.State = Missing
	default:
		s.State = Published
	}
	return s
}

// query sends one non-recursive query (or a recursive one with recurse)
// over UDP, repeats it over TCP when the response is truncated, and returns
// the answer records of name and qtype. NXDOMAIN is an empty answer.
func (r Resolver) query(ctx context.Context, server, name string, qtype uint16, recurse bool) ([]dns.RR, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = recurse
	m.SetEdns0(4096, false)

	resp, _, err := (&dns.Client{Net: "udp"}).ExchangeContext(ctx, m, server)
	if err == nil && resp.Truncated {
		resp, _, err = (&dns.Client{Net: "tcp"}).ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, fmt.Errorf("dnscheck: querying %s for %s %s: %w", server, name, dns.TypeToString[qtype], err)
	}
	if resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("dnscheck: %s returned %s for %s %s", server, dns.RcodeToString[resp.Rcode], name, dns.TypeToString[qtype])
	}
	if !recurse && !resp.Authoritative {
		return nil, fmt.Errorf("dnscheck: %s is not authoritative for %s: check the zone's NS records", server, name)
	}

	var rrs []dns.RR
	for _, rr := range resp.Answer {
		if rr.Header().Rrtype == qtype && strings.EqualFold(rr.Header().Name, dns.Fqdn(name)) {
			rrs = append(rrs, rr)
		}
	}
	return rrs, nil
}

// authoritative returns the addresses of the servers in the NS records of
// zone, as host:port.
func (r Resolver) authoritative(ctx context.Context, zone string) ([]string, error) {
	recursive := r.Recursive
	if recursive == "" {
		conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(conf.Servers) == 0 {
			return nil, fmt.Errorf("dnscheck: no recursive resolver to find the servers of %s: set Resolver.Recursive", zone)
		}
		recursive = net.JoinHostPort(conf.Servers[0], conf.Port)
	}
	port := r.Port
	if port == 0 {
		port = 53
	}

	nsRecords, err := r.query(ctx, recursive, zone, dns.TypeNS, true)
	if err != nil {
		return nil, err
	}
	var servers []string
	var lookupErrs []error
	for _, rr := range nsRecords {
		host := rr.(*dns.NS).Ns
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
			addrs, err := r.query(ctx, recursive, host, qtype, true)
			if err != nil {
				lookupErrs = append(lookupErrs, err)
			}
			for _, a := range addrs {
				servers = append(servers, net.JoinHostPort(address(a), fmt.Sprint(port)))
			}
		}
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("dnscheck: found no authoritative server of %s through %s (check the delegation of the zone): %w", zone, recursive, errors.Join(lookupErrs...))
	}
	return servers, nil
}

func address(rr dns.RR) string {
	switch a := rr.(type) {
	case *dns.A:
		return a.A.String()
	case *dns.AAAA:
		return a.AAAA.String()
	}
	return ""
}
