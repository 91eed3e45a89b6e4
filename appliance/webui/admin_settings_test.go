package webui

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/control"
)

// newSettingsEnv returns an adminEnv whose agent is a testAgent that holds
// the settings of walkWizard: familie-mueller.de at Hetzner DNS, the
// smarthost smtp.example.net:587 with STARTTLS and every service on.
func newSettingsEnv(t *testing.T) (*adminEnv, *testAgent) {
	t.Helper()
	agent := startTestAgent(t, filepath.Join(t.TempDir(), "agent.sock"))
	env := newAdminEnv(t, func(o *Options) { o.AgentSocket = agent.socket })
	if got := len(agent.received()); got != 1 {
		t.Fatalf("agent received %d settings from the wizard, want 1", got)
	}
	return env, agent
}

// storeSettings sends s to the agent as heimwolke would, so that the
// settings page reads it.
func storeSettings(t *testing.T, agent *testAgent, s control.Settings) {
	t.Helper()
	if err := control.NewClient(agent.socket).PutSettings(context.Background(), s); err != nil {
		t.Fatalf("storing test settings: %v", err)
	}
}

// lastSettings returns the settings that the agent received last.
func lastSettings(t *testing.T, agent *testAgent) control.Settings {
	t.Helper()
	all := agent.received()
	if len(all) == 0 {
		t.Fatal("agent received no settings")
	}
	return all[len(all)-1]
}

// rfc2136Settings returns the wizard's settings with an own name server in
// place of Hetzner DNS.
func rfc2136Settings(t *testing.T, agent *testAgent) control.Settings {
	t.Helper()
	s := lastSettings(t, agent)
	s.DNS = control.DNSSettings{
		Provider: control.DNSRFC2136,
		Hostname: s.Domain,
		RFC2136: &control.RFC2136Settings{
			Server:    "ns1.example.net:53",
			Zone:      s.Domain,
			KeyName:   "heimwolke-key",
			Algorithm: control.TSIGHMACSHA256,
			Secret:    "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY=",
		},
	}
	return s
}

var settingsPosts = []string{"/admin/settings/dns", "/admin/settings/mail", "/admin/settings/services"}

func TestSettingsLoggedOut(t *testing.T) {
	env, agent := newSettingsEnv(t)
	b := newBrowser(t, env.h, otherLANAddr)
	wantRedirect(t, b.get("/admin/settings"), "/login")
	for _, path := range settingsPosts {
		b.get("/login")
		wantRedirect(t, b.post(path, form("hetzner_token", "stolen-token-1234567890", "mail_mode", "direct")), "/login")
	}
	if got := len(agent.received()); got != 1 {
		t.Errorf("agent received %d settings, want only the wizard's 1", got)
	}
}

func TestSettingsForbiddenToMember(t *testing.T) {
	env, agent := newSettingsEnv(t)
	ben := newBrowser(t, env.h, otherLANAddr)
	logIn(t, ben, "ben", memberPassword)

	res := ben.get("/admin/settings")
	wantStatus(t, res, http.StatusForbidden)
	wantNotInBody(t, res, "smtp.example.net")
	for _, path := range settingsPosts {
		ben.get("/account")
		wantStatus(t, ben.post(path, form("hetzner_token", "stolen-token-1234567890", "mail_mode", "direct")), http.StatusForbidden)
	}
	if got := len(agent.received()); got != 1 {
		t.Errorf("agent received %d settings, want only the wizard's 1", got)
	}
}

func TestSettingsNeedCSRF(t *testing.T) {
	env, agent := newSettingsEnv(t)
	for _, path := range settingsPosts {
		res := env.owner.post(path, form("csrf", "forged-token", "hetzner_token", "forged-token-1234567890", "mail_mode", "direct"))
		wantStatus(t, res, http.StatusForbidden)
	}
	if got := len(agent.received()); got != 1 {
		t.Errorf("agent received %d settings, want only the wizard's 1", got)
	}
}

func TestSettingsPageHidesSecrets(t *testing.T) {
	env, _ := newSettingsEnv(t)
	res := env.owner.get("/admin/settings")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res,
		`action="/admin/settings/dns"`, `action="/admin/settings/mail"`, `action="/admin/settings/services"`,
		"familie-mueller.de", "Hetzner DNS", `id="hetzner_token-saved"`, env.message("admin.settings.secret_kept"),
		`value="smtp.example.net"`, `value="587"`, `value="anna@example.net"`, `id="smarthost_password-saved"`,
		`id="service_chat" name="service_chat" value="on" checked`)
	wantNotInBody(t, res, hetznerToken, smarthostPass, `id="rfc2136_server"`, `id="desec_token"`)
}

func TestDashboardLinksSettings(t *testing.T) {
	env, _ := newSettingsEnv(t)
	res := env.owner.get("/admin")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, `<a href="/admin/settings">`+env.message("admin.nav.settings")+`</a>`)
}

func TestSettingsDNSNewToken(t *testing.T) {
	env, agent := newSettingsEnv(t)
	before := lastSettings(t, agent)
	const newToken = "nEw7kQ2mV7xN4pR9sT1uW3yA6bC5dE0fG2hJ4kL6mN8pQ0rS2tU4vW6xY8zA0bC2d"

	res := env.owner.submit("/admin/settings", "/admin/settings/dns", form("hetzner_token", "  "+newToken+"\n"))
	wantRedirect(t, res, "/admin/settings?notice=settings_dns")

	got := lastSettings(t, agent)
	if got.DNS.Token != newToken {
		t.Errorf("DNS token: got %q, want %q", got.DNS.Token, newToken)
	}
	if got.DNS.Provider != control.DNSHetzner {
		t.Errorf("DNS provider: got %q, want %q", got.DNS.Provider, control.DNSHetzner)
	}
	if got.DNS.Hostname != before.DNS.Hostname {
		t.Errorf("DNS hostname: got %q, want %q", got.DNS.Hostname, before.DNS.Hostname)
	}
	if got.Domain != before.Domain {
		t.Errorf("domain: got %q, want %q", got.Domain, before.Domain)
	}
	if got.Mail.Smarthost == nil || *got.Mail.Smarthost != *before.Mail.Smarthost {
		t.Errorf("smarthost: got %+v, want %+v", got.Mail.Smarthost, before.Mail.Smarthost)
	}
	if got.Services != before.Services {
		t.Errorf("services: got %+v, want %+v", got.Services, before.Services)
	}
	if got.Updates != before.Updates || got.ACME != before.ACME || got.Router != before.Router || got.Language != before.Language {
		t.Errorf("updates, ACME, router or language changed: got %+v, want %+v", got, before)
	}

	page := env.owner.get("/admin/settings?notice=settings_dns")
	wantBody(t, page, env.message("admin.settings.saved.dns"))
	wantNotInBody(t, page, newToken)

	logs := strings.Join(env.logs.Lines(), "\n")
	if !strings.Contains(logs, `msg="settings changed" form=dns by=anna`) {
		t.Errorf("log lacks the change; log:\n%s", logs)
	}
	if strings.Contains(logs, newToken) || strings.Contains(logs, hetznerToken) {
		t.Error("log contains a DNS token")
	}
}

func TestSettingsDNSEmptyTokenKeepsStored(t *testing.T) {
	env, agent := newSettingsEnv(t)
	res := env.owner.submit("/admin/settings", "/admin/settings/dns", form("hetzner_token", ""))
	wantRedirect(t, res, "/admin/settings?notice=settings_dns")
	if got := lastSettings(t, agent).DNS.Token; got != hetznerToken {
		t.Errorf("DNS token: got %q, want the stored %q", got, hetznerToken)
	}
}

func TestSettingsDNSInvalidToken(t *testing.T) {
	env, agent := newSettingsEnv(t)
	res := env.owner.submit("/admin/settings", "/admin/settings/dns", form("hetzner_token", "two words"))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, `id="hetzner_token-error"`, env.message("validate.token.chars"))
	if got := len(agent.received()); got != 1 {
		t.Errorf("agent received %d settings, want only the wizard's 1", got)
	}
}

func TestSettingsRFC2136KeepsSecret(t *testing.T) {
	env, agent := newSettingsEnv(t)
	stored := rfc2136Settings(t, agent)
	storeSettings(t, agent, stored)

	page := env.owner.get("/admin/settings")
	wantBody(t, page, `value="ns1.example.net:53"`, `value="heimwolke-key"`, `id="rfc2136_secret-saved"`)
	wantNotInBody(t, page, stored.DNS.RFC2136.Secret, `id="hetzner_token"`)

	res := env.owner.post("/admin/settings/dns", form(
		"rfc2136_server", "ns2.example.net", "rfc2136_zone", "", "rfc2136_key_name", "new-key",
		"rfc2136_algorithm", "hmac-sha512", "rfc2136_secret", ""))
	wantRedirect(t, res, "/admin/settings?notice=settings_dns")

	got := lastSettings(t, agent).DNS.RFC2136
	want := control.RFC2136Settings{
		Server: "ns2.example.net:53", Zone: stored.Domain, KeyName: "new-key",
		Algorithm: control.TSIGHMACSHA512, Secret: stored.DNS.RFC2136.Secret,
	}
	if got == nil || *got != want {
		t.Errorf("RFC 2136 settings: got %+v, want %+v", got, want)
	}
}

func TestSettingsRFC2136InvalidSecret(t *testing.T) {
	env, agent := newSettingsEnv(t)
	storeSettings(t, agent, rfc2136Settings(t, agent))
	sent := len(agent.received())

	res := env.owner.submit("/admin/settings", "/admin/settings/dns", form(
		"rfc2136_server", "ns1.example.net", "rfc2136_key_name", "heimwolke-key",
		"rfc2136_algorithm", "hmac-sha256", "rfc2136_secret", "not base64 !!"))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, `id="rfc2136_secret-error"`, env.message("validate.tsig_secret.base64"))
	// The typed fields come back, the typed secret does not.
	wantBody(t, res, `value="ns1.example.net"`)
	wantNotInBody(t, res, "not base64 !!")
	if got := len(agent.received()); got != sent {
		t.Errorf("agent received %d settings, want %d", got, sent)
	}
}

func TestSettingsDNSWithoutDomain(t *testing.T) {
	env, agent := newSettingsEnv(t)
	s := lastSettings(t, agent)
	s.Domain, s.DNS, s.ACME = "", control.DNSSettings{}, control.ACMESettings{}
	storeSettings(t, agent, s)
	sent := len(agent.received())

	page := env.owner.get("/admin/settings")
	wantBody(t, page, `id="dns-none"`)
	wantNotInBody(t, page, `action="/admin/settings/dns"`)

	res := env.owner.post("/admin/settings/dns", form("hetzner_token", "some-token-1234567890"))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	if got := len(agent.received()); got != sent {
		t.Errorf("agent received %d settings, want %d", got, sent)
	}
}

func TestSettingsMailRelayKeepsPassword(t *testing.T) {
	env, agent := newSettingsEnv(t)
	before := lastSettings(t, agent)
	res := env.owner.submit("/admin/settings", "/admin/settings/mail", form(
		"mail_mode", "smarthost", "smarthost_host", "mail.example.com", "smarthost_port", "465",
		"smarthost_tls", "implicit", "smarthost_user", "anna@example.net", "smarthost_password", ""))
	wantRedirect(t, res, "/admin/settings?notice=settings_mail")

	got := lastSettings(t, agent)
	want := control.SmarthostSettings{Host: "mail.example.com", Port: 465, TLS: control.SmarthostImplicitTLS, Username: "anna@example.net", Password: smarthostPass}
	if got.Mail.Smarthost == nil || *got.Mail.Smarthost != want {
		t.Errorf("smarthost: got %+v, want %+v", got.Mail.Smarthost, want)
	}
	if got.DNS.Token != before.DNS.Token {
		t.Error("DNS token changed with the mail form")
	}
	if got.Services != before.Services {
		t.Errorf("services: got %+v, want %+v", got.Services, before.Services)
	}
	wantBody(t, env.owner.get("/admin/settings?notice=settings_mail"), env.message("admin.settings.saved.mail"))
}

func TestSettingsMailNewPassword(t *testing.T) {
	env, agent := newSettingsEnv(t)
	res := env.owner.submit("/admin/settings", "/admin/settings/mail", form(
		"mail_mode", "smarthost", "smarthost_host", "smtp.example.net", "smarthost_port", "587",
		"smarthost_tls", "starttls", "smarthost_user", "anna@example.net", "smarthost_password", "new relay secret"))
	wantRedirect(t, res, "/admin/settings?notice=settings_mail")
	if got := lastSettings(t, agent).Mail.Smarthost; got == nil || got.Password != "new relay secret" {
		t.Errorf("smarthost: got %+v, want the new password", got)
	}
	if strings.Contains(strings.Join(env.logs.Lines(), "\n"), "new relay secret") {
		t.Error("log contains the relay password")
	}
}

func TestSettingsMailDirect(t *testing.T) {
	env, agent := newSettingsEnv(t)
	res := env.owner.submit("/admin/settings", "/admin/settings/mail", form("mail_mode", "direct"))
	wantRedirect(t, res, "/admin/settings?notice=settings_mail")
	if got := lastSettings(t, agent).Mail.Smarthost; got != nil {
		t.Errorf("smarthost: got %+v, want nil for direct delivery", got)
	}
	wantBody(t, env.owner.get("/admin/settings"), `value="direct" checked`)
}

func TestSettingsMailInvalidPort(t *testing.T) {
	env, agent := newSettingsEnv(t)
	res := env.owner.submit("/admin/settings", "/admin/settings/mail", form(
		"mail_mode", "smarthost", "smarthost_host", "smtp.example.net", "smarthost_port", "58x",
		"smarthost_tls", "starttls", "smarthost_user", "anna@example.net"))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, `id="smarthost_port-error"`, env.message("validate.port.invalid", "value", "58x"), `value="58x"`)
	if !strings.Contains(res.body, "ist kein Port") {
		t.Errorf("port error is not in German; body:\n%s", res.body)
	}
	if got := len(agent.received()); got != 1 {
		t.Errorf("agent received %d settings, want only the wizard's 1", got)
	}
}

func TestSettingsMailOwnHostRejected(t *testing.T) {
	env, agent := newSettingsEnv(t)
	res := env.owner.submit("/admin/settings", "/admin/settings/mail", form(
		"mail_mode", "smarthost", "smarthost_host", "mail.familie-mueller.de", "smarthost_port", "587", "smarthost_tls", "starttls"))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, `id="smarthost_host-error"`, env.message("validate.smarthost_host.own", "value", "mail.familie-mueller.de"))
	if got := len(agent.received()); got != 1 {
		t.Errorf("agent received %d settings, want only the wizard's 1", got)
	}
}

func TestSettingsServices(t *testing.T) {
	env, agent := newSettingsEnv(t)
	before := lastSettings(t, agent)
	res := env.owner.submit("/admin/settings", "/admin/settings/services", form("service_website", "on", "service_files", "on"))
	wantRedirect(t, res, "/admin/settings?notice=settings_services")

	got := lastSettings(t, agent)
	want := control.ServiceSettings{Website: true, Files: true}
	if got.Services != want {
		t.Errorf("services: got %+v, want %+v", got.Services, want)
	}
	if got.DNS.Token != before.DNS.Token {
		t.Error("DNS token changed with the services form")
	}
	if got.Mail.Smarthost == nil || *got.Mail.Smarthost != *before.Mail.Smarthost {
		t.Errorf("smarthost: got %+v, want %+v", got.Mail.Smarthost, before.Mail.Smarthost)
	}
	page := env.owner.get("/admin/settings?notice=settings_services")
	wantBody(t, page, env.message("admin.settings.saved.services"), `id="service_files" name="service_files" value="on" checked`)
	wantNotInBody(t, page, `id="service_mail" name="service_mail" value="on" checked`)
}

func TestSettingsAgentRejection(t *testing.T) {
	env, agent := newSettingsEnv(t)
	agent.rejectWith(&control.ValidationError{Problems: []control.Problem{
		{Field: "mail.smarthost.host", Message: "host does not resolve"},
		{Field: "dns.token", Message: "token lacks write permission"},
	}})
	res := env.owner.submit("/admin/settings", "/admin/settings/mail", form(
		"mail_mode", "smarthost", "smarthost_host", "smtp.example.net", "smarthost_port", "587",
		"smarthost_tls", "starttls", "smarthost_user", "anna@example.net"))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res,
		`<p class="error" id="smarthost_host-error">`+env.message("admin.settings.agent.invalid", "detail", "mail.smarthost.host: host does not resolve"),
		// A problem outside the sent form shows above that form.
		`<p class="error" id="mail-error">`+env.message("admin.settings.agent.invalid", "detail", "dns.token: token lacks write permission"))
	wantNotInBody(t, res, `id="hetzner_token-error"`)
}

func TestSettingsAgentBusy(t *testing.T) {
	env, agent := newSettingsEnv(t)
	agent.rejectWith(control.ErrBusy)
	res := env.owner.submit("/admin/settings", "/admin/settings/services", form("service_website", "on"))
	wantStatus(t, res, http.StatusServiceUnavailable)
	wantBody(t, res, `id="services-problem"`, env.message("admin.settings.agent.busy"))
}

func TestSettingsAgentDown(t *testing.T) {
	env := newAdminEnv(t, nil)
	res := env.owner.get("/admin/settings")
	wantStatus(t, res, http.StatusServiceUnavailable)
	wantBody(t, res, env.message("admin.agent.no_socket"))
}

func TestSettingsRefreshServiceNames(t *testing.T) {
	env, agent := newSettingsEnv(t)
	ctx := context.Background()
	if got, err := env.h.settings.get(ctx); err != nil || !got.Services.Mail {
		t.Fatalf("cached settings before the change: got %+v, %v; want mail on", got.Services, err)
	}
	env.owner.submit("/admin/settings", "/admin/settings/services", form("service_website", "on"))
	got, err := env.h.settings.get(ctx)
	if err != nil || got.Services.Mail {
		t.Errorf("cached settings after the change: got %+v, %v; want mail off", got.Services, err)
	}
	if n := len(agent.received()); n != 2 {
		t.Errorf("agent received %d settings, want 2", n)
	}
}
