package rfc2136

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/packages/dnsprovider/rrconv"
)

// fudge is the permitted clock difference between client and server in
// seconds for a TSIG signature (RFC 8945 section 10 recommends 300).
const fudge = 300

// algorithms maps KeyAlgorithm to the algorithm names of RFC 8945 section 6.
var algorithms = map[string]string{
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// RcodeError is a response in which the server rejected a request: a
// response code other than NOERROR, or a TSIG error.
type RcodeError struct {
	// Server is the host:port that sent the response.
	Server string
	// Zone is the zone of the request.
	Zone string
	// Request is the kind of request: "update", "query" or "zone transfer".
	Request string
	// Rcode is the response code of the message header (RFC 1035 section
	// 4.1.1, RFC 2136 section 2.2).
	Rcode int
	// TSIGError is the error field of the response's TSIG record, or 0
	// (RFC 8945 section 5.3.2: BADSIG 16, BADKEY 17, BADTIME 18).
	TSIGError uint16
}

func (e *RcodeError) Error() string {
	code := dns.RcodeToString[e.Rcode]
	if e.TSIGError != 0 {
		code += " (TSIG " + dns.RcodeToString[int(e.TSIGError)] + ")"
	}
	return fmt.Sprintf("rfc2136: server %s rejected the %s for zone %s with %s: %s",
		e.Server, e.Request, e.Zone, code, e.hint())
}

// hint returns what to check for the error's codes.
func (e *RcodeError) hint() string {
	switch {
	case e.TSIGError == dns.RcodeBadKey:
		return "the server does not know the key: check the key name and the algorithm"
	case e.TSIGError == dns.RcodeBadSig:
		return "the signature does not match: check the secret"
	case e.TSIGError == dns.RcodeBadTime:
		return "the clocks of this machine and the server differ by more than 5 minutes"
	case e.Rcode == dns.RcodeRefused:
		return "the server does not let this key change these names and types: check the zone's update-policy (BIND) or acl (Knot), and allow-transfer for zone transfers"
	case e.Rcode == dns.RcodeNotAuth:
		return "the server is not authoritative for the zone or did not accept the key: check the server address, the zone name, the key name and the secret"
	case e.Rcode == dns.RcodeNotZone:
		return "a record name is outside the zone: check the zone name"
	case e.Rcode == dns.RcodeServerFailure:
		return "the server failed: check its log"
	}
	return "check the server's log"
}

// key returns the key name in canonical form (RFC 4034 section 6.2),
// the TSIG algorithm, and an error for invalid provider fields.
func (p *Provider) key() (name, algorithm string, err error) {
	if p.Server == "" {
		return "", "", errors.New("rfc2136: server is empty: set it to the host:port of the zone's primary name server")
	}
	if _, _, err := net.SplitHostPort(p.Server); err != nil {
		return "", "", fmt.Errorf("rfc2136: server %q is not host:port: add the port, usually 53", p.Server)
	}
	if p.KeyName == "" {
		return "", "", errors.New("rfc2136: key name is empty: set it to the TSIG key's name in the server's configuration")
	}
	alg := strings.TrimSuffix(strings.ToLower(p.KeyAlgorithm), ".")
	if alg == "" {
		alg = "hmac-sha256"
	}
	algorithm, ok := algorithms[alg]
	if !ok {
		return "", "", fmt.Errorf("rfc2136: key algorithm %q is not supported: use hmac-sha256 or hmac-sha512", p.KeyAlgorithm)
	}
	if _, err := base64.StdEncoding.DecodeString(p.Secret); err != nil || p.Secret == "" {
		return "", "", fmt.Errorf("rfc2136: key %s: the secret is not standard base64: copy it from the secret line of the key", p.KeyName)
	}
	return strings.ToLower(dns.Fqdn(p.KeyName)), algorithm, nil
}

func (p *Provider) timeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	return DefaultTimeout
}

// exchange signs m, sends it over TCP and returns the verified response.
// A response with an error code becomes an *RcodeError.
func (p *Provider) exchange(ctx context.Context, zone, request string, m *dns.Msg) (*dns.Msg, error) {
	name, algorithm, err := p.key()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout())
	defer cancel()

	c := &dns.Client{Net: "tcp", TsigSecret: map[string]string{name: p.Secret}}
	conn, err := c.DialContext(ctx, p.Server)
	if err != nil {
		return nil, fmt.Errorf("rfc2136: connecting to %s for zone %s: %w", p.Server, zone, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	m.SetTsig(name, algorithm, fudge, time.Now().Unix())
	r, _, err := c.ExchangeWithConnContext(ctx, m, conn)
	if r != nil && (r.Rcode != dns.RcodeSuccess || tsigError(r) != 0) {
		return nil, &RcodeError{Server: p.Server, Zone: zone, Request: request, Rcode: r.Rcode, TSIGError: tsigError(r)}
	}
	if ctxErr := ctx.Err(); err != nil && ctxErr != nil {
		return nil, fmt.Errorf("rfc2136: %s for zone %s at %s: %w", request, zone, p.Server, ctxErr)
	}
	if err != nil {
		return nil, fmt.Errorf("rfc2136: %s for zone %s at %s: %w", request, zone, p.Server, err)
	}
	return r, nil
}

func tsigError(m *dns.Msg) uint16 {
	if t := m.IsTsig(); t != nil {
		return t.Error
	}
	return 0
}

// update sends the update message m for zone (RFC 2136 section 2).
func (p *Provider) update(ctx context.Context, zone string, m *dns.Msg) error {
	_, err := p.exchange(ctx, zone, "update", m)
	return err
}

// lookup queries the server for the records of type typ at owner.
func (p *Provider) lookup(ctx context.Context, zone, owner, typ string) ([]dns.RR, error) {
	t, err := rrconv.Type(typ)
	if err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	m.SetQuestion(owner, t)
	m.RecursionDesired = false

	r, err := p.exchange(ctx, zone, "query", m)
	var rcodeErr *RcodeError
	if errors.As(err, &rcodeErr) && rcodeErr.Rcode == dns.RcodeNameError && rcodeErr.TSIGError == 0 {
		return nil, nil // NXDOMAIN: the name has no records
	}
	if err != nil {
		return nil, err
	}

	var rrs []dns.RR
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == t && strings.EqualFold(rr.Header().Name, owner) {
			rrs = append(rrs, rr)
		}
	}
	return rrs, nil
}

// transfer returns all records of zone by AXFR (RFC 5936), signed with the
// key. The SOA record comes once.
func (p *Provider) transfer(ctx context.Context, zone string) ([]dns.RR, error) {
	// A signed SOA query first turns a wrong key or zone into an
	// *RcodeError with the server's codes, which the transfer below would
	// report only as a number.
	soa := new(dns.Msg)
	soa.SetQuestion(zone, dns.TypeSOA)
	if _, err := p.exchange(ctx, zone, "query", soa); err != nil {
		return nil, err
	}

	name, algorithm, err := p.key()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout())
	defer cancel()
	conn, err := new(net.Dialer).DialContext(ctx, "tcp", p.Server)
	if err != nil {
		return nil, fmt.Errorf("rfc2136: connecting to %s for zone %s: %w", p.Server, zone, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	deadline, _ := ctx.Deadline()
	wait := time.Until(deadline)
	tr := &dns.Transfer{
		Conn:         &dns.Conn{Conn: conn},
		TsigSecret:   map[string]string{name: p.Secret},
		ReadTimeout:  wait,
		WriteTimeout: wait,
	}
	m := new(dns.Msg)
	m.SetAxfr(zone)
	m.SetTsig(name, algorithm, fudge, time.Now().Unix())
	envelopes, err := tr.In(m, p.Server)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("rfc2136: zone transfer of %s from %s: %w", zone, p.Server, err)
	}
	return collect(ctx, zone, p.Server, envelopes)
}

// collect reads the transfer's messages until the closing SOA record.
func collect(ctx context.Context, zone, server string, envelopes chan *dns.Envelope) ([]dns.RR, error) {
	var rrs []dns.RR
	var failed error
	for env := range envelopes {
		if env.Error != nil && failed == nil {
			failed = env.Error
		}
		rrs = append(rrs, env.RR...)
	}
	if failed != nil {
		if ctx.Err() != nil {
			failed = ctx.Err()
		}
		return nil, fmt.Errorf("rfc2136: zone transfer of %s from %s failed (the server must allow transfers to the key: allow-transfer in BIND, an acl with action transfer in Knot): %w", zone, server, failed)
	}
	if len(rrs) > 1 && rrs[len(rrs)-1].Header().Rrtype == dns.TypeSOA {
		rrs = rrs[:len(rrs)-1]
	}
	return rrs, nil
}
