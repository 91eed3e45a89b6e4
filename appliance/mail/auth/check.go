package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/mail"
	"strings"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
)

// maxDKIMSignatures caps the signatures verified per message, because each
// one costs a DNS query and a public-key operation.
const maxDKIMSignatures = 5

// Checker runs SPF, DKIM and DMARC on inbound messages. The zero value is
// not usable: set AuthServID.
type Checker struct {
	// AuthServID is the authserv-id of the Authentication-Results field
	// (RFC 8601 section 2.5): the box's mail host name.
	AuthServID string
	// Resolver sends the DNS queries. Nil means net.DefaultResolver.
	Resolver Resolver
	// Logger receives DNS failures. Nil means slog.Default().
	Logger *slog.Logger
	// Sample decides whether a DMARC policy with pct=N applies to one
	// message (RFC 7489 section 6.6.4). Nil means a random draw.
	Sample func(pct int) bool
}

// Envelope contains the SMTP session's data about a message before DATA.
type Envelope struct {
	// IP is the client's address.
	IP net.IP
	// Helo is the name in the client's EHLO or HELO.
	Helo string
	// MailFrom is the envelope sender; empty for a bounce.
	MailFrom string
}

// Result contains the outcome of the checks on one message.
type Result struct {
	SPF       spf.Result
	SPFDomain string
	// DKIM contains one verification per signature checked.
	DKIM  []*dkim.Verification
	DMARC DMARCResult
	// Disposition is the action to take on the message.
	Disposition Disposition
	// Header is the complete Authentication-Results field with CRLF,
	// ready to prepend to the message.
	Header string
}

// Check runs the checks on a message as received and decides its
// disposition: Reject for a DMARC failure under p=reject, Junk for any
// other DMARC, SPF or DKIM failure, Accept otherwise. header is the
// message's header section, with or without the empty line that ends it,
// and body is the rest, so that header followed by body is the message.
// Check reads body once, for DKIM, and keeps only header in memory.
func (c *Checker) Check(ctx context.Context, env Envelope, header []byte, body io.Reader) Result {
	var res Result
	res.SPF, res.SPFDomain = c.checkSPF(ctx, env)
	res.DKIM = c.verifyDKIM(ctx, io.MultiReader(bytes.NewReader(header), body))
	res.DMARC = c.evaluateDMARC(ctx, header, res.SPF, res.SPFDomain, res.DKIM)
	res.Disposition = decide(res)
	res.Header = c.formatHeader(res)
	return res
}

func (c *Checker) resolver() Resolver {
	if c.Resolver == nil {
		return net.DefaultResolver
	}
	return c.Resolver
}

func (c *Checker) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

// checkSPF checks the MAIL FROM identity, or the HELO identity for a bounce
// (RFC 7208 section 2.4).
func (c *Checker) checkSPF(ctx context.Context, env Envelope) (spf.Result, string) {
	domain := env.Helo
	if _, d, ok := strings.Cut(env.MailFrom, "@"); ok {
		domain = d
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	res, err := spf.CheckHostWithSender(env.IP, env.Helo, env.MailFrom,
		spf.WithContext(ctx), spf.WithResolver(c.resolver()))
	if err != nil && res == spf.TempError {
		c.logger().Info("spf check failed", "domain", domain, "err", err)
	}
	return res, strings.ToLower(domain)
}

func (c *Checker) verifyDKIM(ctx context.Context, msg io.Reader) []*dkim.Verification {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	opts := &dkim.VerifyOptions{
		MaxVerifications: maxDKIMSignatures,
		LookupTXT: func(name string) ([]string, error) {
			return c.resolver().LookupTXT(ctx, name)
		},
	}
	verifications, err := dkim.VerifyWithOptions(msg, opts)
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		c.logger().Info("dkim verification failed", "err", err)
	}
	return verifications
}

// decide maps the results to a disposition.
func decide(res Result) Disposition {
	switch {
	case res.DMARC.Result == "fail" && res.DMARC.Policy == dmarc.PolicyReject:
		return Reject
	case res.DMARC.Result == "fail":
		return Junk
	case res.DMARC.Result == "pass":
		return Accept
	case res.SPF == spf.Fail:
		return Junk
	}
	passed, failed := false, false
	for _, v := range res.DKIM {
		if v.Err == nil {
			passed = true
		} else if dkim.IsPermFail(v.Err) || !dkim.IsTempFail(v.Err) {
			failed = true
		}
	}
	if failed && !passed {
		return Junk
	}
	return Accept
}

// formatHeader writes the Authentication-Results field (RFC 8601 section
// 2.2) for the SPF, DKIM and DMARC results.
func (c *Checker) formatHeader(res Result) string {
	results := []authres.Result{&authres.SPFResult{
		Value: authres.ResultValue(res.SPF),
		From:  res.SPFDomain,
	}}
	if len(res.DKIM) == 0 {
		results = append(results, &authres.DKIMResult{Value: authres.ResultNone})
	}
	for _, v := range res.DKIM {
		results = append(results, &authres.DKIMResult{
			Value:  dkimResultValue(v.Err),
			Domain: v.Domain,
		})
	}
	results = append(results, &authres.DMARCResult{
		Value: authres.ResultValue(res.DMARC.Result),
		From:  res.DMARC.FromDomain,
	})
	return "Authentication-Results: " + authres.Format(c.AuthServID, results) + "\r\n"
}

// dkimResultValue maps a verification error to the result names of RFC
// 8601 section 2.7.1.
func dkimResultValue(err error) authres.ResultValue {
	switch {
	case err == nil:
		return authres.ResultPass
	case dkim.IsTempFail(err):
		return authres.ResultTempError
	case dkim.IsPermFail(err):
		return authres.ResultPermError
	}
	return authres.ResultFail
}

// fromDomain returns the domain of the single author address in the From
// field of header, lowered. RFC 7489 section 6.6.1 leaves messages with
// zero or several From addresses to local policy, and this returns an
// error for them.
func fromDomain(header []byte) (string, error) {
	// The added CRLF ends a header section that lacks its empty line.
	// After a header section that has one, it becomes part of the body.
	m, err := mail.ReadMessage(io.MultiReader(bytes.NewReader(header), strings.NewReader("\r\n")))
	if err != nil {
		return "", fmt.Errorf("parsing message header: %w", err)
	}
	froms := m.Header["From"]
	if len(froms) != 1 {
		return "", fmt.Errorf("message has %d From fields, want 1", len(froms))
	}
	addrs, err := mail.ParseAddressList(froms[0])
	if err != nil {
		return "", fmt.Errorf("parsing From %q: %w", froms[0], err)
	}
	if len(addrs) != 1 {
		return "", fmt.Errorf("From %q has %d addresses, want 1", froms[0], len(addrs))
	}
	_, domain, ok := strings.Cut(addrs[0].Address, "@")
	if !ok {
		return "", fmt.Errorf("From address %q has no domain", addrs[0].Address)
	}
	return strings.ToLower(strings.TrimSuffix(domain, ".")), nil
}

func (c *Checker) sample(pct int) bool {
	if c.Sample != nil {
		return c.Sample(pct)
	}
	return rand.IntN(100) < pct
}
