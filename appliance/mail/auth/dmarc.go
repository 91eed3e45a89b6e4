package auth

import (
	"context"
	"errors"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"
)

// DMARCResult is the DMARC evaluation of one message (RFC 7489 section 6.6).
type DMARCResult struct {
	// Result is "pass", "fail", "none" (no policy published), "temperror"
	// or "permerror", as in RFC 8601 section 2.7.7.
	Result string
	// FromDomain is the domain of the author address in From.
	FromDomain string
	// Policy is the policy that applies to this message after sp= and
	// pct=; empty unless Result is "fail".
	Policy dmarc.Policy
}

// evaluateDMARC looks up the policy of the From domain and checks whether
// SPF or DKIM passed for an aligned domain (RFC 7489 section 3.1).
func (c *Checker) evaluateDMARC(ctx context.Context, header []byte, spfResult spf.Result, spfDomain string, verifications []*dkim.Verification) DMARCResult {
	from, err := fromDomain(header)
	if err != nil {
		c.logger().Debug("dmarc skipped", "err", err)
		return DMARCResult{Result: "permerror"}
	}
	res := DMARCResult{FromDomain: from}

	record, subdomain, err := c.lookupDMARC(ctx, from)
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		res.Result = "none"
		return res
	case dmarc.IsTempFail(err):
		res.Result = "temperror"
		return res
	case err != nil:
		res.Result = "permerror"
		return res
	}

	if spfResult == spf.Pass && aligned(spfDomain, from, record.SPFAlignment) {
		res.Result = "pass"
		return res
	}
	for _, v := range verifications {
		if v.Err == nil && aligned(v.Domain, from, record.DKIMAlignment) {
			res.Result = "pass"
			return res
		}
	}

	res.Result = "fail"
	res.Policy = c.applicablePolicy(record, subdomain)
	return res
}

// lookupDMARC queries _dmarc.DOMAIN and, when that has no record, the
// organizational domain's record (RFC 7489 section 6.6.3). subdomain
// reports whether the record came from the organizational domain of a
// subdomain, so that sp= applies.
func (c *Checker) lookupDMARC(ctx context.Context, domain string) (record *dmarc.Record, subdomain bool, err error) {
	opts := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) {
		return c.resolver().LookupTXT(ctx, name)
	}}
	record, err = dmarc.LookupWithOptions(domain, opts)
	if !errors.Is(err, dmarc.ErrNoPolicy) {
		return record, false, err
	}
	org := organizationalDomain(domain)
	if org == domain {
		return nil, false, err
	}
	record, err = dmarc.LookupWithOptions(org, opts)
	return record, true, err
}

// applicablePolicy returns the policy for a failing message: sp= for a
// subdomain (RFC 7489 section 6.3), lowered by one step when pct= excludes
// this message (section 6.6.4).
func (c *Checker) applicablePolicy(record *dmarc.Record, subdomain bool) dmarc.Policy {
	policy := record.Policy
	if subdomain && record.SubdomainPolicy != "" {
		policy = record.SubdomainPolicy
	}
	if record.Percent == nil || *record.Percent >= 100 || c.sample(*record.Percent) {
		return policy
	}
	switch policy {
	case dmarc.PolicyReject:
		return dmarc.PolicyQuarantine
	case dmarc.PolicyQuarantine:
		return dmarc.PolicyNone
	}
	return policy
}

// aligned reports whether an authenticated domain is aligned with the From
// domain (RFC 7489 section 3.1): equal in strict mode, or sharing the
// organizational domain in relaxed mode, the default.
func aligned(authenticated, from string, mode dmarc.AlignmentMode) bool {
	authenticated = strings.ToLower(strings.TrimSuffix(authenticated, "."))
	if authenticated == "" {
		return false
	}
	if authenticated == from {
		return true
	}
	if mode == dmarc.AlignmentStrict {
		return false
	}
	return organizationalDomain(authenticated) == organizationalDomain(from)
}

// organizationalDomain returns the public suffix plus one label (RFC 7489
// section 3.2), using the public suffix list compiled into x/net.
func organizationalDomain(domain string) string {
	org, err := publicsuffix.EffectiveTLDPlusOne(domain)
	if err != nil {
		return domain
	}
	return org
}
