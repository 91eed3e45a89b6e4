package queue

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heimwolke/heimwolke/packages/control"
)

// result is the outcome of one attempt for one recipient.
type result struct {
	err       error
	permanent bool
	status    string // enhanced status code from the reply, RFC 3463
	remote    string // host:port that gave the reply
	smarthost bool   // the attempt went through the smarthost
}

// sessionTimeout bounds one SMTP session, so a stalled server cannot hold
// a worker forever.
const sessionTimeout = 10 * time.Minute

// attempt delivers msg to rcpts: through the smarthost sh when it is set,
// otherwise to the MX hosts of domain.
func (q *Queue) attempt(ctx context.Context, sh *control.SmarthostSettings, domain, from string, rcpts []string, msg *io.SectionReader) map[string]result {
	if sh != nil {
		return q.attemptSmarthost(ctx, sh, from, rcpts, msg)
	}
	return q.attemptDirect(ctx, domain, from, rcpts, msg)
}

// allResults returns the same result for every recipient.
func allResults(rcpts []string, res result) map[string]result {
	out := map[string]result{}
	for _, r := range rcpts {
		out[r] = res
	}
	return out
}

func (q *Queue) attemptSmarthost(ctx context.Context, sh *control.SmarthostSettings, from string, rcpts []string, msg *io.SectionReader) map[string]result {
	addr := net.JoinHostPort(sh.Host, strconv.Itoa(sh.Port))
	c, err := q.connect(ctx, addr, sh.Host, sh.TLS == control.SmarthostImplicitTLS)
	if err != nil {
		return allResults(rcpts, replyResult(addr, err))
	}
	defer c.Close()

	if sh.TLS == control.SmarthostSTARTTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return allResults(rcpts, result{err: fmt.Errorf("smarthost %s does not offer STARTTLS", addr), remote: addr})
		}
		if err := c.StartTLS(q.tlsConfig(sh.Host, false)); err != nil {
			return allResults(rcpts, result{err: fmt.Errorf("STARTTLS with smarthost %s: %w", addr, err), remote: addr})
		}
	}
	if sh.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", sh.Username, sh.Password, sh.Host)); err != nil {
			return allResults(rcpts, replyResult(addr, fmt.Errorf("logging in to smarthost as %s: %w", sh.Username, err)))
		}
	}
	return transact(c, addr, from, rcpts, msg)
}

// connect dials addr and reads the greeting, over TLS from the start when
// implicitTLS is set (RFC 8314 section 3.3). The client introduces itself
// with the box's host name.
func (q *Queue) connect(ctx context.Context, addr, serverName string, implicitTLS bool) (*smtp.Client, error) {
	conn, err := q.opts.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	conn.SetDeadline(time.Now().Add(sessionTimeout))
	if implicitTLS {
		tc := tls.Client(conn, q.tlsConfig(serverName, false))
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS with %s: %w", addr, err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, serverName)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("greeting from %s: %w", addr, err)
	}
	if err := c.Hello(q.opts.Hostname); err != nil {
		c.Close()
		return nil, fmt.Errorf("EHLO to %s: %w", addr, err)
	}
	return c, nil
}

func (q *Queue) tlsConfig(serverName string, skipVerify bool) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if q.opts.TLSConfig != nil {
		cfg = q.opts.TLSConfig.Clone()
	}
	cfg.ServerName = serverName
	// Opportunistic STARTTLS (RFC 3207 section 4.1) still encrypts when
	// the certificate does not verify, which beats plaintext.
	cfg.InsecureSkipVerify = skipVerify
	return cfg
}

// transact runs MAIL, RCPT and DATA, and returns a result per recipient.
func transact(c *smtp.Client, addr, from string, rcpts []string, msg *io.SectionReader) map[string]result {
	out := map[string]result{}
	if err := c.Mail(from); err != nil {
		return allResults(rcpts, replyResult(addr, fmt.Errorf("MAIL FROM: %w", err)))
	}
	var accepted []string
	for _, r := range rcpts {
		if err := c.Rcpt(r); err != nil {
			out[r] = replyResult(addr, fmt.Errorf("RCPT TO: %w", err))
			continue
		}
		accepted = append(accepted, r)
	}
	if len(accepted) == 0 {
		c.Reset()
		c.Quit()
		return out
	}

	w, err := c.Data()
	if err != nil {
		maps(out, accepted, replyResult(addr, fmt.Errorf("DATA: %w", err)))
		return out
	}
	if _, err := io.Copy(w, io.NewSectionReader(msg, 0, msg.Size())); err != nil {
		maps(out, accepted, replyResult(addr, fmt.Errorf("sending message: %w", err)))
		return out
	}
	if err := w.Close(); err != nil {
		maps(out, accepted, replyResult(addr, fmt.Errorf("end of data: %w", err)))
		return out
	}
	maps(out, accepted, result{remote: addr})
	c.Quit()
	return out
}

func maps(out map[string]result, rcpts []string, res result) {
	for _, r := range rcpts {
		out[r] = res
	}
}

// replyResult classifies an error: a 5xx reply is permanent (RFC 5321
// section 4.2.1), everything else is retried.
func replyResult(addr string, err error) result {
	res := result{err: err, remote: addr}
	var tpErr *textproto.Error
	if errors.As(err, &tpErr) {
		res.permanent = tpErr.Code >= 500 && tpErr.Code < 600
		res.status = enhancedCode(tpErr.Msg)
		if res.status == "" {
			res.status = fmt.Sprintf("%d.0.0", tpErr.Code/100)
		}
	}
	return res
}

// enhancedCode returns the enhanced status code at the start of a reply
// text (RFC 2034 section 4), or "".
func enhancedCode(msg string) string {
	code, _, _ := strings.Cut(msg, " ")
	parts := strings.Split(code, ".")
	if len(parts) != 3 || (parts[0] != "2" && parts[0] != "4" && parts[0] != "5") {
		return ""
	}
	for _, p := range parts[1:] {
		if _, err := strconv.Atoi(p); err != nil || len(p) > 3 {
			return ""
		}
	}
	return code
}

// attemptDirect delivers to the MX hosts of domain in order of preference,
// with STARTTLS whenever offered, as the domain's MTA-STS policy requires.
func (q *Queue) attemptDirect(ctx context.Context, domain, from string, rcpts []string, msg *io.SectionReader) map[string]result {
	hosts, res := q.mxHosts(ctx, domain)
	if res != nil {
		return allResults(rcpts, *res)
	}
	policy := q.policy(ctx, domain)

	last := result{err: fmt.Errorf("no usable MX host for %s", domain)}
	for _, host := range hosts {
		if policy.enforced() && !policy.matches(host) {
			last = result{err: fmt.Errorf("MX host %s is not listed in the MTA-STS policy of %s", host, domain)}
			q.log.Info("mx skipped", "domain", domain, "mx", host, "reason", "mta-sts")
			continue
		}
		results, connected := q.attemptHost(ctx, host, policy.enforced(), from, rcpts, msg)
		if connected {
			return results
		}
		last = results[rcpts[0]]
	}
	return allResults(rcpts, last)
}

// mxHosts returns the MX host names of domain by preference, or the domain
// itself when it has no MX (RFC 5321 section 5.1). A null MX (RFC 7505)
// is a permanent failure.
func (q *Queue) mxHosts(ctx context.Context, domain string) ([]string, *result) {
	mxs, err := q.opts.Resolver.LookupMX(ctx, domain)
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return []string{domain}, nil
	}
	if err != nil {
		return nil, &result{err: fmt.Errorf("looking up MX of %s: %w", domain, err)}
	}
	if len(mxs) == 0 {
		return []string{domain}, nil
	}
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		return nil, &result{err: fmt.Errorf("%s accepts no mail (null MX)", domain), permanent: true, status: "5.1.10"}
	}
	slices.SortStableFunc(mxs, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	hosts := make([]string, 0, len(mxs))
	for _, mx := range mxs {
		hosts = append(hosts, strings.TrimSuffix(mx.Host, "."))
	}
	return hosts, nil
}

// attemptHost delivers to one MX host. connected is false when the host
// could not take the message at all (unreachable, no usable TLS), so the
// next MX host is tried.
func (q *Queue) attemptHost(ctx context.Context, host string, requireTLS bool, from string, rcpts []string, msg *io.SectionReader) (results map[string]result, connected bool) {
	addr := net.JoinHostPort(host, strconv.Itoa(q.opts.MXPort))
	for _, skipVerify := range []bool{false, true} {
		if skipVerify && requireTLS {
			break
		}
		c, err := q.connect(ctx, addr, host, false)
		if err != nil {
			res := replyResult(addr, err)
			return allResults(rcpts, res), res.permanent
		}
		ok, _ := c.Extension("STARTTLS")
		if !ok && requireTLS {
			c.Close()
			return allResults(rcpts, result{err: fmt.Errorf("%s offers no STARTTLS, which MTA-STS requires", addr), remote: addr}), false
		}
		if ok {
			if err := c.StartTLS(q.tlsConfig(host, skipVerify)); err != nil {
				c.Close()
				q.log.Info("starttls failed", "mx", addr, "verify", !skipVerify, "err", err)
				if !skipVerify {
					continue
				}
				return allResults(rcpts, result{err: fmt.Errorf("STARTTLS with %s: %w", addr, err), remote: addr}), false
			}
		}
		defer c.Close()
		return transact(c, addr, from, rcpts, msg), true
	}
	return allResults(rcpts, result{err: fmt.Errorf("TLS certificate of %s does not verify, which MTA-STS requires", addr), remote: addr}), false
}
