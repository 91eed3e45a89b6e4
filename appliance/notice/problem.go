package notice

import (
	"strings"
	"time"

	"github.com/heimwolke/heimwolke/packages/control"
)

// FailureGrace is how long a renewal may keep failing before the owner gets
// a notice while the certificate is still far from expiry. The agent retries
// with backoff, and short failures (a router restart, a brief DNS outage)
// are expected to pass within that time.
const FailureGrace = 24 * time.Hour

// missingGrace is how long the agent may fail to get the first certificate
// before the owner gets a notice. Right after the setup the agent reports
// the certificate as missing while it is still being issued.
const missingGrace = time.Hour

// Problem kinds, the keys under which the state records sent notices.
const (
	// kindExpiring is a certificate that the agent flags with
	// ExpiryWarning: it expires within 14 days, has expired, or has not
	// been issued after missingGrace of failures.
	kindExpiring = "certificate_expiring"
	// kindFailing is a renewal that has failed for longer than
	// FailureGrace while the certificate is still valid for a while.
	kindFailing = "certificate_renewal_failing"
)

// Reasons for a failed renewal, each with a plain explanation and a hint in
// the catalog ("notice.reason.REASON").
const (
	reasonUnreachable   = "unreachable"    // the CA could not connect to the box
	reasonDNS           = "dns"            // a name does not resolve to the box
	reasonDNSProvider   = "dns_provider"   // the DNS provider rejected the update
	reasonRateLimit     = "rate_limit"     // the CA's rate limit
	reasonCAUnreachable = "ca_unreachable" // the box could not connect to the CA
	reasonOther         = "other"
)

// problem is the subject of one notice.
type problem struct {
	kind string
	// variant selects the subject and introduction from the catalog:
	// "expiring", "expired", "missing" or "failing".
	variant string
	// reason is one of the reason constants, empty without an error.
	reason string
	cert   control.CertificateStatus
	// errorSince is when the Notifier first saw the renewal error, zero
	// without one.
	errorSince time.Time
}

// classify returns the certificate's problem at now, nil when there is none.
// errorSince is when the current renewal error was first seen, zero when
// there is none.
func classify(c *control.CertificateStatus, errorSince time.Time, now time.Time) *problem {
	p := &problem{cert: *c, errorSince: errorSince}
	if c.LastError != "" {
		p.reason = classifyError(c.LastError)
	}

	switch {
	case c.ExpiryWarning && c.NotAfter.IsZero():
		if c.LastError == "" || errorSince.IsZero() || now.Sub(errorSince) < missingGrace {
			return nil
		}
		p.kind, p.variant = kindExpiring, "missing"
	case c.ExpiryWarning && !now.Before(c.NotAfter):
		p.kind, p.variant = kindExpiring, "expired"
	case c.ExpiryWarning:
		p.kind, p.variant = kindExpiring, "expiring"
	case c.LastError != "" && !errorSince.IsZero() && now.Sub(errorSince) >= FailureGrace:
		p.kind, p.variant = kindFailing, "failing"
	default:
		return nil
	}
	return p
}

// errorPatterns maps fragments of the agent's error text to reasons, first
// match wins. The texts come from ACME problem documents (RFC 8555 section
// 6.7 lists the urn:ietf:params:acme:error types), from Let's Encrypt's
// validation details, and from Go's net package.
var errorPatterns = []struct {
	fragment string
	reason   string
}{
	{"acme:error:ratelimited", reasonRateLimit},
	{"too many certificates", reasonRateLimit},
	{"acme:error:dns", reasonDNS},
	{"nxdomain", reasonDNS},
	{"no valid a records", reasonDNS},
	{"no valid aaaa records", reasonDNS},
	{"acme:error:connection", reasonUnreachable},
	{"acme:error:tls", reasonUnreachable},
	{"timeout during connect", reasonUnreachable},
	{"acme:error:unauthorized", reasonDNS},
	{"no such host", reasonCAUnreachable},
	{"connection refused", reasonCAUnreachable},
	{"i/o timeout", reasonCAUnreachable},
	{"network is unreachable", reasonCAUnreachable},
	{"deadline exceeded", reasonCAUnreachable},
	{"tsig", reasonDNSProvider},
	{"badkey", reasonDNSProvider},
	{"badsig", reasonDNSProvider},
	{"notauth", reasonDNSProvider},
	{"refused", reasonDNSProvider},
	{"unauthorized", reasonDNSProvider},
	{"forbidden", reasonDNSProvider},
	{"token", reasonDNSProvider},
}

// classifyError returns the reason for the agent's error text.
//
// NOTE: the patterns match common texts of Let's Encrypt, Pebble, the DNS
// providers and Go; an unknown text gets reasonOther and the generic hints.
func classifyError(text string) string {
	lower := strings.ToLower(text)
	for _, p := range errorPatterns {
		if strings.Contains(lower, p.fragment) {
			return p.reason
		}
	}
	return reasonOther
}
