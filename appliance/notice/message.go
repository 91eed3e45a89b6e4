package notice

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// compose writes the notice about p for owner as an RFC 5322 message with a
// single text/plain part in quoted-printable (RFC 2045 section 6.7) and a
// subject encoded as RFC 2047 requires.
func (n *Notifier) compose(p *problem, owner *accounts.User, domain string, now time.Time) (io.Reader, error) {
	lang := string(owner.Language)
	t := func(key string, pairs ...string) string {
		return strings.NewReplacer(pairs...).Replace(n.opts.Catalog.T(lang, key))
	}

	var h mail.Header
	h.SetAddressList("From", []*mail.Address{{Name: t("notice.sender"), Address: "postmaster@" + domain}})
	h.SetAddressList("To", []*mail.Address{{Name: displayName(owner), Address: owner.Name + "@" + domain}})
	h.SetDate(now)
	h.SetSubject(t("notice.certificate."+p.variant+".subject", "{date}", n.formatDate(lang, p.cert.NotAfter)))
	if err := h.GenerateMessageIDWithHostname(domain); err != nil {
		return nil, fmt.Errorf("composing certificate notice: %w", err)
	}
	h.Set("MIME-Version", "1.0")
	h.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	h.Set("Content-Transfer-Encoding", "quoted-printable")
	// RFC 3834 section 5: marks the notice as sent by a program, so that
	// vacation responders do not reply to it.
	h.Set("Auto-Submitted", "auto-generated")

	var buf bytes.Buffer
	w, err := mail.CreateSingleInlineWriter(&buf, h)
	if err != nil {
		return nil, fmt.Errorf("composing certificate notice: %w", err)
	}
	if _, err := io.WriteString(w, n.body(p, owner, domain, t)); err != nil {
		return nil, fmt.Errorf("composing certificate notice: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("composing certificate notice: %w", err)
	}
	return &buf, nil
}

// body returns the notice's text with CRLF line ends: the greeting, what
// happens, why, and what the owner can do.
func (n *Notifier) body(p *problem, owner *accounts.User, domain string, t func(string, ...string) string) string {
	lang := string(owner.Language)
	names := strings.Join(p.cert.Names, ", ")
	if names == "" {
		names = domain
	}

	var b strings.Builder
	paragraph := func(lines ...string) {
		for _, line := range lines {
			b.WriteString(line + "\r\n")
		}
		b.WriteString("\r\n")
	}
	paragraph(t("notice.greeting", "{name}", displayName(owner)))
	paragraph(t("notice.certificate."+p.variant+".intro",
		"{names}", names,
		"{date}", n.formatDateTime(lang, p.cert.NotAfter),
		"{since}", n.formatDateTime(lang, p.errorSince)))

	if p.reason != "" {
		paragraph(t("notice.reason.title"),
			t("notice.reason."+p.reason),
			t("notice.reason.detail", "{error}", oneLine(p.cert.LastError)))
		if p.cert.NextAttempt.After(n.opts.Now()) {
			paragraph(t("notice.certificate.retry", "{time}", n.formatDateTime(lang, p.cert.NextAttempt)))
		} else {
			paragraph(t("notice.certificate.retry_soon"))
		}
	}

	todo := []string{t("notice.todo.title"), "- " + t("notice.todo.admin", "{url}", "https://"+domain+"/admin")}
	for _, key := range todoKeys(p.reason) {
		todo = append(todo, "- "+t(key))
	}
	todo = append(todo, "- "+t("notice.todo.docs"))
	paragraph(todo...)

	b.WriteString("-- \r\n" + t("notice.footer") + "\r\n")
	return b.String()
}

// todoKeys returns the catalog keys of the steps that fit reason, besides
// opening the admin page and reading the docs.
func todoKeys(reason string) []string {
	switch reason {
	case reasonUnreachable:
		return []string{"notice.todo.router"}
	case reasonDNS, reasonDNSProvider:
		return []string{"notice.todo.dns"}
	case reasonRateLimit:
		return []string{"notice.todo.wait"}
	case reasonCAUnreachable:
		return []string{"notice.todo.internet"}
	default:
		return []string{"notice.todo.router", "notice.todo.dns"}
	}
}

func displayName(u *accounts.User) string {
	if u.DisplayName != "" {
		return u.DisplayName
	}
	return u.Name
}

// oneLine folds the agent's error text into one line, because it may carry
// line breaks from a CA's problem document.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func (n *Notifier) formatDate(lang string, t time.Time) string {
	return t.In(n.opts.Location).Format(n.opts.Catalog.T(lang, "notice.format.date"))
}

func (n *Notifier) formatDateTime(lang string, t time.Time) string {
	return t.In(n.opts.Location).Format(n.opts.Catalog.T(lang, "format.datetime"))
}
