// Package records lists the DNS records that mail for one domain needs, as
// libdns records for the agent to publish or the admin page to show. They are
// MX, SPF (RFC 7208), DKIM (RFC 6376), DMARC (RFC 7489), MTA-STS (RFC 8461),
// TLS-RPT (RFC 8460), SRV records for clients (RFC 6186, RFC 8314), and the
// autoconfig and autodiscover names.
package records

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libdns/libdns"

	"github.com/heimwolke/heimwolke/appliance/mail/auth"
)

// Params describes the domain and the box's mail host.
type Params struct {
	// Domain is the mail domain in ASCII, such as "example.org".
	// Required.
	Domain string
	// MailHost is the box's host name, which MX, SRV and CNAME records
	// point at, such as "box.example.org". Required.
	MailHost string
	// DKIM are the public key records from auth.Keys.Records. Required.
	DKIM []auth.DKIMRecord
	// SPFInclude, when set, is the relay's SPF include domain, such as
	// "_spf.provider.example": mail sent through the relay then passes
	// SPF. Empty authorizes only the domain's MX hosts.
	SPFInclude string
	// ReportAddress receives DMARC aggregate reports and TLS-RPT reports,
	// such as "postmaster@example.org". Empty requests no reports.
	ReportAddress string
	// MTASTSMode is "enforce", "testing" or "none". Empty means "testing",
	// which reports but does not block while certificates are new.
	MTASTSMode string
	// MTASTSID changes whenever the policy changes, so that senders fetch
	// it again (RFC 8461 section 3.1): 1 to 32 letters and digits.
	// Required.
	MTASTSID string
	// TTL of every record. Default 1 hour.
	TTL time.Duration
}

// mtaSTSMaxAge is the policy's max_age: one week, in seconds. RFC 8461
// section 3.2 recommends weeks once a policy is stable.
const mtaSTSMaxAge = 604800

func (p Params) validate() error {
	var errs []error
	if p.Domain == "" || strings.HasSuffix(p.Domain, ".") {
		errs = append(errs, fmt.Errorf("invalid domain %q: give the domain without a trailing dot", p.Domain))
	}
	if p.MailHost == "" {
		errs = append(errs, errors.New("missing mail host name"))
	}
	if len(p.DKIM) == 0 {
		errs = append(errs, errors.New("missing DKIM key records: pass auth.Keys.Records()"))
	}
	if !validSTSID(p.MTASTSID) {
		errs = append(errs, fmt.Errorf("invalid MTA-STS id %q: use 1 to 32 letters and digits", p.MTASTSID))
	}
	switch p.MTASTSMode {
	case "", "enforce", "testing", "none":
	default:
		errs = append(errs, fmt.Errorf("invalid MTA-STS mode %q: use enforce, testing or none", p.MTASTSMode))
	}
	return errors.Join(errs...)
}

func validSTSID(id string) bool {
	if len(id) < 1 || len(id) > 32 {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// Records returns the records for p. Names are relative to the zone of
// p.Domain ("@" for the domain itself); targets are absolute with a
// trailing dot.
func Records(p Params) ([]libdns.Record, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("listing mail records for %s: %w", p.Domain, err)
	}
	ttl := p.TTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	host := strings.TrimSuffix(p.MailHost, ".") + "."

	recs := []libdns.Record{
		libdns.MX{Name: "@", TTL: ttl, Preference: 10, Target: host},
		libdns.TXT{Name: "@", TTL: ttl, Text: spfText(p.SPFInclude)},
	}
	for _, k := range p.DKIM {
		recs = append(recs, libdns.TXT{Name: k.Selector + "._domainkey", TTL: ttl, Text: k.Text})
	}
	recs = append(recs,
		libdns.TXT{Name: "_dmarc", TTL: ttl, Text: dmarcText(p.ReportAddress)},
		libdns.TXT{Name: "_mta-sts", TTL: ttl, Text: "v=STSv1; id=" + p.MTASTSID},
		libdns.CNAME{Name: "mta-sts", TTL: ttl, Target: host},
	)
	if p.ReportAddress != "" {
		// RFC 8460 section 3.
		recs = append(recs, libdns.TXT{Name: "_smtp._tls", TTL: ttl, Text: "v=TLSRPTv1; rua=mailto:" + p.ReportAddress})
	}
	recs = append(recs,
		// Thunderbird's autoconfig host and Outlook's autodiscover host
		// are served by the box's web server.
		libdns.CNAME{Name: "autoconfig", TTL: ttl, Target: host},
		libdns.CNAME{Name: "autodiscover", TTL: ttl, Target: host},
		// RFC 6186 section 3 with the implicit-TLS services of RFC 8314
		// section 5.1; "_submission" points at 587 with STARTTLS.
		libdns.SRV{Service: "submissions", Transport: "tcp", Name: "@", TTL: ttl, Priority: 0, Weight: 1, Port: 465, Target: host},
		libdns.SRV{Service: "submission", Transport: "tcp", Name: "@", TTL: ttl, Priority: 10, Weight: 1, Port: 587, Target: host},
		libdns.SRV{Service: "imaps", Transport: "tcp", Name: "@", TTL: ttl, Priority: 0, Weight: 1, Port: 993, Target: host},
		// RFC 6186 section 4: the target "." means that plain IMAP is
		// not offered.
		libdns.SRV{Service: "imap", Transport: "tcp", Name: "@", TTL: ttl, Priority: 0, Weight: 0, Port: 0, Target: "."},
	)
	return recs, nil
}

// spfText authorizes the domain's MX hosts and the relay, and fails every
// other sender (RFC 7208 section 5.4 and 5.2).
func spfText(include string) string {
	if include != "" {
		return "v=spf1 mx include:" + include + " -all"
	}
	return "v=spf1 mx -all"
}

// dmarcText requests that receivers quarantine failing mail: with DKIM on every
// message, legitimate mail passes, and quarantine does not lose mail if a
// forwarder breaks a signature (RFC 7489 section 6.3).
func dmarcText(reportAddress string) string {
	text := "v=DMARC1; p=quarantine; adkim=r; aspf=r"
	if reportAddress != "" {
		text += "; rua=mailto:" + reportAddress
	}
	return text
}

// MTASTSPolicy returns the policy text to serve at
// https://mta-sts.DOMAIN/.well-known/mta-sts.txt (RFC 8461 section 3.2),
// with CRLF line endings.
func MTASTSPolicy(p Params) (string, error) {
	if err := p.validate(); err != nil {
		return "", fmt.Errorf("writing MTA-STS policy for %s: %w", p.Domain, err)
	}
	mode := p.MTASTSMode
	if mode == "" {
		mode = "testing"
	}
	return fmt.Sprintf("version: STSv1\r\nmode: %s\r\nmx: %s\r\nmax_age: %d\r\n",
		mode, strings.TrimSuffix(p.MailHost, "."), mtaSTSMaxAge), nil
}
