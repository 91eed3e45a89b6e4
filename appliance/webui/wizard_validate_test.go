package webui

import (
	"errors"
	"net/url"
	"testing"

	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/i18n"
)

func TestNormalizeDomain(t *testing.T) {
	tests := []struct {
		typed, ascii, problem string
	}{
		{"familie-mueller.de", "familie-mueller.de", ""},
		{" Familie-Mueller.DE. ", "familie-mueller.de", ""},
		{"müller.de", "xn--mller-kva.de", ""},
		{"xn--mller-kva.de", "xn--mller-kva.de", ""},
		{"faß.de", "xn--fa-hia.de", ""},
		{"anna.dedyn.io", "anna.dedyn.io", ""},
		{"", "", "validate.domain.empty"},
		{".", "", "validate.domain.empty"},
		{"under_score.de", "", "validate.domain.invalid"},
		{"a..b.de", "", "validate.domain.invalid"},
		{"box-.de", "", "validate.domain.invalid"},
		{"de", "", "validate.domain.one_label"},
		{"10.0.0.1", "", "validate.domain.address"},
		{"box.local", "", "validate.domain.special"},
		{"Heimwolke.Home.Arpa", "", "validate.domain.special"},
		{"router.internal", "", "validate.domain.special"},
		{"www.example.org", "", "validate.domain.special"},
		{"examples.org", "examples.org", ""},
	}
	for _, tt := range tests {
		ascii, problem := normalizeDomain(tt.typed)
		if ascii != tt.ascii || problem != tt.problem {
			t.Errorf("normalizeDomain(%q) = %q, %q; want %q, %q", tt.typed, ascii, problem, tt.ascii, tt.problem)
		}
	}
}

func TestNormalizeHostPort(t *testing.T) {
	tests := []struct {
		typed, hostPort, problem, fault string
	}{
		{"ns1.example.net", "ns1.example.net:53", "", ""},
		{"NS1.Example.NET:5353", "ns1.example.net:5353", "", ""},
		{"192.0.2.53", "192.0.2.53:53", "", ""},
		{"2001:db8::53", "[2001:db8::53]:53", "", ""},
		{"[2001:db8::53]:5353", "[2001:db8::53]:5353", "", ""},
		{"localhost", "localhost:53", "", ""},
		{"", "", "validate.host.empty", ""},
		{"ns 1:53", "", "validate.host.invalid", "ns 1"},
		{"ns1.example.net:dns", "", "validate.port.invalid", "dns"},
		{"ns1.example.net:65536", "", "validate.port.invalid", "65536"},
	}
	for _, tt := range tests {
		hostPort, problem, fault := normalizeHostPort(tt.typed, 53)
		if hostPort != tt.hostPort || problem != tt.problem || fault != tt.fault {
			t.Errorf("normalizeHostPort(%q) = %q, %q, %q; want %q, %q, %q",
				tt.typed, hostPort, problem, fault, tt.hostPort, tt.problem, tt.fault)
		}
	}
}

func TestCleanTSIGSecret(t *testing.T) {
	const key = "c2VjcmV0LXRzaWcta2V5LWJ5dGVzLTMyLWxvbmchIQ=="
	tests := []struct {
		typed, secret, problem string
	}{
		{key, key, ""},
		{`"` + key + `"`, key, ""},
		{`	secret "` + key + `";`, key, ""},
		{"c2VjcmV0LXRz aWcta2V5LWJ5\ndGVzLTMyLWxvbmchIQ==", key, ""},
		{"c2VjcmV0LXRzaWcta2V5LWJ5dGVzLTMyLWxvbmchIQ", "", "validate.tsig_secret.base64"},
		{"secret", "", "validate.tsig_secret.base64"},
		{`""`, "", "validate.tsig_secret.base64"},
	}
	for _, tt := range tests {
		secret, problem := cleanTSIGSecret(tt.typed)
		if secret != tt.secret || problem != tt.problem {
			t.Errorf("cleanTSIGSecret(%q) = %q, %q; want %q, %q", tt.typed, secret, problem, tt.secret, tt.problem)
		}
	}
}

func TestUpdateURLProblem(t *testing.T) {
	tests := []struct{ url, problem string }{
		{"https://dyn.example.net/nic/update", ""},
		{"https://dyn.example.net:8443/update?system=dyndns", ""},
		{"", "validate.update_url.empty"},
		{"http://dyn.example.net/nic/update", "validate.update_url.https"},
		{"https://anna@dyn.example.net/", "validate.update_url.login"},
		{"ftp://dyn.example.net/", "validate.update_url.invalid"},
		{"https:///nic/update", "validate.update_url.invalid"},
		{"https://dyn example.net/", "validate.update_url.invalid"},
	}
	for _, tt := range tests {
		if got := updateURLProblem(tt.url); got != tt.problem {
			t.Errorf("updateURLProblem(%q) = %q, want %q", tt.url, got, tt.problem)
		}
	}
}

// FuzzWizardSettingsAgreeWithControl guards the wizard's checks against
// those of package control: what the domain and mail steps accept, the
// agent must accept too, or the household would pass every step and then
// fail at apply.
func FuzzWizardSettingsAgreeWithControl(f *testing.F) {
	f.Add("familie-mueller.de", uint8(0), "ns1.example.net", "", "key", "c2VjcmV0", "https://dyn.example.net/u", "anna", "pw", "smtp.example.net", "465")
	f.Add("Müller.de.", uint8(1), "[2001:db8::1]:5353", "müller.de", "k_1.", `secret "c2VjcmV0";`, "", "", "", "192.0.2.1", "587")
	f.Add("box.xn--mller-kva.de", uint8(2), "ns1", "xn--mller-kva.de", "a.b", "AAAA", "https://a/", "u", "p", "smtp", "25")
	f.Add("a.b", uint8(3), "::1", "b", "-", "====", "https://dyn.example.net/u?x=1#f", "\x7f", "\t", "smtp..x", "0")
	f.Add("", uint8(4), "", "", "", "", "", "", "", "", "")

	h := &Handler{catalog: i18n.MustLoad()}
	f.Fuzz(func(t *testing.T, domain string, mode uint8, server, zone, keyName, secret, updateURL, user, password, smtpHost, smtpPort string) {
		d := newDraft("en")
		d.Owner.Name = "anna"
		d.Domain.Mode = domainModes[int(mode)%len(domainModes)]
		d.Domain.Name = domain
		d.Domain.RFC2136Server = server
		d.Domain.RFC2136Zone = zone
		d.Domain.RFC2136KeyName = keyName
		d.Domain.DynDNS2URL = updateURL
		d.Domain.DynDNS2User = user
		form := url.Values{"hetzner_token": {secret}, "desec_token": {secret}, "rfc2136_secret": {secret}, "dyndns2_password": {password}}
		var errs formErrors
		h.checkDomainStep(&errs, "en", &d.Domain, form)

		d.Mail = mailDraft{Mode: mailSmarthost, Host: smtpHost, Port: smtpPort, TLS: control.SmarthostImplicitTLS, User: user}
		if smtpPort == "587" {
			d.Mail.TLS = control.SmarthostSTARTTLS
		}
		h.checkSmarthost(&errs, "en", &d.Mail, password)
		if len(errs) > 0 {
			return
		}

		s := settingsOf(d)
		err := s.Validate()
		var validation *control.ValidationError
		if errors.As(err, &validation) {
			t.Errorf("wizard accepted domain %q (mode %s) and smarthost %q:%q, agent rejects: %v",
				domain, d.Domain.Mode, smtpHost, smtpPort, err)
		}
	})
}
