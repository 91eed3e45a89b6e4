// Package mailconfig serves what mail clients and sending servers fetch over
// HTTPS for one mail domain: Thunderbird's autoconfig file, Outlook's
// autodiscover response (the 2006 POX schema) and the MTA-STS policy (RFC 8461).
// It does not serve the Apple configuration profile or Exchange ActiveSync.
package mailconfig

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
)

// Paths that the handler serves, as clients request them.
const (
	// autoconfigWellKnownPath is requested on the mail domain itself.
	autoconfigWellKnownPath = "/.well-known/autoconfig/mail/config-v1.1.xml"
	// autoconfigHostPath is requested on autoconfig.DOMAIN.
	autoconfigHostPath = "/mail/config-v1.1.xml"
	// autodiscoverPath is compared without regard to case, because Outlook
	// versions send "/autodiscover/autodiscover.xml" and
	// "/Autodiscover/Autodiscover.xml".
	autodiscoverPath = "/autodiscover/autodiscover.xml"
	// mtaSTSPath is fixed by RFC 8461 section 3.2.
	mtaSTSPath = "/.well-known/mta-sts.txt"
)

// Options configures a Handler.
type Options struct {
	// Domain is the mail domain in ASCII (punycode for an IDN), such as
	// "example.org". Required.
	Domain string

	// MailHost is the host name that clients connect to for IMAP and
	// submission. It must be covered by the box's certificate. Default
	// "mail." + Domain.
	MailHost string

	// IMAPPort is the IMAP port with implicit TLS (RFC 8314). Default 993.
	IMAPPort int

	// SubmissionTLSPort is the submission port with implicit TLS
	// (RFC 8314 section 3.3). Default 465.
	SubmissionTLSPort int

	// SubmissionPort is the submission port with STARTTLS (RFC 6409).
	// Default 587.
	SubmissionPort int

	// MTASTSPolicy returns the policy text served at
	// https://mta-sts.DOMAIN/.well-known/mta-sts.txt, as
	// records.MTASTSPolicy writes it. It is called on every request, so a
	// changed policy is served at once. Nil means that the handler serves
	// no MTA-STS policy and Hosts omits mta-sts.DOMAIN.
	MTASTSPolicy func() (string, error)

	// Logger receives policy errors, and rejected requests at Debug level.
	// Nil means slog.Default().
	Logger *slog.Logger
}

// Handler serves the client setup files and the MTA-STS policy of one
// domain. It is safe for concurrent use.
type Handler struct {
	domain   string
	mailHost string

	imapPort          int
	submissionTLSPort int
	submissionPort    int

	mtaSTSPolicy func() (string, error)
	log          *slog.Logger
}

// New returns the handler for opts, or an error that lists every invalid
// option.
func New(opts Options) (*Handler, error) {
	h := &Handler{
		domain:            strings.ToLower(opts.Domain),
		mailHost:          strings.ToLower(strings.TrimSuffix(opts.MailHost, ".")),
		imapPort:          opts.IMAPPort,
		submissionTLSPort: opts.SubmissionTLSPort,
		submissionPort:    opts.SubmissionPort,
		mtaSTSPolicy:      opts.MTASTSPolicy,
		log:               opts.Logger,
	}
	if h.mailHost == "" {
		h.mailHost = "mail." + h.domain
	}
	setDefault(&h.imapPort, 993)
	setDefault(&h.submissionTLSPort, 465)
	setDefault(&h.submissionPort, 587)
	if h.log == nil {
		h.log = slog.Default()
	}
	if err := h.validate(); err != nil {
		return nil, fmt.Errorf("mail client setup for %q: %w", opts.Domain, err)
	}
	return h, nil
}

func setDefault(port *int, value int) {
	if *port == 0 {
		*port = value
	}
}

func (h *Handler) validate() error {
	var errs []error
	if !validHostName(h.domain) {
		errs = append(errs, fmt.Errorf("invalid domain %q: give an ASCII domain name such as example.org, without a trailing dot", h.domain))
	}
	if !validHostName(h.mailHost) {
		errs = append(errs, fmt.Errorf("invalid mail host %q: give an ASCII host name such as mail.example.org", h.mailHost))
	}
	for _, p := range []struct {
		name string
		port int
	}{
		{"IMAP port", h.imapPort},
		{"submission TLS port", h.submissionTLSPort},
		{"submission port", h.submissionPort},
	} {
		if p.port < 1 || p.port > 65535 {
			errs = append(errs, fmt.Errorf("invalid %s %d: use 1 to 65535, or 0 for the default", p.name, p.port))
		}
	}
	return errors.Join(errs...)
}

// validHostName accepts a lowercase ASCII name of letters, digits, '-' and
// '.', with at least two labels of 1 to 63 characters (RFC 1035 section
// 2.3.4), and no leading or trailing dot.
func validHostName(name string) bool {
	if len(name) > 253 || !strings.Contains(name, ".") {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Hosts returns the host names whose requests the handler serves: the
// domain, autoconfig.DOMAIN, autodiscover.DOMAIN and, with an MTA-STS
// policy, mta-sts.DOMAIN. The box's certificate must cover all of them.
func (h *Handler) Hosts() []string {
	hosts := []string{h.domain, "autoconfig." + h.domain, "autodiscover." + h.domain}
	if h.mtaSTSPolicy != nil {
		hosts = append(hosts, "mta-sts."+h.domain)
	}
	return hosts
}

// Match reports whether r is a request that the handler serves, by its
// host and path. Other paths on the same hosts, such as ACME challenges,
// do not match, so that the caller can route them elsewhere.
func (h *Handler) Match(r *http.Request) bool {
	return h.route(r) != nil
}

// ServeHTTP serves a request that Match accepts, and responds 404 Not
// Found to any other.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	serve := h.route(r)
	if serve == nil {
		http.NotFound(w, r)
		return
	}
	serve(w, r)
}

// route returns the function that serves r, or nil when r is not one of
// the handler's requests.
func (h *Handler) route(r *http.Request) http.HandlerFunc {
	host := requestHost(r)
	path := r.URL.Path
	switch {
	case path == autoconfigWellKnownPath && (host == h.domain || host == "autoconfig."+h.domain):
		return h.serveAutoconfig
	case path == autoconfigHostPath && host == "autoconfig."+h.domain:
		return h.serveAutoconfig
	case strings.EqualFold(path, autodiscoverPath) && (host == h.domain || host == "autodiscover."+h.domain):
		return h.serveAutodiscover
	case path == mtaSTSPath && host == "mta-sts."+h.domain && h.mtaSTSPolicy != nil:
		return h.serveMTASTS
	}
	return nil
}

// requestHost returns the host of r without port and trailing dot, in
// lower case.
func requestHost(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// allowMethods responds 405 Method Not Allowed, with an Allow header, unless
// r's method is one of methods. It reports whether the request may go on.
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}
