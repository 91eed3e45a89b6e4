package webui

import (
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/idna"

	"github.com/heimwolke/heimwolke/packages/control"
)

// domainNone is the domain step's choice for a household without a domain:
// the box then serves the home network only.
const domainNone = "none"

// domainModes lists the choices of the domain step in the order of the page.
var domainModes = []string{control.DNSHetzner, control.DNSRFC2136, control.DNSDeSEC, control.DNSDynDNS2, domainNone}

// domainDraft is the domain step's form. Every field keeps what was typed;
// the secrets are kept in memory only, see draftStore.
type domainDraft struct {
	// Mode is one of domainModes, or "" before the step was sent.
	Mode string
	// Name is the domain as typed, which may be internationalized.
	Name string

	RFC2136Server  string // host or host:port
	RFC2136Zone    string // empty means the domain itself
	RFC2136KeyName string
	TSIGAlgorithm  string

	DynDNS2URL  string
	DynDNS2User string

	hetznerToken    string
	desecToken      string
	tsigSecret      string // standard base64
	dyndns2Password string
}

// The Has methods tell the page which secrets are kept.
func (d domainDraft) HasHetznerToken() bool    { return d.hetznerToken != "" }
func (d domainDraft) HasDeSECToken() bool      { return d.desecToken != "" }
func (d domainDraft) HasTSIGSecret() bool      { return d.tsigSecret != "" }
func (d domainDraft) HasDynDNS2Password() bool { return d.dyndns2Password != "" }

// LANOnly reports whether the household chose to go without a domain.
func (d domainDraft) LANOnly() bool { return d.Mode == domainNone }

// DisplayName returns the domain with its A-labels in Unicode, or as
// typed when it is not valid.
func (d domainDraft) DisplayName() string {
	ascii, problem := normalizeDomain(d.Name)
	if problem != "" {
		return d.Name
	}
	return displayDomain(ascii)
}

// domainData is the content of the domain step.
type domainData struct {
	Domain domainDraft
	Modes  []string
}

func (h *Handler) domainStep(w http.ResponseWriter, r *http.Request) {
	d := h.draftOf(r)
	if !needSteps(w, r, d, stepDomain) {
		return
	}
	h.renderDomainStep(w, visitOf(r), d, http.StatusOK, nil)
}

func (h *Handler) renderDomainStep(w http.ResponseWriter, v *visit, d draft, status int, errs formErrors) {
	p := h.wizardPage(v, d.Lang, stepDomain)
	p.Errors = errs
	p.Data = domainData{Domain: d.Domain, Modes: domainModes}
	h.render(w, status, "setup_domain", p)
}

// saveDomainStep keeps every field as typed, and every valid secret, even
// when the step fails, so that the form shows them again.
func (h *Handler) saveDomainStep(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	d := h.draftOf(r)
	if !needSteps(w, r, d, stepDomain) {
		return
	}

	f := r.PostForm
	dd := &d.Domain
	dd.Mode = f.Get("domain_mode")
	dd.Name = strings.TrimSpace(f.Get("domain"))
	dd.readProviderFields(f)

	var errs formErrors
	h.checkDomainStep(&errs, d.Lang, dd, f)
	d.Saved[stepDomain] = len(errs) == 0
	h.drafts.put(v.visitor, d)

	if len(errs) > 0 {
		h.renderDomainStep(w, v, d, http.StatusUnprocessableEntity, errs)
		return
	}
	nextStep(w, r, stepDomain)
}

// readProviderFields takes the provider's fields other than the secrets
// from the form, as typed.
func (d *domainDraft) readProviderFields(f url.Values) {
	d.RFC2136Server = strings.TrimSpace(f.Get("rfc2136_server"))
	d.RFC2136Zone = strings.TrimSpace(f.Get("rfc2136_zone"))
	d.RFC2136KeyName = strings.TrimSpace(f.Get("rfc2136_key_name"))
	d.TSIGAlgorithm = f.Get("rfc2136_algorithm")
	d.DynDNS2URL = strings.TrimSpace(f.Get("dyndns2_url"))
	d.DynDNS2User = strings.TrimSpace(f.Get("dyndns2_user"))
}

// checkDomainStep checks the fields of the chosen mode and takes its
// secrets from the form. Fields of other modes stay as typed, unchecked.
func (h *Handler) checkDomainStep(errs *formErrors, lang string, dd *domainDraft, f url.Values) {
	switch dd.Mode {
	case domainNone:
		return
	case control.DNSHetzner, control.DNSDeSEC, control.DNSRFC2136, control.DNSDynDNS2:
	default:
		errs.add("domain_mode", h.t(lang, "validate.domain_mode"))
		return
	}

	ascii, problem := normalizeDomain(dd.Name)
	if problem != "" {
		errs.add("domain", h.domainMessage(lang, problem, dd.Name))
	}
	switch dd.Mode {
	case control.DNSHetzner:
		h.takeSecret(errs, lang, "hetzner_token", f.Get("hetzner_token"), &dd.hetznerToken, checkToken)
	case control.DNSDeSEC:
		h.takeSecret(errs, lang, "desec_token", f.Get("desec_token"), &dd.desecToken, checkToken)
	case control.DNSRFC2136:
		h.checkRFC2136(errs, lang, dd, ascii, f.Get("rfc2136_secret"))
	case control.DNSDynDNS2:
		h.checkDynDNS2(errs, lang, dd, f.Get("dyndns2_password"))
	}
}

// domainMessage returns the message for a problem of the typed domain.
// The message about a long label names that label and its length.
func (h *Handler) domainMessage(lang, problem, typed string) string {
	label, length := longLabel(typed)
	return h.t(lang, problem, "name", typed, "label", label, "n", length)
}

func (h *Handler) checkRFC2136(errs *formErrors, lang string, dd *domainDraft, domain, secret string) {
	if _, problem, fault := normalizeHostPort(dd.RFC2136Server, 53); problem != "" {
		errs.add("rfc2136_server", h.t(lang, problem, "value", fault))
	}
	if dd.RFC2136Zone != "" {
		zone, problem := normalizeDomain(dd.RFC2136Zone)
		switch {
		case problem != "":
			errs.add("rfc2136_zone", h.domainMessage(lang, problem, dd.RFC2136Zone))
		case domain != "" && !control.InZone(domain, zone):
			errs.add("rfc2136_zone", h.t(lang, "validate.rfc2136_zone.outside", "zone", displayDomain(zone), "name", displayDomain(domain)))
		}
	}
	if problem := keyNameProblem(dd.RFC2136KeyName); problem != "" {
		errs.add("rfc2136_key_name", h.t(lang, problem))
	}
	if dd.TSIGAlgorithm != control.TSIGHMACSHA256 && dd.TSIGAlgorithm != control.TSIGHMACSHA512 {
		errs.add("rfc2136_algorithm", h.t(lang, "validate.tsig_algorithm"))
	}
	h.takeSecret(errs, lang, "rfc2136_secret", secret, &dd.tsigSecret, cleanTSIGSecret)
}

func (h *Handler) checkDynDNS2(errs *formErrors, lang string, dd *domainDraft, password string) {
	if problem := updateURLProblem(dd.DynDNS2URL); problem != "" {
		errs.add("dyndns2_url", h.t(lang, problem))
	}
	switch {
	case dd.DynDNS2User == "":
		errs.add("dyndns2_user", h.t(lang, "validate.user.empty"))
	case secretPasswordProblem(dd.DynDNS2User) != "" || len(dd.DynDNS2User) > 256:
		errs.add("dyndns2_user", h.t(lang, "validate.user.invalid"))
	}
	h.takeSecret(errs, lang, "dyndns2_password", password, &dd.dyndns2Password, checkSecretPassword)
}

// updateURLProblem checks the update URL of a dynDNS2 provider. It must use
// https, because the request carries the account's password.
func updateURLProblem(typed string) string {
	if typed == "" {
		return "validate.update_url.empty"
	}
	u, err := url.Parse(typed)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return "validate.update_url.invalid"
	case u.Scheme != "https":
		return "validate.update_url.https"
	case u.User != nil:
		return "validate.update_url.login"
	}
	if _, problem := normalizeHost(u.Hostname()); problem != "" {
		return "validate.update_url.invalid"
	}
	return ""
}

func checkToken(typed string) (string, string) {
	token := strings.TrimSpace(typed)
	return token, tokenProblem(token)
}

func checkSecretPassword(typed string) (string, string) {
	return typed, secretPasswordProblem(typed)
}

// takeSecret checks the secret field of a wizard form. An empty field keeps
// the secret in *kept; a typed one replaces it when check accepts it. Each
// field has a catalog message "validate.<field>.empty" for a field that is
// empty while nothing is kept.
func (h *Handler) takeSecret(errs *formErrors, lang, field, typed string, kept *string, check func(string) (string, string)) {
	if typed == "" {
		if *kept == "" {
			errs.add(field, h.t(lang, "validate."+field+".empty"))
		}
		return
	}
	secret, problem := check(typed)
	if problem != "" {
		errs.add(field, h.t(lang, problem))
		return
	}
	*kept = secret
}

// dnsSettings returns the DNS part of the settings for a saved domain step,
// and the domain in ASCII, empty without a domain.
func (d domainDraft) dnsSettings() (control.DNSSettings, string) {
	if d.Mode == domainNone {
		return control.DNSSettings{}, ""
	}
	domain, _ := normalizeDomain(d.Name)
	dns := control.DNSSettings{Provider: d.Mode, Hostname: domain}
	switch d.Mode {
	case control.DNSHetzner:
		dns.Token = d.hetznerToken
	case control.DNSDeSEC:
		dns.Token = d.desecToken
	case control.DNSRFC2136:
		server, _, _ := normalizeHostPort(d.RFC2136Server, 53)
		zone := domain
		if d.RFC2136Zone != "" {
			zone, _ = normalizeDomain(d.RFC2136Zone)
		}
		dns.RFC2136 = &control.RFC2136Settings{
			Server:    server,
			Zone:      zone,
			KeyName:   d.RFC2136KeyName,
			Algorithm: d.TSIGAlgorithm,
			Secret:    d.tsigSecret,
		}
	case control.DNSDynDNS2:
		dns.DynDNS2 = &control.DynDNS2Settings{UpdateURL: d.DynDNS2URL, Username: d.DynDNS2User, Password: d.dyndns2Password}
	}
	return dns, domain
}

// displayDomain returns an ASCII domain with its A-labels in Unicode.
func displayDomain(ascii string) string {
	name, err := idna.Lookup.ToUnicode(ascii)
	if err != nil {
		return ascii
	}
	return name
}
