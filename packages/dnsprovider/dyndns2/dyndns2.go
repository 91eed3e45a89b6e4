// Package dyndns2 updates a host name's A and AAAA records with the dynDNS2
// protocol: an HTTP GET of the provider's update URL with the host name and
// the addresses as query parameters, Basic auth, and a return code such as
// "good" or "badauth" in the body. deSEC (update.dedyn.io) and many other
// dynamic DNS providers speak it.
package dyndns2

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/heimwolke/heimwolke/packages/version"
)

// DeSECEndpoint is deSEC's update URL.
const DeSECEndpoint = "https://update.dedyn.io/"

// Timeout limits one update request, including reading the response.
const Timeout = 30 * time.Second

// maxBody is the size of the response body that Update reads. Return codes
// take one short line per host name.
const maxBody = 4096

// Provider is an account at a dynDNS2 provider.
type Provider struct {
	// Endpoint is the full update URL, for example DeSECEndpoint or
	// https://members.example.net/nic/update.
	Endpoint string
	// Username and Password are the account's credentials for Basic auth.
	// At deSEC, the username is the domain name and the password is a
	// token.
	Username, Password string
	// UserAgent is the User-Agent header, which some providers require to
	// name the client and its version. Empty means "heimwolke/VERSION".
	UserAgent string
	// Client sends the requests. Nil means http.DefaultClient.
	Client *http.Client
}

// Result is a successful update.
type Result struct {
	// Code is "good" when the provider changed the records, or "nochg"
	// when they had the addresses already.
	Code string
	// Addresses is the rest of the response line, usually the addresses
	// that the provider stored.
	Addresses string
}

// Sentinel errors that an *Error unwraps to. Both mean that the client must
// stop sending updates until someone changes the account or the settings.
var (
	// ErrBadAuth is the return code badauth, or HTTP status 401: the
	// username or the password is wrong.
	ErrBadAuth = errors.New("dyndns2: the provider rejected the username or password")
	// ErrAbuse is the return code abuse: the provider blocked the host
	// name for too many updates.
	ErrAbuse = errors.New("dyndns2: the provider blocked updates for abuse")
)

// Error is a failed update: a return code other than good and nochg, or an
// HTTP status other than 200 without a return code.
type Error struct {
	// Endpoint and Hostname identify the update.
	Endpoint, Hostname string
	// Code is the provider's return code, for example "badauth" or "911",
	// or empty when the response contained none.
	Code string
	// Status is the HTTP status code.
	Status int
	// RetryAfter is the wait that the provider requested with a
	// Retry-After header, or zero.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	reason := e.Code
	if reason == "" {
		reason = "HTTP status " + strconv.Itoa(e.Status)
	}
	return fmt.Sprintf("dyndns2: updating %s at %s failed with %s: %s", e.Hostname, e.Endpoint, reason, e.hint())
}

func (e *Error) hint() string {
	switch {
	case e.Code == "badauth" || (e.Code == "" && e.Status == http.StatusUnauthorized):
		return "check the username and the password or token"
	case e.Code == "abuse":
		return "the provider blocked the host name: stop updating and ask the provider to unblock it"
	case e.Code == "notfqdn":
		return "the host name is not a fully qualified domain name"
	case e.Code == "nohost":
		return "the account has no such host name: check the host name"
	case e.Code == "numhost":
		return "too many host names in one request"
	case e.Code == "badagent":
		return "the provider rejected this client's User-Agent or request"
	case e.Code == "dnserr" || e.Code == "911":
		return "the provider has a problem on its side: try again in a few minutes"
	case e.Status == http.StatusTooManyRequests:
		return "too many requests: wait before the next update"
	}
	return "check the update URL"
}

// Unwrap returns ErrBadAuth or ErrAbuse for those codes, or nil.
func (e *Error) Unwrap() error {
	switch {
	case e.Code == "badauth" || (e.Code == "" && e.Status == http.StatusUnauthorized):
		return ErrBadAuth
	case e.Code == "abuse":
		return ErrAbuse
	}
	return nil
}

// Retryable reports whether the same update may succeed later without a
// change of settings: for dnserr, 911, HTTP 429 and HTTP 5xx. The client
// should wait at least RetryAfter, and several minutes after 911.
func (e *Error) Retryable() bool {
	switch {
	case e.Code == "dnserr" || e.Code == "911":
		return true
	case e.Code != "":
		return false
	}
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// Update points hostname at ipv4 and ipv6. An invalid (zero) address leaves
// that family out of the request: deSEC then keeps the record as it is
// ("preserve"), while other providers may use the address that the request
// came from, or delete the record. It returns an *Error for a failed update;
// network errors and timeouts come back as other errors and are worth a
// retry.
func (p *Provider) Update(ctx context.Context, hostname string, ipv4, ipv6 netip.Addr) (Result, error) {
	req, err := p.request(ctx, hostname, ipv4, ipv6)
	if err != nil {
		return Result{}, err
	}

	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	client := p.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		// The URL in err contains no password: Basic auth goes in a header.
		return Result{}, fmt.Errorf("dyndns2: updating %s: %w", hostname, err)
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return Result{}, fmt.Errorf("dyndns2: reading the response to the update of %s from %s: %w", hostname, p.Endpoint, err)
	}
	return p.parse(hostname, resp, string(body))
}

// request builds the GET request of the update.
func (p *Provider) request(ctx context.Context, hostname string, ipv4, ipv6 netip.Addr) (*http.Request, error) {
	u, err := url.Parse(p.Endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("dyndns2: update URL %q is invalid: use a URL such as %s", p.Endpoint, DeSECEndpoint)
	}
	if u.User != nil {
		return nil, fmt.Errorf("dyndns2: update URL for %s contains credentials: give them as username and password instead", u.Host)
	}
	hostname = strings.TrimSuffix(hostname, ".")
	if hostname == "" {
		return nil, errors.New("dyndns2: host name is empty")
	}
	if ipv4.IsValid() && !ipv4.Unmap().Is4() {
		return nil, fmt.Errorf("dyndns2: %s is not an IPv4 address", ipv4)
	}
	if ipv6.IsValid() && !ipv6.Is6() {
		return nil, fmt.Errorf("dyndns2: %s is not an IPv6 address", ipv6)
	}

	q := u.Query()
	q.Set("hostname", hostname)
	deSEC := isDeSEC(u.Hostname())
	switch {
	case ipv4.IsValid():
		q.Set("myip", ipv4.Unmap().String())
	case deSEC:
		q.Set("myip", "preserve")
	}
	switch {
	case ipv6.IsValid():
		q.Set("myipv6", ipv6.String())
	case deSEC:
		q.Set("myipv6", "preserve")
	}
	u.RawQuery = q.Encode()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("dyndns2: building the update of %s: %w", hostname, err)
	}
	req.SetBasicAuth(p.Username, p.Password)
	req.Header.Set("User-Agent", p.userAgent())
	return req, nil
}

// isDeSEC reports whether host is one of deSEC's update hosts, which take
// "preserve" for an address to keep and otherwise use the request's source
// address or delete the record.
func isDeSEC(host string) bool {
	return host == "update.dedyn.io" || host == "update6.dedyn.io"
}

func (p *Provider) userAgent() string {
	if p.UserAgent != "" {
		return p.UserAgent
	}
	return "heimwolke/" + version.Version
}

// parse reads the return code from the first line of body.
func (p *Provider) parse(hostname string, resp *http.Response, body string) (Result, error) {
	line, _, _ := bufio.NewReader(strings.NewReader(body)).ReadLine()
	code, rest, _ := strings.Cut(strings.TrimSpace(string(line)), " ")

	if resp.StatusCode == http.StatusOK && (code == "good" || code == "nochg") {
		return Result{Code: code, Addresses: strings.TrimSpace(rest)}, nil
	}
	e := &Error{Endpoint: p.Endpoint, Hostname: hostname, Status: resp.StatusCode}
	if isReturnCode(code) {
		e.Code = code
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return Result{}, e
}

// isReturnCode reports whether code is a dynDNS2 error code.
func isReturnCode(code string) bool {
	switch code {
	case "badauth", "notfqdn", "nohost", "numhost", "abuse", "badagent", "dnserr", "911", "!donator", "badsys":
		return true
	}
	return false
}
