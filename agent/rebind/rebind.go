// Package rebind detects from the LAN whether the router's resolver hides the
// household's public name, as the DNS rebind protection of a FRITZ!Box does
// for names that point at private addresses. It compares the router's answers
// with the addresses that the zone's authoritative servers publish.
package rebind

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/packages/control"
)

// State is the outcome of a check.
type State string

// States of a check. The strings are those of control.NetworkStatus.Rebind.
const (
	// OK means that the LAN resolver returned addresses for every queried
	// type.
	OK State = "ok"
	// Blocked means that the LAN resolver responded without a usable
	// address although the authoritative servers publish one: an empty
	// answer, NXDOMAIN, REFUSED, or only 0.0.0.0 or ::.
	Blocked State = "blocked"
	// Unknown means that the LAN resolver did not respond, or responded
	// with SERVFAIL, which an outage upstream causes as well.
	Unknown State = "unknown"
)

// DefaultResolvConf is the file whose first nameserver is the LAN resolver
// when Config.Resolver is not set.
const DefaultResolvConf = "/etc/resolv.conf"

// DefaultTimeout bounds each query when Config.Timeout is zero.
const DefaultTimeout = 3 * time.Second

// attempts is how often a query is sent over UDP before the resolver counts
// as silent, so that one lost packet does not make the check Unknown.
const attempts = 2

// Config names the record to check and the resolver to query.
type Config struct {
	// Name is the household's public name, such as familie-mueller.de.
	Name string

	// Published are the A and AAAA addresses that the zone's authoritative
	// servers return for Name. Check queries the LAN resolver only for the
	// address families listed here, and fails when the list is empty.
	Published []netip.Addr

	// Resolver is the LAN resolver, usually the router. Its port defaults
	// to 53. The zero value means the first nameserver in ResolvConf.
	Resolver netip.AddrPort

	// ResolvConf is the resolv.conf(5) file read when Resolver is not set.
	// Empty means DefaultResolvConf.
	ResolvConf string

	// LAN are the box's own addresses in the home network. A published
	// address among them is the case that rebind protection blocks.
	LAN []netip.Addr

	// Timeout bounds each attempt of each query. Zero means
	// DefaultTimeout.
	Timeout time.Duration
}

// Query is one question to the LAN resolver and its response.
type Query struct {
	// Type is "A" or "AAAA".
	Type string
	// Rcode is the response code, such as "NOERROR" or "NXDOMAIN", empty
	// when no response arrived.
	Rcode string
	// Answer are the addresses of that type in the response.
	Answer []netip.Addr
	// Error is the reason that no response arrived, empty otherwise.
	Error string
	// State is the outcome of this query alone.
	State State
	// Stale is set when the answer has usable addresses but none of the
	// published ones of this type, as while the resolver still caches
	// the address from before a change.
	Stale bool
}

// Result is the outcome of a check.
type Result struct {
	State State
	// Name is the queried name, absolute.
	Name string
	// Resolver is the address that was asked.
	Resolver netip.AddrPort
	// Published are the addresses that were expected, from Config.
	Published []netip.Addr
	// PrivatePublished is set when a published address is private,
	// loopback, link-local or one of the box's LAN addresses: the answers
	// that DNS rebind protection removes.
	PrivatePublished bool
	Queries          []Query
}

// Check queries cfg.Resolver for the A and AAAA records of cfg.Name that
// cfg.Published has, and compares the responses with them. The result is
// Blocked if any query is blocked, else Unknown if any query went
// unanswered, else OK. An error means that cfg is invalid or the resolver
// could not be determined. Check sends at most four UDP queries and takes
// at most four times the timeout.
func Check(ctx context.Context, cfg Config) (Result, error) {
	name, err := checkName(cfg.Name)
	if err != nil {
		return Result{}, err
	}
	if len(cfg.Published) == 0 {
		return Result{}, fmt.Errorf("rebind check for %s: no published addresses: pass the A and AAAA addresses from the authoritative servers", cfg.Name)
	}
	resolver, err := cfg.resolver()
	if err != nil {
		return Result{}, err
	}

	res := Result{Name: name, Resolver: resolver, Published: cfg.Published}
	res.PrivatePublished = slices.ContainsFunc(cfg.Published, func(a netip.Addr) bool {
		return isRebindTarget(a) || slices.Contains(cfg.LAN, a.Unmap())
	})

	client := &dns.Client{Net: "udp", Timeout: cfg.timeout()}
	for _, qtype := range publishedTypes(cfg.Published) {
		q := query(ctx, client, resolver, name, qtype, unmapAll(cfg.Published))
		res.Queries = append(res.Queries, q)
	}
	res.State = overall(res.Queries)
	return res, nil
}

func checkName(name string) (string, error) {
	trimmed := strings.TrimSuffix(strings.TrimSpace(name), ".")
	if trimmed == "" {
		return "", errors.New("rebind check: missing name: pass the household's public name, such as familie-mueller.de")
	}
	if _, ok := dns.IsDomainName(trimmed); !ok {
		return "", fmt.Errorf("rebind check: invalid name %q: pass a domain name, such as familie-mueller.de", name)
	}
	return dns.Fqdn(strings.ToLower(trimmed)), nil
}

func (cfg Config) timeout() time.Duration {
	if cfg.Timeout > 0 {
		return cfg.Timeout
	}
	return DefaultTimeout
}

// resolver returns cfg.Resolver with port 53 filled in, or the first
// nameserver of the resolv.conf file.
func (cfg Config) resolver() (netip.AddrPort, error) {
	if cfg.Resolver.Addr().IsValid() {
		if cfg.Resolver.Port() == 0 {
			return netip.AddrPortFrom(cfg.Resolver.Addr(), 53), nil
		}
		return cfg.Resolver, nil
	}

	path := cfg.ResolvConf
	if path == "" {
		path = DefaultResolvConf
	}
	conf, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("rebind check: reading the LAN resolver from %s: %w", path, err)
	}
	for _, server := range conf.Servers {
		// resolv.conf may give an IPv6 link-local address with a zone,
		// which netip keeps.
		addr, err := netip.ParseAddr(server)
		if err != nil {
			continue
		}
		port, err := strconv.ParseUint(conf.Port, 10, 16)
		if err != nil || port == 0 {
			port = 53
		}
		return netip.AddrPortFrom(addr, uint16(port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("rebind check: no nameserver in %s: set the router's address as the resolver", path)
}

// publishedTypes returns the query types for the address families in
// published, A before AAAA.
func publishedTypes(published []netip.Addr) []uint16 {
	var v4, v6 bool
	for _, a := range published {
		if a.Unmap().Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	var types []uint16
	if v4 {
		types = append(types, dns.TypeA)
	}
	if v6 {
		types = append(types, dns.TypeAAAA)
	}
	return types
}

// query sends resolver a query for name's records of qtype, with recursion
// desired as a stub resolver sends it, and retries once when no response
// arrives.
func query(ctx context.Context, client *dns.Client, resolver netip.AddrPort, name string, qtype uint16, published []netip.Addr) Query {
	q := Query{Type: dns.TypeToString[qtype]}
	msg := new(dns.Msg)
	msg.SetQuestion(name, qtype)
	msg.RecursionDesired = true

	var resp *dns.Msg
	var err error
	for range attempts {
		resp, _, err = client.ExchangeContext(ctx, msg, resolver.String())
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		q.Error = err.Error()
		q.State = Unknown
		return q
	}

	q.Rcode = dns.RcodeToString[resp.Rcode]
	q.Answer = answerAddrs(resp, qtype)
	q.State = classify(resp.Rcode, q.Answer)
	q.Stale = q.State == OK && !slices.ContainsFunc(q.Answer, func(a netip.Addr) bool {
		return slices.Contains(published, a)
	})
	return q
}

// answerAddrs returns the addresses of type qtype in the answer section,
// whatever their owner name, so that a CNAME chain counts too.
func answerAddrs(resp *dns.Msg, qtype uint16) []netip.Addr {
	var addrs []netip.Addr
	for _, rr := range resp.Answer {
		var ip net.IP
		switch rr := rr.(type) {
		case *dns.A:
			ip = rr.A
		case *dns.AAAA:
			ip = rr.AAAA
		}
		if ip == nil || rr.Header().Rrtype != qtype {
			continue
		}
		if addr, ok := netip.AddrFromSlice(ip); ok {
			addrs = append(addrs, addr.Unmap())
		}
	}
	return addrs
}

// classify returns the state of one response. Some rebind filters answer
// NXDOMAIN or REFUSED, others drop the records and keep NOERROR, and others
// replace them with the unspecified address.
func classify(rcode int, answer []netip.Addr) State {
	switch rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError, dns.RcodeRefused:
		return Blocked
	default:
		// SERVFAIL and the other codes also come from an unreachable
		// upstream server, so they do not show rebind protection.
		return Unknown
	}
	if !slices.ContainsFunc(answer, func(a netip.Addr) bool { return !a.IsUnspecified() }) {
		return Blocked
	}
	return OK
}

func overall(queries []Query) State {
	state := OK
	for _, q := range queries {
		switch q.State {
		case Blocked:
			return Blocked
		case Unknown:
			state = Unknown
		}
	}
	return state
}

// isRebindTarget reports whether a is in the ranges that rebind filters
// remove from answers: RFC 1918 and RFC 4193 private ranges, loopback,
// link-local and the unspecified address.
func isRebindTarget(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsUnspecified()
}

func unmapAll(addrs []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, len(addrs))
	for i, a := range addrs {
		out[i] = a.Unmap()
	}
	return out
}

// Fill sets the Rebind and RebindName fields of ns from r.
func (r Result) Fill(ns *control.NetworkStatus) {
	ns.Rebind = string(r.State)
	ns.RebindName = strings.TrimSuffix(r.Name, ".")
}
