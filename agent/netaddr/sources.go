package netaddr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/agent/portmap"
)

// Errors that a RouterSource returns, possibly wrapped, when the router
// cannot report a public IPv4 address.
var (
	// ErrNoIPv4: the router has no IPv4 WAN address, as on a DS-Lite line.
	ErrNoIPv4 = errors.New("router has no IPv4 WAN address")

	// ErrNoPublicIPv4: the router reports no WAN address, because it has
	// none or because the one it has is not public. miniupnpd 2.3.1
	// hides private and shared (CGNAT) addresses, with the NAT-PMP result
	// code 3 (Network Failure). The router source returns it, wrapped,
	// for portmap.ErrNoExternalIPv4.
	ErrNoPublicIPv4 = errors.New("router reports no public IPv4 WAN address")
)

// IPv4Source is one way to learn the box's public IPv4 address.
type IPv4Source interface {
	// Name identifies the source in logs and in the state, such as
	// "router" or "dns:myip.opendns.com@208.67.222.222:53".
	Name() string

	// IPv4 returns the address from which the source received the
	// request.
	IPv4(ctx context.Context) (netip.Addr, error)
}

// RouterSource is the home router, asked for its WAN address over UPnP IGD,
// NAT-PMP or PCP. The port mapping client satisfies it.
type RouterSource interface {
	// ExternalIPv4 returns the router's WAN address, even a private or
	// shared one. The unspecified address 0.0.0.0, or ErrNoIPv4, means
	// the router has none. ErrNoPublicIPv4 or portmap.ErrNoExternalIPv4
	// means that it reports none, maybe because its address is not public.
	ExternalIPv4(ctx context.Context) (netip.Addr, error)
}

// Router turns a RouterSource into an IPv4Source named "router". The source
// returns ErrNoIPv4 when the router reports 0.0.0.0.
func Router(r RouterSource) IPv4Source { return routerSource{r} }

type routerSource struct{ r RouterSource }

func (routerSource) Name() string { return "router" }

func (s routerSource) IPv4(ctx context.Context) (netip.Addr, error) {
	a, err := s.r.ExternalIPv4(ctx)
	if errors.Is(err, portmap.ErrNoExternalIPv4) {
		return netip.Addr{}, fmt.Errorf("%w: %w", ErrNoPublicIPv4, err)
	}
	if err != nil {
		return netip.Addr{}, err
	}
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() {
		return netip.Addr{}, ErrNoIPv4
	}
	if !a.Is4() {
		return netip.Addr{}, fmt.Errorf("router returned %s as its WAN address, not an IPv4 address", a)
	}
	return a, nil
}

// DNSSource queries a DNS server for a name whose answer is the address the
// query came from. OpenDNS and Google run such names; see OpenDNS and
// GoogleDNS for the usual ones.
type DNSSource struct {
	// Server is the host:port of the server to ask directly, with no
	// resolver in between (a resolver would see its own address).
	Server string

	// Query is the name to ask for, such as "myip.opendns.com.".
	Query string

	// Type is dns.TypeA for an A answer, or dns.TypeTXT for a TXT answer
	// whose first string is the address.
	Type uint16

	// Timeout bounds one query. Zero means 3 seconds.
	Timeout time.Duration
}

// OpenDNS returns the source that queries server for "myip.opendns.com. A".
// The usual server is OpenDNSServer.
func OpenDNS(server string) *DNSSource {
	return &DNSSource{Server: server, Query: "myip.opendns.com.", Type: dns.TypeA}
}

// GoogleDNS returns the source that queries server for
// "o-o.myaddr.l.google.com. TXT". The usual server is GoogleServer.
func GoogleDNS(server string) *DNSSource {
	return &DNSSource{Server: server, Query: "o-o.myaddr.l.google.com.", Type: dns.TypeTXT}
}

// Public servers of the DNS sources, by address so that no resolver is
// needed to reach them.
const (
	OpenDNSServer = "208.67.222.222:53" // resolver1.opendns.com
	GoogleServer  = "216.239.32.10:53"  // ns1.google.com
)

// DefaultDNSSources returns the OpenDNS and Google sources at their public
// servers. Each query shows the box's public address to that company.
func DefaultDNSSources() []IPv4Source {
	return []IPv4Source{OpenDNS(OpenDNSServer), GoogleDNS(GoogleServer)}
}

// Name returns "dns:QUERY@SERVER".
func (s *DNSSource) Name() string { return "dns:" + s.Query + "@" + s.Server }

// IPv4 sends the query over UDP from an IPv4 socket, so that the server sees
// the IPv4 address even on a box that prefers IPv6.
func (s *DNSSource) IPv4(ctx context.Context) (netip.Addr, error) {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 3 * time.Second
	}
	c := &dns.Client{Net: "udp4", Timeout: timeout}

	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(s.Query), s.Type)
	m.RecursionDesired = false

	r, _, err := c.ExchangeContext(ctx, m, s.Server)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("querying %s for %s: %w", s.Server, s.Query, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return netip.Addr{}, fmt.Errorf("querying %s for %s: server returned %s", s.Server, s.Query, dns.RcodeToString[r.Rcode])
	}
	return s.addressFrom(r)
}

func (s *DNSSource) addressFrom(r *dns.Msg) (netip.Addr, error) {
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(rr.A); ok {
				return a.Unmap(), nil
			}
		case *dns.TXT:
			if len(rr.Txt) > 0 {
				return parseIPv4(rr.Txt[0])
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("querying %s for %s: response contains no %s record", s.Server, s.Query, dns.TypeToString[s.Type])
}

// HTTPSource fetches a URL whose body is the caller's address as text, such
// as "https://api.ipify.org" or "https://ipv4.icanhazip.com".
type HTTPSource struct {
	URL string

	// Client sends the request. Nil means a client with a 10-second
	// timeout that dials IPv4 only.
	Client *http.Client
}

// Name returns "http:URL".
func (s *HTTPSource) Name() string { return "http:" + s.URL }

// maxBody bounds the body read from an HTTP source: an address with some
// whitespace fits many times over.
const maxBody = 256

// IPv4 fetches the URL and parses the trimmed body as an IPv4 address.
func (s *HTTPSource) IPv4(ctx context.Context) (netip.Addr, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address URL %q is invalid: %w", s.URL, err)
	}
	resp, err := s.client().Do(req)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("fetching %s: %w", s.URL, err)
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		return netip.Addr{}, fmt.Errorf("fetching %s: server returned %s", s.URL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("reading %s: %w", s.URL, err)
	}
	return parseIPv4(string(body))
}

func (s *HTTPSource) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp4", addr)
		},
		TLSHandshakeTimeout: 5 * time.Second,
	}
	return &http.Client{Transport: transport, Timeout: 10 * time.Second}
}

// parseIPv4 parses text from an outside source, which is untrusted: it must
// be exactly one IPv4 address, apart from surrounding whitespace.
func parseIPv4(text string) (netip.Addr, error) {
	text = strings.TrimSpace(text)
	a, err := netip.ParseAddr(text)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("source returned %q, not an IP address", truncate(text, 64))
	}
	a = a.Unmap()
	if !a.Is4() {
		return netip.Addr{}, fmt.Errorf("source returned %s, not an IPv4 address", a)
	}
	return a, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
