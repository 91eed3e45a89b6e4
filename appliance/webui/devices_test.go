package webui

import (
	"context"
	"encoding/base64"
	"errors"
	"html"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// testDomain stands for the household's domain in the device tests.
const testDomain = "familie-mueller.de"

var deviceLAN = netip.MustParseAddr("192.168.1.20")

// withDomain returns a second handler on env's database whose Options
// name domain, so that sessions from env's browsers work on it too.
func withDomain(t *testing.T, env *testEnv, domain string) *Handler {
	t.Helper()
	h, err := New(Options{Accounts: env.accounts, Setup: env.setup, Logger: slog.New(slog.DiscardHandler), Domain: domain})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// withAgentSettings returns a second handler on env's database whose agent
// serves settings, so that sessions from env's browsers work on it too.
func withAgentSettings(t *testing.T, env *testEnv, settings control.Settings) *Handler {
	t.Helper()
	agent := startTestAgent(t, filepath.Join(t.TempDir(), "agent.sock"))
	agent.serveSettings(settings)
	h, err := New(Options{Accounts: env.accounts, Setup: env.setup, Logger: slog.New(slog.DiscardHandler), AgentSocket: agent.socket})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestDevicePagesUseAgentDomain guards against device pages and profiles
// that name heimwolke.local although the household set up a domain: the
// names come from the agent's settings when Options.Domain is empty.
func TestDevicePagesUseAgentDomain(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, env.h, lanAddr)
	logIn(t, b, "anna", ownerPassword)

	_, res, _ := createDevicePassword(t, b, "thunderbird", "Thunderbird")
	wantBody(t, res,
		"<code>anna@familie-mueller.de</code>",
		`<code id="imap-host">mail.familie-mueller.de</code>`,
		`<code id="smtp-host">mail.familie-mueller.de</code>`,
		`<code id="calendar-url">https://familie-mueller.de/<wbr>`)
	wantNotInBody(t, res, "heimwolke.local")

	// The profile names the same servers, which checkProfile compares with testDomain.
	checkProfile(t, parsePlist(t, b.get(createProfile(t, b, "iPhone von Anna")).body))
}

// TestDevicePagesLANOnly checks that a household without a domain gets
// heimwolke.local everywhere, also before the agent has any settings.
func TestDevicePagesLANOnly(t *testing.T) {
	env := setupDone(t)
	for _, tc := range []struct {
		name     string
		settings *control.Settings
	}{
		{"LAN-only settings", &control.Settings{SchemaVersion: control.SchemaVersion}},
		{"no settings", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			agent := startTestAgent(t, filepath.Join(t.TempDir(), "agent.sock"))
			if tc.settings != nil {
				agent.serveSettings(*tc.settings)
			}
			h, err := New(Options{Accounts: env.accounts, Setup: env.setup, Logger: slog.New(slog.DiscardHandler), AgentSocket: agent.socket})
			if err != nil {
				t.Fatal(err)
			}
			b := newBrowser(t, h, lanAddr)
			logIn(t, b, "anna", ownerPassword)
			_, res, _ := createDevicePassword(t, b, "thunderbird", "Thunderbird")
			wantBody(t, res,
				`id="lan-name"`,
				"<code>anna@heimwolke.local</code>",
				`<code id="imap-host">heimwolke.local</code>`,
				`<code id="calendar-url">https://heimwolke.local/<wbr>`)
		})
	}
}

// decodeQR decodes the QR code in a PNG image with zbarimg, the reader of
// the ZBar project, and returns its text.
func decodeQR(t *testing.T, png []byte) string {
	t.Helper()
	zbarimg := testpeer.Require(t, "zbarimg", "zbar-tools")
	path := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(path, png, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(zbarimg, "--quiet", "--raw", path).Output()
	if err != nil {
		t.Fatalf("zbarimg %s: %v", path, err)
	}
	text := strings.TrimSuffix(string(out), "\n")
	if strings.Contains(text, "\n") {
		t.Fatalf("zbarimg found several codes: %q", text)
	}
	return text
}

// qrOnPage returns the PNG of the QR code image with id on the page.
func qrOnPage(t *testing.T, res response, id string) []byte {
	t.Helper()
	pattern := regexp.MustCompile(`id="` + id + `" src="([^"]+)"`)
	m := pattern.FindStringSubmatch(res.body)
	if m == nil {
		t.Fatalf("page lacks the QR code #%s; body:\n%s", id, res.body)
	}
	// html/template writes '+' as "&#43;" in attributes.
	src := html.UnescapeString(m[1])
	data, ok := strings.CutPrefix(src, "data:image/png;base64,")
	if !ok {
		t.Fatalf("QR code #%s has the source %.40q…, want a data: URL of a PNG", id, src)
	}
	png, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		t.Fatalf("QR code #%s: %v", id, err)
	}
	return png
}

// createDevicePassword posts the form of the device page kind and returns
// the path of the page that follows, that page, and the new app password
// on it.
func createDevicePassword(t *testing.T, b *browser, kind, name string) (string, response, string) {
	t.Helper()
	res := b.submit("/account/devices/"+kind, "/account/devices/"+kind, form("app_name", name))
	prefix := "/account/devices/" + kind + "?created="
	location := res.header.Get("Location")
	if res.status != http.StatusSeeOther || !strings.HasPrefix(location, prefix) || !strings.HasSuffix(location, "#settings") {
		t.Fatalf("got %d to %q, want 303 to %s…#settings; body:\n%s", res.status, location, prefix, res.body)
	}
	page, _, _ := strings.Cut(location, "#")
	res = b.get(page)
	wantStatus(t, res, http.StatusOK)
	m := secretPattern.FindStringSubmatch(res.body)
	if m == nil {
		t.Fatalf("page lacks the new app password; body:\n%s", res.body)
	}
	return page, res, m[1]
}

// wantScopes checks that secret opens exactly the services in scope.
func wantScopes(t *testing.T, store *accounts.Store, user, secret string, scope accounts.Scope) {
	t.Helper()
	ctx := context.Background()
	for _, s := range []struct {
		scope    accounts.Scope
		protocol string
	}{{accounts.ScopeMail, "imap"}, {accounts.ScopeDAV, "dav"}, {accounts.ScopeXMPP, "xmpp"}} {
		_, err := store.CheckAppPassword(ctx, user, secret, deviceLAN, s.protocol, s.scope)
		switch {
		case scope&s.scope != 0 && err != nil:
			t.Errorf("app password for %s: %v, want accepted", s.protocol, err)
		case scope&s.scope == 0 && !errors.Is(err, accounts.ErrBadCredentials):
			t.Errorf("app password for %s: got %v, want ErrBadCredentials", s.protocol, err)
		}
	}
}

func TestDevicePagesRequireLogin(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, env.h, lanAddr)
	for _, path := range []string{
		"/account/totp", "/account/devices", "/account/devices/thunderbird", "/account/devices/apple",
		"/account/devices/android", "/account/devices/files", "/account/devices/apple/profile?id=x",
	} {
		if res := b.get(path); res.status != http.StatusSeeOther || res.header.Get("Location") != "/login" {
			t.Errorf("GET %s logged out: got %d to %q, want 303 to /login", path, res.status, res.header.Get("Location"))
		}
	}

	// A visitor's own CSRF token passes the form check, and the handlers
	// then send the visitor to the login.
	for _, path := range []string{
		"/account/totp/start", "/account/totp/enable", "/account/totp/disable",
		"/account/devices/thunderbird", "/account/devices/apple",
	} {
		b.get("/login")
		if res := b.post(path, form("app_name", "Laptop", "code", "123456", "totp_password", ownerPassword)); res.status != http.StatusSeeOther || res.header.Get("Location") != "/login" {
			t.Errorf("POST %s logged out: got %d to %q, want 303 to /login", path, res.status, res.header.Get("Location"))
		}
	}
}

func TestDevicePagesCSRF(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, env.h, lanAddr)
	logIn(t, b, "anna", ownerPassword)
	b.get("/account/totp")
	valid := b.csrf()
	if valid == "" {
		t.Fatal("TOTP page has no CSRF token")
	}

	posts := []struct {
		path string
		form []string
	}{
		{"/account/totp/start", nil},
		{"/account/totp/enable", []string{"code", "123456"}},
		{"/account/totp/disable", []string{"totp_password", ownerPassword}},
		{"/account/devices/thunderbird", []string{"app_name", "Laptop"}},
		{"/account/devices/apple", []string{"app_name", "iPhone"}},
		{"/account/devices/android", []string{"app_name", "Handy"}},
		{"/account/devices/files", []string{"app_name", "PC"}},
	}
	for _, p := range posts {
		for _, token := range []string{"", "wrong", valid + "x"} {
			f := form(p.form...)
			f.Set("csrf", token)
			res := b.post(p.path, f)
			if res.status != http.StatusForbidden {
				t.Errorf("POST %s with CSRF token %q: got %d, want 403", p.path, token, res.status)
				continue
			}
			wantBody(t, res, "Formular abgelaufen")
		}
	}

	list, err := env.accounts.AppPasswords(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("got %d app passwords, want 0", len(list))
	}
	wantBody(t, b.get("/account/totp"), `id="start-totp"`)
	wantNotInBody(t, b.get("/account/totp"), `id="totp-qr"`)
}

func TestDevicesIndex(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, env.h, lanAddr)
	logIn(t, b, "anna", ownerPassword)
	wantBody(t, b.get("/account"), `href="/account/devices"`, `href="/account/totp"`, "Bisher schützt nur Dein Passwort Dein Konto.")

	// The wizard sent familie-mueller.de to the agent, so the page has
	// no note on the LAN name.
	res := b.get("/account/devices")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "Gerät einrichten",
		`href="/account/devices/thunderbird"`, `href="/account/devices/apple"`,
		`href="/account/devices/android"`, `href="/account/devices/files"`)
	wantNotInBody(t, res, `id="lan-name"`, "heimwolke.local")

	// Without a domain, it explains the LAN name.
	lan := newBrowser(t, withAgentSettings(t, env, control.Settings{SchemaVersion: control.SchemaVersion}), lanAddr)
	logIn(t, lan, "anna", ownerPassword)
	wantBody(t, lan.get("/account/devices"), `id="lan-name"`, "heimwolke.local")

	wantStatus(t, b.get("/account/devices/blackberry"), http.StatusNotFound)
}

func TestThunderbirdPage(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, withDomain(t, env, testDomain), lanAddr)
	logIn(t, b, "anna", ownerPassword)

	res := b.get("/account/devices/thunderbird")
	wantBody(t, res, `value="Thunderbird"`, `id="create-device-password"`)
	wantNotInBody(t, res, "app-password-secret", "993")

	page, res, secret := createDevicePassword(t, b, "thunderbird", "Thunderbird im Büro")
	wantBody(t, res,
		"Dein neues App-Passwort für Thunderbird im Büro",
		"<code>anna@familie-mueller.de</code>",
		`<code id="imap-host">mail.familie-mueller.de</code>, Port 993, SSL/TLS`,
		`<code id="smtp-host">mail.familie-mueller.de</code>, Port 465, SSL/TLS`,
		`<code id="calendar-url">https://familie-mueller.de/<wbr>dav/<wbr>calendars/<wbr>anna/<wbr></code>`,
		`<code id="addressbook-url">https://familie-mueller.de/<wbr>dav/<wbr>addressbooks/<wbr>anna/<wbr></code>`)
	wantScopes(t, env.accounts, "anna", secret, accounts.ScopeMail|accounts.ScopeDAV)

	// The secret is shown once; the account page lists the name.
	wantNotInBody(t, b.get(page), secret)
	wantBody(t, b.get("/account"), "Thunderbird im Büro", "E-Mail, Kalender, Kontakte, Dateien")
}

func TestFilesPage(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, withDomain(t, env, testDomain), lanAddr)
	logIn(t, b, "ben", memberPassword) // Ben's language is English

	_, res, secret := createDevicePassword(t, b, "files", "Laptop")
	wantBody(t, res,
		`<code id="files-url">https://familie-mueller.de/<wbr>dav/<wbr>files/<wbr>ben/<wbr></code>`,
		"Map network drive", "Connect to Server", "Registered User")
	wantScopes(t, env.accounts, "ben", secret, accounts.ScopeDAV)
}

func TestAndroidPageQRCodes(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, withDomain(t, env, testDomain), lanAddr)
	logIn(t, b, "anna", ownerPassword)

	_, res, secret := createDevicePassword(t, b, "android", "Annas Handy")
	if csp := res.header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src data:") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q, want default-src 'none' widened by img-src data:", csp)
	}
	wantScopes(t, env.accounts, "anna", secret, accounts.ScopeAll)

	davx5 := decodeQR(t, qrOnPage(t, res, "davx5-qr"))
	u, err := url.Parse(davx5)
	if err != nil {
		t.Fatalf("DAVx⁵ QR code %q: %v", davx5, err)
	}
	password, _ := u.User.Password()
	if u.Scheme != "davx5" || u.User.Username() != "anna" || password != secret || u.Host != testDomain || u.Path != "/dav/calendars/anna/" {
		t.Errorf("DAVx⁵ QR code %q, want davx5://anna:<secret>@%s/dav/calendars/anna/", davx5, testDomain)
	}
	wantBody(t, res, `href="`+davx5+`"`)

	if got, want := decodeQR(t, qrOnPage(t, res, "xmpp-qr")), "xmpp:anna@familie-mueller.de"; got != want {
		t.Errorf("XMPP QR code %q, want %q", got, want)
	}
	wantBody(t, res, `<code id="jid">anna@familie-mueller.de</code>`)
}

func TestDeviceNameValidation(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, env.h, lanAddr)
	logIn(t, b, "ben", memberPassword)
	b.get("/account/devices/thunderbird")

	res := b.post("/account/devices/thunderbird", form("app_name", "  "))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, "Give the app password a name")

	res = b.post("/account/devices/apple", form("app_name", strings.Repeat("x", 101)))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, "The name has 101 characters", "Create profile")

	list, err := env.accounts.AppPasswords(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("got %d app passwords, want 0", len(list))
	}
}

func TestGroupInFours(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"ABC", "ABC"},
		{"ABCD", "ABCD"},
		{"ABCDE", "ABCD E"},
		{"ABCDEFGHIJKLMNOP", "ABCD EFGH IJKL MNOP"},
	}
	for _, tt := range tests {
		if got := groupInFours(tt.in); got != tt.want {
			t.Errorf("groupInFours(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
