package webui

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/heimwolke/heimwolke/packages/control"
)

// Choices of the mail step.
const (
	mailDirect    = "direct"
	mailSmarthost = "smarthost"
)

// mailDraft is the mail step's form. The password is kept in memory only,
// see draftStore.
type mailDraft struct {
	// Mode is mailDirect or mailSmarthost, or "" before the step was sent.
	Mode string
	Host string
	Port string // as typed
	// TLS is control.SmarthostImplicitTLS or control.SmarthostSTARTTLS.
	TLS  string
	User string

	password string
}

func (m mailDraft) HasPassword() bool { return m.password != "" }

func (h *Handler) mailStep(w http.ResponseWriter, r *http.Request) {
	d := h.draftOf(r)
	if !needSteps(w, r, d, stepMail) {
		return
	}
	h.renderMailStep(w, visitOf(r), d, http.StatusOK, nil)
}

func (h *Handler) renderMailStep(w http.ResponseWriter, v *visit, d draft, status int, errs formErrors) {
	p := h.wizardPage(v, d.Lang, stepMail)
	p.Errors = errs
	p.Data = d.Mail
	h.render(w, status, "setup_mail", p)
}

// saveMailStep keeps every field as typed, and a valid password, even when
// the step fails.
func (h *Handler) saveMailStep(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	d := h.draftOf(r)
	if !needSteps(w, r, d, stepMail) {
		return
	}

	m := &d.Mail
	var errs formErrors
	h.takeMailForm(&errs, d.Lang, m, r.PostForm, d.Domain)
	d.Saved[stepMail] = len(errs) == 0
	h.drafts.put(v.visitor, d)

	if len(errs) > 0 {
		h.renderMailStep(w, v, d, http.StatusUnprocessableEntity, errs)
		return
	}
	nextStep(w, r, stepMail)
}

// takeMailForm takes the fields of the mail form into m and checks them.
// An empty password field keeps m's password, see checkSmarthost. domain
// is the household's domain, which the smarthost must not be.
func (h *Handler) takeMailForm(errs *formErrors, lang string, m *mailDraft, f url.Values, domain domainDraft) {
	m.Mode = f.Get("mail_mode")
	m.Host = strings.TrimSpace(f.Get("smarthost_host"))
	m.Port = strings.TrimSpace(f.Get("smarthost_port"))
	m.TLS = f.Get("smarthost_tls")
	m.User = strings.TrimSpace(f.Get("smarthost_user"))

	switch m.Mode {
	case mailDirect:
	case mailSmarthost:
		h.checkSmarthost(errs, lang, m, f.Get("smarthost_password"))
		if errs.Get("smarthost_host") == "" {
			if problem := relayHostProblem(m.Host, domain); problem != "" {
				errs.add("smarthost_host", h.t(lang, problem, "value", m.Host))
			}
		}
	default:
		errs.add("mail_mode", h.t(lang, "validate.mail_mode"))
	}
}

// checkSmarthost checks the smarthost's fields. The ports 465 and 587 are
// fixed to a TLS mode: 465 to implicit TLS (RFC 8314 section 7.3) and 587
// to STARTTLS (RFC 6409), so that a mismatch is a typing error.
func (h *Handler) checkSmarthost(errs *formErrors, lang string, m *mailDraft, password string) {
	if _, problem := normalizeHost(m.Host); problem != "" {
		errs.add("smarthost_host", h.t(lang, problem, "value", m.Host))
	}
	port, problem := parsePort(m.Port)
	if problem != "" {
		errs.add("smarthost_port", h.t(lang, problem, "value", m.Port))
	}
	switch {
	case m.TLS != control.SmarthostImplicitTLS && m.TLS != control.SmarthostSTARTTLS:
		errs.add("smarthost_tls", h.t(lang, "validate.smarthost_tls"))
	case port == 465 && m.TLS == control.SmarthostSTARTTLS:
		errs.add("smarthost_tls", h.t(lang, "validate.smarthost_tls.465"))
	case port == 587 && m.TLS == control.SmarthostImplicitTLS:
		errs.add("smarthost_tls", h.t(lang, "validate.smarthost_tls.587"))
	}

	if problem := secretPasswordProblem(m.User); problem != "" || len(m.User) > 256 {
		errs.add("smarthost_user", h.t(lang, "validate.user.invalid"))
	}
	if m.User == "" && password == "" {
		// Both fields empty: the smarthost takes mail without a login.
		m.password = ""
	}
	if password != "" {
		if problem := secretPasswordProblem(password); problem != "" {
			errs.add("smarthost_password", h.t(lang, problem))
		} else {
			m.password = password
		}
	}
	switch {
	case m.User != "" && m.password == "" && errs.Get("smarthost_password") == "":
		errs.add("smarthost_password", h.t(lang, "validate.smarthost_password.empty"))
	case m.User == "" && m.password != "":
		errs.add("smarthost_user", h.t(lang, "validate.smarthost_user.empty"))
	}
}

// relayHostProblem returns the catalog key that explains why typed, a
// valid host, cannot be the outgoing mail server: a name of the box
// itself, or an address that reaches no provider's server. The box would
// send its mail to itself or to nowhere, and a link-local address such as
// 169.254.169.254 can reach a cloud's metadata service.
func relayHostProblem(typed string, domain domainDraft) string {
	host, _ := normalizeHost(typed)
	if addr, err := netip.ParseAddr(host); err == nil {
		addr = addr.Unmap()
		switch {
		case addr.IsLoopback():
			return "validate.smarthost_host.loopback"
		case addr.IsUnspecified():
			return "validate.smarthost_host.unspecified"
		case addr.IsLinkLocalUnicast():
			return "validate.smarthost_host.link_local"
		case addr.IsMulticast() || addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			return "validate.smarthost_host.multicast"
		}
		return ""
	}

	if host == "localhost" || strings.HasSuffix(host, ".localhost") || host == defaultHostname {
		return "validate.smarthost_host.own"
	}
	if own, problem := normalizeDomain(domain.Name); problem == "" && !domain.LANOnly() {
		if host == own || host == "mail."+own {
			return "validate.smarthost_host.own"
		}
	}
	return ""
}

// settings returns the mail part of the settings for a saved mail step.
func (m mailDraft) settings() control.MailSettings {
	if m.Mode != mailSmarthost {
		return control.MailSettings{}
	}
	host, _ := normalizeHost(m.Host)
	port, _ := parsePort(m.Port)
	return control.MailSettings{Smarthost: &control.SmarthostSettings{
		Host: host, Port: port, TLS: m.TLS, Username: m.User, Password: m.password,
	}}
}
