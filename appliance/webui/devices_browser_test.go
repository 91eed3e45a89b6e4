package webui

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// TestBrowserDevicePages opens the TOTP setup and the device pages in
// headless Chromium on a phone-sized screen, in German as Anna and in
// English as Ben. It checks that no page is wider than the screen, reads
// the QR codes from screenshots of the rendered pages with zbarimg, and
// writes a PNG screenshot of every page like TestBrowserWizardAndAccount.
func TestBrowserDevicePages(t *testing.T) {
	chromium := testpeer.Require(t, "chromium", "chromium")
	testpeer.Require(t, "zbarimg", "zbar-tools")
	shots := screenshotDir(t)

	env := setupDone(t)
	srv := httptest.NewServer(withDomain(t, env, testDomain)) // listens on 127.0.0.1, a LAN address
	t.Cleanup(srv.Close)

	users := map[string][2]string{"de": {"anna", ownerPassword}, "en": {"ben", memberPassword}}
	for _, lang := range []string{"de", "en"} {
		t.Run(lang, func(t *testing.T) {
			tab := newTab(t, chromium, srv.URL, shots, lang)
			name := users[lang][0]
			tab.open("/login")
			tab.fill("login_name", name)
			tab.fill("login_password", users[lang][1])
			tab.click("login")
			if got := tab.at(); got != "/account" {
				t.Fatalf("after login at %s, want /account", got)
			}

			runTOTPSetup(t, tab, env)
			runDevicePages(t, tab, env, name)
		})
	}
}

func runTOTPSetup(t *testing.T, b *tab, env *testEnv) {
	b.open("/account/totp")
	b.want(env, "TOTP page heading", b.heading(), "totp.title")
	wantFitsScreen(t, b)
	b.shot("8-totp")

	if status := b.click("start-totp"); status != http.StatusOK {
		t.Errorf("starting TOTP setup: status %d, want 200", status)
	}
	wantFitsScreen(t, b)
	b.shot("8-totp-setup")
	uri, err := url.Parse(decodeQR(t, b.screenshot("totp-qr")))
	if err != nil {
		t.Fatalf("TOTP QR code on screen: %v", err)
	}
	secret := strings.ReplaceAll(b.text("totp-secret"), " ", "")
	if uri.Scheme != "otpauth" || uri.Host != "totp" || uri.Query().Get("secret") != secret {
		t.Errorf("TOTP QR code on screen %q, want an otpauth://totp/ URI with the secret %s shown as text", uri, secret)
	}
}

func runDevicePages(t *testing.T, b *tab, env *testEnv, user string) {
	b.open("/account/devices")
	b.want(env, "device list heading", b.heading(), "devices.title")
	wantFitsScreen(t, b)
	b.shot("9-devices")

	for _, kind := range deviceKinds {
		b.open("/account/devices/" + kind.Slug)
		b.want(env, kind.Slug+" page heading", b.heading(), "devices."+kind.Slug+".title")
		b.shot("9-" + kind.Slug)

		if status := b.click("create-device-password"); status != http.StatusOK {
			t.Errorf("creating the %s app password: status %d, want 200", kind.Slug, status)
		}
		wantFitsScreen(t, b)
		b.shot("9-" + kind.Slug + "-created")

		// The line break opportunities in the URL add no characters.
		if kind.Slug == "thunderbird" {
			if got, want := b.text("calendar-url"), "https://"+testDomain+"/dav/calendars/"+user+"/"; got != want {
				t.Errorf("calendar URL on screen %q, want %q", got, want)
			}
		}
	}

	// Read the QR codes of a new Android app password from the screen.
	b.open("/account/devices/android")
	b.click("create-device-password")
	davx5 := decodeQR(t, b.screenshot("davx5-qr"))
	if want := "davx5://" + user + ":" + b.text("app-password-secret") + "@" + testDomain + "/dav/calendars/" + user + "/"; davx5 != want {
		t.Errorf("DAVx⁵ QR code on screen %q, want %q", davx5, want)
	}
	if got, want := decodeQR(t, b.screenshot("xmpp-qr")), "xmpp:"+user+"@"+testDomain; got != want {
		t.Errorf("XMPP QR code on screen %q, want %q", got, want)
	}
}

// screenshot returns a PNG of the element with id as Chromium draws it.
func (b *tab) screenshot(id string) []byte {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.Screenshot(chromedp.ID(id)))
	if err != nil {
		b.t.Fatalf("taking screenshot of #%s: %v", id, err)
	}
	return png
}

// wantFitsScreen fails the test when the page is wider than the screen,
// which on a phone means scrolling sideways.
func wantFitsScreen(t *testing.T, b *tab) {
	t.Helper()
	if !b.eval(`document.documentElement.scrollWidth <= screen.width`) {
		t.Errorf("%s is wider than the screen", b.at())
	}
}
