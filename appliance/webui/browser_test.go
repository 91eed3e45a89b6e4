package webui

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// TestBrowserWizardAndAccount drives headless Chromium through every step
// of the wizard on a phone-sized screen, once in German and once in
// English. The box requires a setup code, and its agent first rejects a
// setting and then takes them. Then the test logs in, creates an app
// password and logs out. It writes a PNG screenshot of every page to
// $HEIMWOLKE_SCREENSHOTS, or to a temporary folder that the test output
// names.
func TestBrowserWizardAndAccount(t *testing.T) {
	chromium := testpeer.Require(t, "chromium", "chromium")
	shots := screenshotDir(t)

	t.Run("internet", func(t *testing.T) {
		env := newTestEnv(t)
		// The browser connects over loopback, so the server pretends that
		// the request came from the internet.
		fromInternet := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.RemoteAddr = internetAddr
			env.h.ServeHTTP(w, r)
		})
		srv := httptest.NewServer(fromInternet)
		t.Cleanup(srv.Close)
		tab := newTab(t, chromium, srv.URL, shots, "de")
		if status := tab.open("/"); status != http.StatusForbidden {
			t.Errorf("GET / from the internet: status %d, want 403", status)
		}
		tab.lang = "de+en"
		tab.shot("0-lan-only")
	})

	for _, lang := range []string{"de", "en"} {
		t.Run(lang, func(t *testing.T) {
			codeFile := filepath.Join(t.TempDir(), "setup-code.txt")
			if err := os.WriteFile(codeFile, []byte(browserSetupCode+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			env := newWizardEnv(t, func(o *Options) {
				o.SetupCodeFile = codeFile
				o.ServicesReady = func() bool { return true }
			})
			srv := httptest.NewServer(env.h) // listens on 127.0.0.1, a LAN address
			t.Cleanup(srv.Close)
			tab := newTab(t, chromium, srv.URL, shots, lang)
			runWizard(t, tab, env, lang)
			runAccount(t, tab, env.testEnv, lang)
		})
	}
}

// tab is a Chromium tab on the test server.
type tab struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string
	lang  string
}

func newTab(t *testing.T, chromium, base, shots, lang string) *tab {
	t.Helper()
	// Register the profile folder first, so that it is removed after the
	// cancels below have stopped Chromium.
	profile := t.TempDir()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelTab)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancelTimeout)

	acceptLanguage := map[string]string{"de": "de-DE,de;q=0.9", "en": "en-GB,en;q=0.9"}[lang]
	err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait))
	if err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	_, err = chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Accept-Language": acceptLanguage},
	})
	if err != nil {
		t.Fatalf("setting Accept-Language: %v", err)
	}
	return &tab{t: t, ctx: ctx, base: base, shots: shots, lang: lang}
}

// open loads path and returns the status of the response.
func (b *tab) open(path string) int64 {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Navigate(b.base+path))
	if err != nil {
		b.t.Fatalf("opening %s: %v", path, err)
	}
	return resp.Status
}

// click clicks the element with id, which sends a form, and returns the
// status of the page that follows.
func (b *tab) click(id string) int64 {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.ID(id)))
	if err != nil {
		b.t.Fatalf("clicking #%s: %v", id, err)
	}
	return resp.Status
}

// clickOnly clicks the element with id, which sends nothing, such as a
// radio button.
func (b *tab) clickOnly(id string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.ID(id))); err != nil {
		b.t.Fatalf("clicking #%s: %v", id, err)
	}
}

// fill replaces the value of the input with id by typing value.
func (b *tab) fill(id, value string) {
	b.t.Helper()
	// The id is one of this test's literals, so it is safe in the script.
	err := chromedp.Do(b.ctx,
		chromedp.Evaluate[chromedp.Void](`document.getElementById("`+id+`").value = ""`),
		chromedp.SendKeys(chromedp.ID(id), value),
	)
	if err != nil {
		b.t.Fatalf("filling #%s: %v", id, err)
	}
}

func (b *tab) text(id string) string {
	b.t.Helper()
	text, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.ID(id)))
	if err != nil {
		b.t.Fatalf("reading #%s: %v", id, err)
	}
	return strings.TrimSpace(text)
}

func (b *tab) eval(expression string) bool {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](expression))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expression, err)
	}
	return v
}

// heading returns the text of the page's h1.
func (b *tab) heading() string {
	b.t.Helper()
	text, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("h1")))
	if err != nil {
		b.t.Fatalf("reading h1: %v", err)
	}
	return strings.TrimSpace(text)
}

// at returns the path and query of the page.
func (b *tab) at() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		b.t.Fatal(err)
	}
	return u.RequestURI()
}

// shot writes a screenshot of the whole page to <lang>-<name>.png.
func (b *tab) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("taking screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, b.lang+"-"+name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// want fails the test unless got equals the message key in the tab's
// language.
func (b *tab) want(env *testEnv, subject, got, key string) {
	b.t.Helper()
	if want := env.h.t(b.lang, key); got != want {
		b.t.Errorf("%s: got %q, want %q", subject, got, want)
	}
}

// browserSetupCode is the setup code of the browser test's box.
const browserSetupCode = "K7QM-2XPA-9RTF"

func runWizard(t *testing.T, b *tab, env *wizardEnv, lang string) {
	if status := b.open("/"); status != http.StatusOK || b.at() != "/setup/code" {
		t.Fatalf("opening /: got %d at %s, want 200 at /setup/code", status, b.at())
	}
	b.want(env.testEnv, "code step heading", b.heading(), "setup.code.title")
	b.shot("00-code")
	b.fill("setup_code", "K7QM-2XPA-0000")
	if status := b.click("next"); status != http.StatusUnprocessableEntity {
		t.Errorf("wrong setup code: status %d, want 422", status)
	}
	b.want(env.testEnv, "setup code error", b.text("setup_code-error"), "validate.setup_code.wrong")
	b.shot("00-code-wrong")
	b.fill("setup_code", strings.ToLower(browserSetupCode))
	b.click("next")

	if b.at() != "/setup/language" {
		t.Fatalf("after the setup code at %s, want /setup/language", b.at())
	}
	b.want(env.testEnv, "first page heading", b.heading(), "firstboot.title")
	if !b.eval(`document.getElementById("lang-` + lang + `").checked`) {
		t.Errorf("language %s not preselected from Accept-Language", lang)
	}
	b.shot("01-language")

	b.click("next")
	b.want(env.testEnv, "owner step heading", b.heading(), "setup.owner.title")
	b.shot("02-owner")

	// A wrong entry first: the page names both problems and keeps the
	// display name.
	b.fill("name", "Anna Müller")
	b.fill("display_name", "Anna Müller")
	b.fill("password", "kurz")
	b.fill("password2", "kurz")
	if status := b.click("next"); status != http.StatusUnprocessableEntity {
		t.Errorf("owner step with errors: status %d, want 422", status)
	}
	b.want(env.testEnv, "login name error", b.text("name-error"), "validate.name.chars")
	if got := b.text("password-error"); !strings.Contains(got, "4") {
		t.Errorf("password error %q does not name the 4 characters", got)
	}
	if !b.eval(`document.getElementById("display_name").value === "Anna Müller"`) {
		t.Error("display name lost after the failed step")
	}
	b.shot("02-owner-errors")

	b.fill("name", "anna")
	b.fill("password", ownerPassword)
	b.fill("password2", ownerPassword)
	b.click("next")
	b.want(env.testEnv, "members step heading", b.heading(), "setup.members.title")
	b.shot("03-members")

	b.fill("name", "ben")
	b.fill("display_name", "Ben Beispiel")
	b.fill("password", memberPassword)
	b.fill("password2", memberPassword)
	if err := chromedp.Do(b.ctx, chromedp.SetValue(chromedp.ID("language"), "en")); err != nil {
		t.Fatal(err)
	}
	b.click("add")
	if got := b.text("members"); !strings.Contains(got, "Ben Beispiel") {
		t.Errorf("member list %q lacks Ben Beispiel", got)
	}
	b.shot("03-members-added")

	b.click("next")
	runDomainStep(t, b, env)
	runLaterSteps(t, b, env)

	b.want(env.testEnv, "summary heading", b.heading(), "setup.summary.title")
	if got := b.text("owner-name"); got != "anna" {
		t.Errorf("summary owner %q, want anna", got)
	}
	if got := b.text("summary-domain-name"); got != "müller-familie.de (xn--mller-familie-wob.de)" {
		t.Errorf("summary domain %q, want the name in Unicode and in ASCII", got)
	}
	b.shot("09-summary")

	// The agent rejects the token first. The progress page shows the
	// agent's message and links to the domain step, which kept every entry.
	env.agent.rejectWith(&control.ValidationError{Problems: []control.Problem{
		{Field: "dns.token", Message: "rejected by Hetzner: token lacks write permission"}}})
	b.click("apply")
	if got := b.at(); got != "/setup/progress" {
		t.Fatalf("after apply at %s, want /setup/progress", got)
	}
	if got := b.text("progress-settings-detail"); !strings.Contains(got, "token lacks write permission") {
		t.Errorf("progress detail %q lacks the agent's message", got)
	}
	if env.setup.Complete() {
		t.Error("setup complete although the agent rejected the settings")
	}
	b.shot("10-progress-rejected")

	b.click("fix-settings")
	if got := b.at(); got != "/setup/domain" {
		t.Fatalf("fix link led to %s, want /setup/domain", got)
	}
	if !b.eval(`document.getElementById("hetzner_token-saved") !== null`) {
		t.Error("domain step lost the kept token")
	}
	env.agent.rejectWith(nil)
	env.agent.setStatus(browserAgentStatus())
	b.fill("hetzner_token", hetznerToken)
	for _, step := range []string{"domain", "router", "mail", "services", "updates"} {
		if status := b.click("next"); status != http.StatusOK {
			t.Fatalf("continuing from the %s step: status %d, want 200", step, status)
		}
	}
	b.click("apply")
	for _, id := range []string{"accounts", "settings", "dns", "certificate", "services"} {
		if got := b.text("progress-" + id + "-state"); got != env.h.t(lang, "setup.progress.state.done") {
			t.Errorf("progress of %s: got %q, want done", id, got)
		}
	}
	b.shot("11-progress-done")

	b.click("finish")
	if got := b.at(); got != "/account?notice=setup_done" {
		t.Fatalf("after finish at %s, want /account?notice=setup_done", got)
	}
	if !env.setup.Complete() {
		t.Error("setup not complete after finish")
	}
	b.shot("12-account")
}

// runDomainStep first sends the domain step with a broken RFC 2136 entry,
// then with an internationalized domain at Hetzner.
func runDomainStep(t *testing.T, b *tab, env *wizardEnv) {
	b.want(env.testEnv, "domain step heading", b.heading(), "setup.domain.title")
	b.shot("04-domain")

	b.fill("domain", "müller-familie.de")
	b.clickOnly("mode-rfc2136")
	b.fill("rfc2136_server", "ns1.example.net:99999")
	b.fill("rfc2136_key_name", "heimwolke-key")
	b.fill("rfc2136_secret", "kein base64!")
	if status := b.click("next"); status != http.StatusUnprocessableEntity {
		t.Errorf("domain step with errors: status %d, want 422", status)
	}
	b.want(env.testEnv, "TSIG secret error", b.text("rfc2136_secret-error"), "validate.tsig_secret.base64")
	if !b.eval(`document.getElementById("rfc2136_key_name").value === "heimwolke-key"`) {
		t.Error("key name lost after the failed step")
	}
	b.shot("04-domain-errors")

	b.clickOnly("mode-hetzner")
	b.fill("hetzner_token", hetznerToken)
	b.shot("04-domain-hetzner")
	b.click("next")
}

// runLaterSteps goes through the steps from router to updates.
func runLaterSteps(t *testing.T, b *tab, env *wizardEnv) {
	b.want(env.testEnv, "router step heading", b.heading(), "setup.router.title")
	if !b.eval(`document.getElementById("port_mapping").checked`) {
		t.Error("port mapping not allowed by default")
	}
	b.shot("05-router")
	b.click("next")

	b.want(env.testEnv, "mail step heading", b.heading(), "setup.mail.title")
	b.clickOnly("mail-smarthost")
	b.fill("smarthost_host", "smtp.example.net")
	b.fill("smarthost_port", "587")
	b.clickOnly("tls-starttls")
	b.fill("smarthost_user", "anna@example.net")
	b.fill("smarthost_password", smarthostPass)
	b.shot("06-mail")
	b.click("next")

	b.want(env.testEnv, "services step heading", b.heading(), "setup.services.title")
	b.clickOnly("service_website")
	b.shot("07-services")
	b.click("next")

	b.want(env.testEnv, "updates step heading", b.heading(), "setup.updates.title")
	b.shot("08-updates")
	b.click("next")
}

// browserAgentStatus is an agent that has published the DNS records and
// obtained the certificate.
func browserAgentStatus() control.Status {
	now := time.Now()
	return control.Status{
		DNS: &control.DNSStatus{Provider: "hetzner", Hostname: "xn--mller-familie-wob.de",
			IPv4: "198.51.100.7", IPv6: "2001:db8::7", LastUpdate: now},
		Certificate: &control.CertificateStatus{Names: []string{"xn--mller-familie-wob.de"},
			NotAfter: now.Add(90 * 24 * time.Hour), LastRenewal: now},
	}
}

func runAccount(t *testing.T, b *tab, env *testEnv, lang string) {
	b.fill("app_name", "Handy")
	// The box has no chat server yet, so chat starts unticked.
	if b.eval(`document.getElementById("scope-xmpp").checked`) {
		t.Error("chat (XMPP) is ticked on the app password form, want unticked")
	}
	b.click("create-app-password")
	secret := b.text("app-password-secret")
	b.shot("6-app-password")

	ctx := context.Background()
	loopback := netip.MustParseAddr("127.0.0.1")
	if _, err := env.accounts.CheckAppPassword(ctx, "anna", secret, loopback, "dav", accounts.ScopeDAV); err != nil {
		t.Errorf("app password %q from the page for DAV: %v", secret, err)
	}
	if _, err := env.accounts.CheckAppPassword(ctx, "anna", secret, loopback, "xmpp", accounts.ScopeXMPP); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Errorf("app password %q from the page for XMPP: got %v, want ErrBadCredentials", secret, err)
	}
	b.open("/account")
	if b.eval(`document.getElementById("app-password-secret") !== null`) {
		t.Error("app password shown a second time")
	}
	if got := b.text("app-passwords"); !strings.Contains(got, "Handy") {
		t.Errorf("app password list %q lacks Handy", got)
	}

	b.click("logout")
	if got := b.at(); got != "/login?notice=logged_out" {
		t.Errorf("after logout at %s, want /login?notice=logged_out", got)
	}
	b.shot("7-logged-out")

	b.fill("login_name", "anna")
	b.fill("login_password", ownerPassword)
	b.click("login")
	if got := b.at(); got != "/account" {
		t.Fatalf("after login at %s, want /account", got)
	}
	greeting := map[string]string{"de": "Hallo Anna Müller!", "en": "Hello Anna Müller!"}[lang]
	if !b.eval(`document.querySelector(".lead").textContent === "` + greeting + `"`) {
		t.Errorf("account page lacks the greeting %q", greeting)
	}
	b.click("logout")
	if status := b.open("/account"); status != http.StatusOK || b.at() != "/login" {
		t.Errorf("/account after logout: got %d at %s, want the login page", status, b.at())
	}
}

// screenshotDir returns the folder for the browser tests' PNG screenshots:
// $HEIMWOLKE_SCREENSHOTS, or a temporary folder that the test output names.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HEIMWOLKE_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}
