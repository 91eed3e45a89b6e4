package webui

import (
	"html"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/control"
)

// toDomainStep walks b through language and owner to the domain step.
func toDomainStep(t *testing.T, b *browser, lang string) {
	t.Helper()
	wantRedirect(t, b.submit("/setup/language", "/setup/language", form("lang", lang)), "/setup/owner")
	wantRedirect(t, b.submit("/setup/owner", "/setup/owner", form(
		"name", "anna", "password", ownerPassword, "password2", ownerPassword)), "/setup/members")
	wantRedirect(t, b.submit("/setup/members", "/setup/members", form("action", "next")), "/setup/domain")
}

// message returns the catalog message as the page shows it, escaped.
func (env *testEnv) message(lang, key string, pairs ...any) string {
	return html.EscapeString(env.h.t(lang, key, pairs...))
}

// TestWizardStepValidation checks that each rule of the later steps names
// the problem and the fix, in both languages, next to the field at fault.
func TestWizardStepValidation(t *testing.T) {
	hetzner := func(pairs ...string) []string {
		base := []string{"domain", "familie-mueller.de", "domain_mode", "hetzner", "hetzner_token", "abc"}
		return override(base, pairs)
	}
	rfc2136 := func(pairs ...string) []string {
		base := []string{"domain", "familie-mueller.de", "domain_mode", "rfc2136", "rfc2136_server", "ns1.example.net",
			"rfc2136_key_name", "heimwolke-key", "rfc2136_algorithm", "hmac-sha256", "rfc2136_secret", "c2VjcmV0"}
		return override(base, pairs)
	}
	dyndns2 := func(pairs ...string) []string {
		base := []string{"domain", "familie-mueller.de", "domain_mode", "dyndns2", "dyndns2_url", "https://dyn.example.net/nic/update",
			"dyndns2_user", "anna", "dyndns2_password", "pw"}
		return override(base, pairs)
	}
	smarthost := func(pairs ...string) []string {
		base := []string{"mail_mode", "smarthost", "smarthost_host", "smtp.example.net", "smarthost_port", "465",
			"smarthost_tls", "implicit", "smarthost_user", "anna", "smarthost_password", "pw"}
		return override(base, pairs)
	}
	long := strings.Repeat("a", 64)

	tests := []struct {
		name   string
		step   string
		values []string
		field  string
		key    string
		pairs  []any
	}{
		{"no DNS choice", "domain", []string{"domain", "familie-mueller.de"}, "domain_mode", "validate.domain_mode", nil},
		{"empty domain", "domain", hetzner("domain", ""), "domain", "validate.domain.empty", nil},
		{"space in domain", "domain", hetzner("domain", "familie mueller.de"), "domain", "validate.domain.invalid", []any{"name", "familie mueller.de"}},
		{"leading hyphen", "domain", hetzner("domain", "-box.de"), "domain", "validate.domain.invalid", []any{"name", "-box.de"}},
		{"one label", "domain", hetzner("domain", "localhost"), "domain", "validate.domain.one_label", []any{"name", "localhost"}},
		{"mDNS name", "domain", hetzner("domain", "heimwolke.local"), "domain", "validate.domain.special", []any{"name", "heimwolke.local"}},
		{"home.arpa", "domain", hetzner("domain", "box.home.arpa"), "domain", "validate.domain.special", []any{"name", "box.home.arpa"}},
		{"IP address", "domain", hetzner("domain", "192.168.1.10"), "domain", "validate.domain.address", []any{"name", "192.168.1.10"}},
		{"long label", "domain", hetzner("domain", long+".de"), "domain", "validate.domain.label_long", []any{"label", long, "n", 64}},
		{"long zone label", "domain", rfc2136("rfc2136_zone", "familie."+long+".de"), "rfc2136_zone", "validate.domain.label_long", []any{"label", long, "n", 64}},
		{"no Hetzner token", "domain", hetzner("hetzner_token", ""), "hetzner_token", "validate.hetzner_token.empty", nil},
		{"token with space", "domain", hetzner("hetzner_token", "abc def"), "hetzner_token", "validate.token.chars", nil},
		{"no deSEC token", "domain", []string{"domain", "anna.dedyn.io", "domain_mode", "desec"}, "desec_token", "validate.desec_token.empty", nil},
		{"server port 0", "domain", rfc2136("rfc2136_server", "ns1.example.net:0"), "rfc2136_server", "validate.port.invalid", []any{"value", "0"}},
		{"server name", "domain", rfc2136("rfc2136_server", "ns 1"), "rfc2136_server", "validate.host.invalid", []any{"value", "ns 1"}},
		{"no server", "domain", rfc2136("rfc2136_server", ""), "rfc2136_server", "validate.host.empty", nil},
		{"zone elsewhere", "domain", rfc2136("rfc2136_zone", "mueller.de"), "rfc2136_zone", "validate.rfc2136_zone.outside",
			[]any{"zone", "mueller.de", "name", "familie-mueller.de"}},
		{"zone reserved", "domain", rfc2136("rfc2136_zone", "example.com"), "rfc2136_zone", "validate.domain.special",
			[]any{"name", "example.com"}},
		{"key name", "domain", rfc2136("rfc2136_key_name", "my key"), "rfc2136_key_name", "validate.key_name.invalid", nil},
		{"no key name", "domain", rfc2136("rfc2136_key_name", ""), "rfc2136_key_name", "validate.key_name.empty", nil},
		{"algorithm", "domain", rfc2136("rfc2136_algorithm", "hmac-md5"), "rfc2136_algorithm", "validate.tsig_algorithm", nil},
		{"secret not base64", "domain", rfc2136("rfc2136_secret", "not base64!"), "rfc2136_secret", "validate.tsig_secret.base64", nil},
		{"no secret", "domain", rfc2136("rfc2136_secret", ""), "rfc2136_secret", "validate.rfc2136_secret.empty", nil},
		{"update URL over http", "domain", dyndns2("dyndns2_url", "http://dyn.example.net/nic/update"), "dyndns2_url", "validate.update_url.https", nil},
		{"update URL with login", "domain", dyndns2("dyndns2_url", "https://anna:pw@dyn.example.net/nic/update"), "dyndns2_url", "validate.update_url.login", nil},
		{"update URL garbage", "domain", dyndns2("dyndns2_url", "dyn.example.net"), "dyndns2_url", "validate.update_url.invalid", nil},
		{"no update URL", "domain", dyndns2("dyndns2_url", ""), "dyndns2_url", "validate.update_url.empty", nil},
		{"no dynDNS user", "domain", dyndns2("dyndns2_user", ""), "dyndns2_user", "validate.user.empty", nil},
		{"no dynDNS password", "domain", dyndns2("dyndns2_password", ""), "dyndns2_password", "validate.dyndns2_password.empty", nil},
		{"no mail choice", "mail", []string{}, "mail_mode", "validate.mail_mode", nil},
		{"smarthost name", "mail", smarthost("smarthost_host", "smtp example"), "smarthost_host", "validate.host.invalid", []any{"value", "smtp example"}},
		{"smarthost port", "mail", smarthost("smarthost_port", "99999"), "smarthost_port", "validate.port.invalid", []any{"value", "99999"}},
		{"no smarthost port", "mail", smarthost("smarthost_port", ""), "smarthost_port", "validate.port.empty", nil},
		{"465 with STARTTLS", "mail", smarthost("smarthost_tls", "starttls"), "smarthost_tls", "validate.smarthost_tls.465", nil},
		{"587 with implicit TLS", "mail", smarthost("smarthost_port", "587"), "smarthost_tls", "validate.smarthost_tls.587", nil},
		{"no TLS mode", "mail", smarthost("smarthost_tls", ""), "smarthost_tls", "validate.smarthost_tls", nil},
		{"user without password", "mail", smarthost("smarthost_password", ""), "smarthost_password", "validate.smarthost_password.empty", nil},
		{"password without user", "mail", smarthost("smarthost_user", ""), "smarthost_user", "validate.smarthost_user.empty", nil},
		{"password with tab", "mail", smarthost("smarthost_password", "a\tb"), "smarthost_password", "validate.secret.control", nil},
		{"smarthost loopback", "mail", smarthost("smarthost_host", "127.0.0.1"), "smarthost_host", "validate.smarthost_host.loopback", []any{"value", "127.0.0.1"}},
		{"smarthost IPv6 loopback", "mail", smarthost("smarthost_host", "[::1]"), "smarthost_host", "validate.smarthost_host.loopback", []any{"value", "[::1]"}},
		{"smarthost mapped loopback", "mail", smarthost("smarthost_host", "::ffff:127.0.0.1"), "smarthost_host", "validate.smarthost_host.loopback", []any{"value", "::ffff:127.0.0.1"}},
		{"smarthost metadata address", "mail", smarthost("smarthost_host", "169.254.169.254"), "smarthost_host", "validate.smarthost_host.link_local", []any{"value", "169.254.169.254"}},
		{"smarthost IPv6 link-local", "mail", smarthost("smarthost_host", "fe80::1"), "smarthost_host", "validate.smarthost_host.link_local", []any{"value", "fe80::1"}},
		{"smarthost 0.0.0.0", "mail", smarthost("smarthost_host", "0.0.0.0"), "smarthost_host", "validate.smarthost_host.unspecified", []any{"value", "0.0.0.0"}},
		{"smarthost ::", "mail", smarthost("smarthost_host", "::"), "smarthost_host", "validate.smarthost_host.unspecified", []any{"value", "::"}},
		{"smarthost multicast", "mail", smarthost("smarthost_host", "224.0.0.251"), "smarthost_host", "validate.smarthost_host.multicast", []any{"value", "224.0.0.251"}},
		{"smarthost broadcast", "mail", smarthost("smarthost_host", "255.255.255.255"), "smarthost_host", "validate.smarthost_host.multicast", []any{"value", "255.255.255.255"}},
		{"smarthost mDNS name", "mail", smarthost("smarthost_host", "heimwolke.local"), "smarthost_host", "validate.smarthost_host.own", []any{"value", "heimwolke.local"}},
		{"smarthost localhost", "mail", smarthost("smarthost_host", "localhost"), "smarthost_host", "validate.smarthost_host.own", []any{"value", "localhost"}},
		{"channel", "updates", []string{"channel", "nightly", "hour", "3"}, "channel-stable", "validate.channel", nil},
		{"hour", "updates", []string{"channel", "stable", "hour", "24"}, "hour", "validate.hour", nil},
	}
	for _, tt := range tests {
		for _, lang := range []string{"de", "en"} {
			t.Run(tt.name+"/"+lang, func(t *testing.T) {
				env := newTestEnv(t)
				b := newBrowser(t, env.h, lanAddr)
				toDomainStep(t, b, lang)
				path := "/setup/" + tt.step
				switch tt.step {
				case "mail":
					wantRedirect(t, b.submit("/setup/domain", "/setup/domain", form("domain_mode", "none")), "/setup/router")
					wantRedirect(t, b.submit("/setup/router", "/setup/router", form()), "/setup/mail")
				case "updates":
					walkLaterSteps(t, b)
				}
				res := b.submit(path, path, form(tt.values...))
				wantStatus(t, res, http.StatusUnprocessableEntity)
				wantBody(t, res, env.message(lang, tt.key, tt.pairs...), `href="#`+tt.field+`"`)
				if !strings.HasPrefix(tt.field, "domain_mode") && !strings.HasPrefix(tt.field, "mail_mode") &&
					tt.field != "smarthost_tls" && tt.field != "channel-stable" {
					wantBody(t, res, `id="`+tt.field+`-error"`)
				}
				// A failed step does not count as done.
				wantRedirect(t, b.get("/setup/summary"), path)
			})
		}
	}
}

// override returns pairs with the values of changes replaced or added.
func override(pairs, changes []string) []string {
	out := append([]string(nil), pairs...)
	for i := 0; i+1 < len(changes); i += 2 {
		found := false
		for j := 0; j+1 < len(out); j += 2 {
			if out[j] == changes[i] {
				out[j+1] = changes[i+1]
				found = true
			}
		}
		if !found {
			out = append(out, changes[i], changes[i+1])
		}
	}
	return out
}

// TestWizardMessagesInGerman guards a few messages word for word, so that
// the German catalog is not merely complete but also correct.
// TestMailStepRejectsOwnHost guards against a wizard that takes the box's
// own mail host or domain as the outgoing mail server, which sends every
// mail back to the box.
func TestMailStepRejectsOwnHost(t *testing.T) {
	for _, typed := range []string{"mail.familie-mueller.de", "MAIL.Familie-Mueller.de.", "familie-mueller.de"} {
		t.Run(typed, func(t *testing.T) {
			env := newTestEnv(t)
			b := newBrowser(t, env.h, lanAddr)
			toDomainStep(t, b, "de")
			wantRedirect(t, b.submit("/setup/domain", "/setup/domain", form(
				"domain", "familie-mueller.de", "domain_mode", "hetzner", "hetzner_token", "abc")), "/setup/router")
			wantRedirect(t, b.submit("/setup/router", "/setup/router", form()), "/setup/mail")

			res := b.submit("/setup/mail", "/setup/mail", form("mail_mode", "smarthost", "smarthost_host", typed,
				"smarthost_port", "465", "smarthost_tls", "implicit"))
			wantStatus(t, res, http.StatusUnprocessableEntity)
			wantBody(t, res, env.message("de", "validate.smarthost_host.own", "value", typed), "smtp.example.net")
		})
	}

	// The provider's server at another name of the same domain is fine.
	env := newTestEnv(t)
	b := newBrowser(t, env.h, lanAddr)
	toDomainStep(t, b, "de")
	wantRedirect(t, b.submit("/setup/domain", "/setup/domain", form(
		"domain", "familie-mueller.de", "domain_mode", "hetzner", "hetzner_token", "abc")), "/setup/router")
	wantRedirect(t, b.submit("/setup/router", "/setup/router", form()), "/setup/mail")
	wantRedirect(t, b.submit("/setup/mail", "/setup/mail", form("mail_mode", "smarthost", "smarthost_host", "smtp.familie-mueller.de",
		"smarthost_port", "465", "smarthost_tls", "implicit")), "/setup/services")
}

func TestWizardMessagesInGerman(t *testing.T) {
	env := newTestEnv(t)
	b := newBrowser(t, env.h, lanAddr)
	toDomainStep(t, b, "de")
	res := b.submit("/setup/domain", "/setup/domain", form("domain", "heimwolke.local", "domain_mode", "desec"))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, "heimwolke.local ist für lokale Netze und Tests reserviert", "Gib das Token von deSEC ein.")

	wantRedirect(t, b.submit("/setup/domain", "/setup/domain", form("domain_mode", "none")), "/setup/router")
	wantRedirect(t, b.submit("/setup/router", "/setup/router", form()), "/setup/mail")
	res = b.submit("/setup/mail", "/setup/mail", form("mail_mode", "smarthost", "smarthost_host", "smtp.example.net",
		"smarthost_port", "465", "smarthost_tls", "starttls"))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, "Port 465 verwendet TLS von Anfang an.")
}

func TestWizardStepsNeedEarlierSteps(t *testing.T) {
	env := newTestEnv(t)
	b := newBrowser(t, env.h, lanAddr)
	for _, path := range []string{"/setup/domain", "/setup/router", "/setup/mail", "/setup/services", "/setup/updates", "/setup/summary"} {
		wantRedirect(t, b.get(path), "/setup/owner")
	}
	toDomainStep(t, b, "en")
	wantRedirect(t, b.get("/setup/summary"), "/setup/domain")
	b.get("/setup/domain")
	wantRedirect(t, b.post("/setup/apply", form()), "/setup/domain")
	wantRedirect(t, b.get("/setup/progress"), "/setup/summary")

	wantRedirect(t, b.submit("/setup/domain", "/setup/domain", form("domain_mode", "none")), "/setup/router")
	wantRedirect(t, b.get("/setup/summary"), "/setup/router")
	wantRedirect(t, b.get("/setup"), "/setup/router")
}

// TestWizardReloadKeepsEntries checks that a failed step and a reload show
// every entry again, and a kept secret only as a notice, never its value.
func TestWizardReloadKeepsEntries(t *testing.T) {
	const tsigSecret = "c2VjcmV0LXRzaWcta2V5LWJ5dGVzLTMyLWxvbmchIQ=="
	env := newTestEnv(t)
	b := newBrowser(t, env.h, lanAddr)
	toDomainStep(t, b, "de")

	// A valid secret with a zone that does not contain the domain.
	res := b.submit("/setup/domain", "/setup/domain", form(
		"domain", "box.familie-mueller.de", "domain_mode", "rfc2136", "rfc2136_server", "[2001:db8::53]:5353",
		"rfc2136_zone", "mueller.de", "rfc2136_key_name", "heimwolke_key.", "rfc2136_algorithm", "hmac-sha512",
		"rfc2136_secret", `secret "`+tsigSecret+`";`))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	for _, page := range []response{res, b.get("/setup/domain")} {
		wantBody(t, page, `value="box.familie-mueller.de"`, `value="[2001:db8::53]:5353"`, `value="mueller.de"`,
			`value="heimwolke_key."`, `<option value="hmac-sha512" selected>`, `id="rfc2136_secret-saved"`,
			`value="rfc2136" checked`)
		wantNotInBody(t, page, tsigSecret)
	}

	// Correcting the zone alone completes the step with the kept secret.
	wantRedirect(t, b.post("/setup/domain", form(
		"domain", "box.familie-mueller.de", "domain_mode", "rfc2136", "rfc2136_server", "[2001:db8::53]:5353",
		"rfc2136_zone", "familie-mueller.de", "rfc2136_key_name", "heimwolke_key.", "rfc2136_algorithm", "hmac-sha512")), "/setup/router")

	// The router and services checkboxes keep their state.
	wantRedirect(t, b.submit("/setup/router", "/setup/router", form()), "/setup/mail")
	wantNotInBody(t, b.get("/setup/router"), "checked")

	// A valid smarthost password with a wrong port.
	res = b.submit("/setup/mail", "/setup/mail", form("mail_mode", "smarthost", "smarthost_host", "smtp.example.net",
		"smarthost_port", "70000", "smarthost_tls", "starttls", "smarthost_user", "anna@example.net", "smarthost_password", smarthostPass))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	for _, page := range []response{res, b.get("/setup/mail")} {
		wantBody(t, page, `value="smtp.example.net"`, `value="70000"`, `value="anna@example.net"`,
			`value="starttls" checked`, `id="smarthost_password-saved"`)
		wantNotInBody(t, page, smarthostPass)
	}
	wantRedirect(t, b.post("/setup/mail", form("mail_mode", "smarthost", "smarthost_host", "smtp.example.net",
		"smarthost_port", "587", "smarthost_tls", "starttls", "smarthost_user", "anna@example.net")), "/setup/services")

	wantRedirect(t, b.submit("/setup/services", "/setup/services", form("service_mail", "on", "service_files", "on")), "/setup/updates")
	page := b.get("/setup/services")
	wantBody(t, page, `id="service_mail" name="service_mail" value="on" checked`, `id="service_files" name="service_files" value="on" checked`)
	wantNotInBody(t, page, `id="service_chat" name="service_chat" value="on" checked`)

	wantRedirect(t, b.submit("/setup/updates", "/setup/updates", form("channel", "testing", "hour", "22")), "/setup/summary")
	wantBody(t, b.get("/setup/updates"), `value="testing" checked`, `<option value="22" selected>22:00</option>`)

	summary := b.get("/setup/summary")
	wantStatus(t, summary, http.StatusOK)
	wantBody(t, summary, "box.familie-mueller.de", "[2001:db8::53]:5353", "heimwolke_key. (hmac-sha512)",
		secretMask, "smtp.example.net:587", "Kanal Beta, Installation um 22:00 Uhr.",
		"Du leitest die Ports 25, 80, 443, 465, 587, 993 am Router selbst weiter.")
	wantNotInBody(t, summary, tsigSecret, smarthostPass, ownerPassword)
}

// TestWizardApplySendsSettings checks the settings that the agent receives
// for each kind of domain.
func TestWizardApplySendsSettings(t *testing.T) {
	const tsigSecret = "c2VjcmV0LXRzaWcta2V5LWJ5dGVzLTMyLWxvbmchIQ=="
	mail := control.MailSettings{Smarthost: &control.SmarthostSettings{
		Host: "smtp.example.net", Port: 587, TLS: control.SmarthostSTARTTLS, Username: "anna@example.net", Password: smarthostPass}}
	base := func(domain string, dns control.DNSSettings) control.Settings {
		s := control.Settings{
			SchemaVersion: control.SchemaVersion,
			Domain:        domain,
			Language:      "de",
			DNS:           dns,
			Updates:       control.UpdateSettings{Automatic: true, Channel: "stable", Hour: 4},
			Router:        control.RouterSettings{PortMapping: true},
			Mail:          mail,
			Services:      allServices(),
		}
		if domain != "" {
			s.ACME.Email = "anna@" + domain
		}
		return s
	}
	tests := []struct {
		name   string
		domain []string
		want   control.Settings
	}{
		{"hetzner", []string{"domain", "Familie-Mueller.de", "domain_mode", "hetzner", "hetzner_token", hetznerToken},
			base("familie-mueller.de", control.DNSSettings{Provider: "hetzner", Hostname: "familie-mueller.de", Token: hetznerToken})},
		{"deSEC with IDN", []string{"domain", "Müller.dedyn.io.", "domain_mode", "desec", "desec_token", "desec-token-123"},
			base("xn--mller-kva.dedyn.io", control.DNSSettings{Provider: "desec", Hostname: "xn--mller-kva.dedyn.io", Token: "desec-token-123"})},
		{"rfc2136", []string{"domain", "box.familie-mueller.de", "domain_mode", "rfc2136", "rfc2136_server", "ns1.example.net",
			"rfc2136_zone", "familie-mueller.de", "rfc2136_key_name", "heimwolke-key", "rfc2136_algorithm", "hmac-sha512",
			"rfc2136_secret", ` secret "` + tsigSecret + `"; `},
			base("box.familie-mueller.de", control.DNSSettings{Provider: "rfc2136", Hostname: "box.familie-mueller.de",
				RFC2136: &control.RFC2136Settings{Server: "ns1.example.net:53", Zone: "familie-mueller.de", KeyName: "heimwolke-key",
					Algorithm: "hmac-sha512", Secret: tsigSecret}})},
		{"rfc2136 zone is the domain", []string{"domain", "familie-mueller.de", "domain_mode", "rfc2136", "rfc2136_server", "192.0.2.53:5353",
			"rfc2136_key_name", "k", "rfc2136_algorithm", "hmac-sha256", "rfc2136_secret", tsigSecret},
			base("familie-mueller.de", control.DNSSettings{Provider: "rfc2136", Hostname: "familie-mueller.de",
				RFC2136: &control.RFC2136Settings{Server: "192.0.2.53:5353", Zone: "familie-mueller.de", KeyName: "k",
					Algorithm: "hmac-sha256", Secret: tsigSecret}})},
		{"dyndns2", []string{"domain", "familie-mueller.de", "domain_mode", "dyndns2", "dyndns2_url", "https://dyn.example.net/nic/update",
			"dyndns2_user", "anna", "dyndns2_password", "dyn pass"},
			base("familie-mueller.de", control.DNSSettings{Provider: "dyndns2", Hostname: "familie-mueller.de",
				DynDNS2: &control.DynDNS2Settings{UpdateURL: "https://dyn.example.net/nic/update", Username: "anna", Password: "dyn pass"}})},
		{"no domain", []string{"domain", "ignored.example", "domain_mode", "none"}, base("", control.DNSSettings{})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			b := newBrowser(t, env.h, lanAddr)
			walkWizard(t, b)
			wantRedirect(t, b.submit("/setup/domain", "/setup/domain", form(tt.domain...)), "/setup/router")
			for _, step := range []string{"router", "mail", "services", "updates"} {
				res := b.get("/setup/" + step)
				wantStatus(t, res, http.StatusOK)
			}
			applyAndFinish(t, b)

			got := env.agent.received()
			if len(got) != 1 {
				t.Fatalf("agent received %d settings, want 1", len(got))
			}
			if !reflect.DeepEqual(got[0], tt.want) {
				t.Errorf("settings:\ngot  %+v\nwant %+v", got[0], tt.want)
			}
		})
	}
}

func TestWizardApplyTakesServicesAndRouter(t *testing.T) {
	env := newTestEnv(t)
	b := newBrowser(t, env.h, lanAddr)
	walkWizard(t, b)
	wantRedirect(t, b.submit("/setup/router", "/setup/router", form()), "/setup/mail")
	wantRedirect(t, b.submit("/setup/mail", "/setup/mail", form("mail_mode", "direct")), "/setup/services")
	wantRedirect(t, b.submit("/setup/services", "/setup/services", form("service_calendar_contacts", "on")), "/setup/updates")
	wantRedirect(t, b.submit("/setup/updates", "/setup/updates", form("channel", "testing", "hour", "0")), "/setup/summary")
	applyAndFinish(t, b)

	got := env.agent.received()
	if len(got) != 1 {
		t.Fatalf("agent received %d settings, want 1", len(got))
	}
	s := got[0]
	if s.Router.PortMapping {
		t.Error("port mapping allowed although the box was unticked")
	}
	if s.Mail.Smarthost != nil {
		t.Errorf("smarthost %+v, want direct delivery", s.Mail.Smarthost)
	}
	if want := (control.ServiceSettings{CalendarContacts: true}); s.Services != want {
		t.Errorf("services: got %+v, want %+v", s.Services, want)
	}
	if want := (control.UpdateSettings{Automatic: true, Channel: "testing", Hour: 0}); s.Updates != want {
		t.Errorf("updates: got %+v, want %+v", s.Updates, want)
	}
}

// TestRouterStepListsChatPortsOnlyWithChat guards against a router step
// that lists the XMPP ports while the household has no chat: they show
// only once chat is chosen on the services step.
func TestRouterStepListsChatPortsOnlyWithChat(t *testing.T) {
	env := newTestEnv(t)
	b := newBrowser(t, env.h, lanAddr)
	toDomainStep(t, b, "de")
	wantRedirect(t, b.submit("/setup/domain", "/setup/domain", form(
		"domain", "familie-mueller.de", "domain_mode", "hetzner", "hetzner_token", "abc")), "/setup/router")

	res := b.get("/setup/router")
	wantBody(t, res, "<dt>25</dt>", "<dt>443</dt>", "<dt>993</dt>")
	wantNotInBody(t, res, "<dt>5222</dt>", "<dt>5223</dt>", "<dt>5269</dt>", "XMPP")

	walkLaterSteps(t, b) // ticks chat on the services step
	wantBody(t, b.get("/setup/router"), "<dt>5222</dt>", "<dt>5223</dt>", "<dt>5269</dt>")
}

// TestSummaryLabels guards against summary labels that carry the form's
// "(optional)" and a TLS label nested in a second pair of parentheses.
func TestSummaryLabels(t *testing.T) {
	env := newTestEnv(t)
	b := newBrowser(t, env.h, lanAddr)
	toDomainStep(t, b, "de")
	wantRedirect(t, b.submit("/setup/domain", "/setup/domain", form(
		"domain", "box.familie-mueller.de", "domain_mode", "rfc2136", "rfc2136_server", "ns1.example.net",
		"rfc2136_zone", "familie-mueller.de", "rfc2136_key_name", "heimwolke-key", "rfc2136_algorithm", "hmac-sha256",
		"rfc2136_secret", "c2VjcmV0")), "/setup/router")
	wantRedirect(t, b.submit("/setup/router", "/setup/router", form("port_mapping", "on")), "/setup/mail")
	wantRedirect(t, b.submit("/setup/mail", "/setup/mail", form(
		"mail_mode", "smarthost", "smarthost_host", "smtp.example.net", "smarthost_port", "465", "smarthost_tls", "implicit",
		"smarthost_user", "anna@example.net", "smarthost_password", smarthostPass)), "/setup/services")
	wantRedirect(t, b.submit("/setup/services", "/setup/services", form("service_mail", "on")), "/setup/updates")
	wantRedirect(t, b.submit("/setup/updates", "/setup/updates", form("channel", "stable", "hour", "4")), "/setup/summary")

	res := b.get("/setup/summary")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res,
		"<dt>Zone</dt><dd>familie-mueller.de</dd>",
		"<dt>Benutzername</dt><dd>anna@example.net</dd>",
		"<dt>Postausgangsserver</dt><dd>smtp.example.net:465</dd>",
		"<dt>Verschlüsselung</dt><dd>TLS von Anfang an</dd>",
		"<dd>Eigener Nameserver (dynamische Aktualisierung nach RFC 2136)</dd>")
	wantNotInBody(t, res, "(optional)", "(meist Port 465)")
}
