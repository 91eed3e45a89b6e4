package webui

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"github.com/heimwolke/heimwolke/packages/control"
)

// The forms of the settings page. Each name is the last element of the
// form's POST path and the catalog suffix of its success notice.
const (
	settingsFormDNS      = "dns"
	settingsFormMail     = "mail"
	settingsFormServices = "services"
)

// settingsData is the content of the settings page.
type settingsData struct {
	// Domain is the household's domain with its A-labels in Unicode, empty
	// without one.
	Domain string

	DNS      domainDraft
	Mail     mailDraft
	Services []serviceChoice

	// Form is the form that was sent, empty on a GET. Problem is a
	// translated message about the agent that the page shows above that
	// form, and Detail the agent's message in English. Either may be empty.
	Form, Problem, Detail string
}

// newSettingsData fills the three forms from the agent's settings. The
// drafts keep the stored secrets, which the page never shows, so that an
// empty secret field keeps them.
func newSettingsData(s control.Settings) settingsData {
	data := settingsData{
		DNS:      domainDraftOf(s),
		Mail:     mailDraftOf(s.Mail),
		Services: serviceChoices(s.Services),
	}
	if s.Domain != "" {
		data.Domain = displayDomain(s.Domain)
	}
	return data
}

// domainDraftOf returns the domain step's form for the stored settings.
// Mode is domainNone when the agent updates no DNS provider.
func domainDraftOf(s control.Settings) domainDraft {
	d := domainDraft{Mode: s.DNS.Provider, Name: s.Domain}
	if s.Domain == "" || s.DNS.Provider == "" {
		d.Mode = domainNone
	}
	switch s.DNS.Provider {
	case control.DNSHetzner:
		d.hetznerToken = s.DNS.Token
	case control.DNSDeSEC:
		d.desecToken = s.DNS.Token
	}
	if r := s.DNS.RFC2136; r != nil {
		d.RFC2136Server = r.Server
		if r.Zone != s.Domain {
			// An empty zone field means the domain itself, as in the wizard.
			d.RFC2136Zone = displayDomain(r.Zone)
		}
		d.RFC2136KeyName = r.KeyName
		d.TSIGAlgorithm = r.Algorithm
		d.tsigSecret = r.Secret
	}
	if dd := s.DNS.DynDNS2; dd != nil {
		d.DynDNS2URL = dd.UpdateURL
		d.DynDNS2User = dd.Username
		d.dyndns2Password = dd.Password
	}
	return d
}

// mailDraftOf returns the mail step's form for the stored settings.
func mailDraftOf(m control.MailSettings) mailDraft {
	sh := m.Smarthost
	if sh == nil {
		return mailDraft{Mode: mailDirect, TLS: control.SmarthostImplicitTLS}
	}
	return mailDraft{
		Mode:     mailSmarthost,
		Host:     sh.Host,
		Port:     portText(sh.Port),
		TLS:      sh.TLS,
		User:     sh.Username,
		password: sh.Password,
	}
}

// settingsPage shows the three forms filled with the agent's settings.
func (a *adminPages) settingsPage(w http.ResponseWriter, r *http.Request) {
	v := a.requireOwner(w, r)
	if v == nil {
		return
	}
	current, err := a.readSettings(r.Context())
	if err != nil {
		a.log.Warn("reading the agent's settings for the settings page failed", "err", err)
		a.renderSettingsUnavailable(w, v, err)
		return
	}
	p := a.newPage(v, "admin.settings.title")
	p.Notice = a.adminNotice(v.lang, r)
	p.Data = newSettingsData(current)
	a.render(w, http.StatusOK, "admin_settings", p)
}

// readSettings returns the agent's current settings, read afresh and not
// from the cache of agentSettings, because the page writes them back.
func (a *adminPages) readSettings(ctx context.Context) (control.Settings, error) {
	ctx, cancel := context.WithTimeout(ctx, agentTimeout)
	defer cancel()
	return a.agent.GetSettings(ctx)
}

// renderSettingsUnavailable shows why the settings cannot be read.
func (a *adminPages) renderSettingsUnavailable(w http.ResponseWriter, v *visit, err error) {
	p := a.newPage(v, "admin.settings.title")
	text, detail := a.agentProblem(v.lang, err)
	if detail != "" {
		text += " (" + detail + ")"
	}
	p.Data = messageData{Text: text, LinkHref: "/admin", LinkText: p.T("admin.nav.dashboard")}
	a.render(w, http.StatusServiceUnavailable, "message", p)
}

// settingsChange checks the fields of one form of the settings page and,
// when they are valid, writes them into s. It keeps the typed fields in
// data, so that the page shows them again after an error.
type settingsChange func(errs *formErrors, lang string, f url.Values, s *control.Settings, data *settingsData)

func (a *adminPages) saveDNSSettings(w http.ResponseWriter, r *http.Request) {
	a.saveSettings(w, r, settingsFormDNS, a.changeDNS)
}

func (a *adminPages) saveMailSettings(w http.ResponseWriter, r *http.Request) {
	a.saveSettings(w, r, settingsFormMail, a.changeMail)
}

func (a *adminPages) saveServiceSettings(w http.ResponseWriter, r *http.Request) {
	a.saveSettings(w, r, settingsFormServices, changeServices)
}

// saveSettings reads the agent's settings, lets change replace the part of
// one form, and sends the result back with PutSettings. The agent checks
// the whole settings again, and its objections appear at the form's
// fields. Settings that change did not touch go back as they were read.
func (a *adminPages) saveSettings(w http.ResponseWriter, r *http.Request, form string, change settingsChange) {
	v := a.requireOwner(w, r)
	if v == nil {
		return
	}
	// Two owners' browsers that save at once would otherwise each write
	// back the other's part as it was before.
	a.settingsMu.Lock()
	defer a.settingsMu.Unlock()

	current, err := a.readSettings(r.Context())
	if err != nil {
		a.log.Warn("reading the agent's settings to change them failed", "form", form, "err", err)
		a.renderSettingsUnavailable(w, v, err)
		return
	}
	p := a.newPage(v, "admin.settings.title")
	data := newSettingsData(current)
	data.Form = form
	next := current
	change(&p.Errors, v.lang, r.PostForm, &next, &data)
	if len(p.Errors) > 0 {
		p.Data = data
		a.render(w, http.StatusUnprocessableEntity, "admin_settings", p)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), settingsTimeout)
	defer cancel()
	err = a.agent.PutSettings(ctx, next)
	if err == nil {
		a.settings.forget()
		// The log line names the form and never its values, which
		// include secrets.
		a.log.Info("settings changed", "form", form, "by", v.session.User.Name, "source", v.source)
		http.Redirect(w, r, "/admin/settings?notice=settings_"+form, http.StatusSeeOther)
		return
	}

	// Package control words the agent's messages with field names and
	// never with a secret's value.
	a.log.Warn("sending changed settings to the agent failed", "form", form, "by", v.session.User.Name, "source", v.source, "err", err)
	status := http.StatusUnprocessableEntity
	if !a.addAgentProblems(&p.Errors, v.lang, form, next.DNS.Provider, err) {
		status = http.StatusServiceUnavailable
		data.Problem, data.Detail = a.agentProblem(v.lang, err)
	}
	p.Data = data
	a.render(w, status, "admin_settings", p)
}

// changeDNS replaces the access data of the configured DNS provider. The
// provider and the domain stay, because certificates, addresses and
// devices depend on them.
func (a *adminPages) changeDNS(errs *formErrors, lang string, f url.Values, s *control.Settings, data *settingsData) {
	dd := &data.DNS
	if dd.Mode == domainNone {
		errs.add(settingsFormDNS, a.t(lang, "admin.settings.dns.none"))
		return
	}
	dd.readProviderFields(f)
	a.checkDomainStep(errs, lang, dd, f)
	if len(*errs) > 0 {
		return
	}
	dns, _ := dd.dnsSettings()
	dns.Hostname = s.DNS.Hostname
	s.DNS = dns
}

// changeMail replaces the outgoing mail settings.
func (a *adminPages) changeMail(errs *formErrors, lang string, f url.Values, s *control.Settings, data *settingsData) {
	a.takeMailForm(errs, lang, &data.Mail, f, domainDraftOf(*s))
	if len(*errs) > 0 {
		return
	}
	s.Mail = data.Mail.settings()
}

// changeServices replaces the services that are on.
func changeServices(errs *formErrors, lang string, f url.Values, s *control.Settings, data *settingsData) {
	s.Services = serviceSettingsOf(f)
	data.Services = serviceChoices(s.Services)
}

// addAgentProblems adds the agent's objections to the fields of form and
// reports whether err was such a rejection. An objection to a field that
// the form does not have goes to the form as a whole.
func (a *adminPages) addAgentProblems(errs *formErrors, lang, form, provider string, err error) bool {
	var apiErr *control.Error
	if !errors.As(err, &apiErr) || apiErr.Code != control.CodeInvalid || len(apiErr.Problems) == 0 {
		return false
	}
	for _, problem := range apiErr.Problems {
		field := formFieldOfSetting(problem.Field, provider)
		if field == "" || !strings.HasPrefix(problem.Field, form+".") {
			field = form
		}
		errs.add(field, a.t(lang, "admin.settings.agent.invalid", "detail", problem.Field+": "+problem.Message))
	}
	return true
}

// formFieldOfSetting returns the form field where the owner enters the
// settings field, a dotted path such as "dns.rfc2136.secret", or "" when
// the settings page has no such field. The token's field depends on the
// provider.
func formFieldOfSetting(field, provider string) string {
	switch field {
	case "dns.token":
		if provider == control.DNSDeSEC {
			return "desec_token"
		}
		return "hetzner_token"
	case "dns.rfc2136.server", "dns.rfc2136.zone", "dns.rfc2136.key_name", "dns.rfc2136.algorithm", "dns.rfc2136.secret":
		return "rfc2136_" + strings.TrimPrefix(field, "dns.rfc2136.")
	case "dns.dyndns2.update_url":
		return "dyndns2_url"
	case "dns.dyndns2.username":
		return "dyndns2_user"
	case "dns.dyndns2.password":
		return "dyndns2_password"
	case "mail.smarthost.host", "mail.smarthost.port", "mail.smarthost.tls", "mail.smarthost.password":
		return "smarthost_" + strings.TrimPrefix(field, "mail.smarthost.")
	case "mail.smarthost.username":
		return "smarthost_user"
	}
	return ""
}

// agentProblem explains an error of the control API client other than a
// rejection of fields: the translated message, and the agent's own message
// in English or "".
func (a *adminPages) agentProblem(lang string, err error) (string, string) {
	var apiErr *control.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Code == control.CodeBusy:
		return a.t(lang, "admin.settings.agent.busy"), ""
	case errors.As(err, &apiErr) && apiErr.Code == control.CodeNoSettings:
		return a.t(lang, "admin.settings.agent.no_settings"), ""
	case errors.As(err, &apiErr):
		return a.t(lang, "admin.settings.agent.failed"), apiErr.Message
	case errors.Is(err, context.DeadlineExceeded):
		return a.t(lang, "admin.settings.agent.timeout"), ""
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
		return a.t(lang, "admin.agent.no_socket"), ""
	}
	return a.t(lang, "admin.settings.agent.failed"), ""
}

// portText formats a stored port, empty for zero, so that the form shows
// an empty field and not "0".
func portText(port int) string {
	if port == 0 {
		return ""
	}
	return strconv.Itoa(port)
}
