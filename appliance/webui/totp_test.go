package webui

import (
	"context"
	"encoding/base32"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var totpSecretPattern = regexp.MustCompile(`id="totp-secret">([A-Z2-7 ]+)<`)

// startTOTPSetup starts the setup in b and returns the page with the QR
// code and the secret shown as text, without spaces.
func startTOTPSetup(t *testing.T, b *browser) (response, string) {
	t.Helper()
	res := b.submit("/account/totp", "/account/totp/start", form())
	wantRedirect(t, res, "/account/totp#totp-setup")
	res = b.get("/account/totp")
	wantStatus(t, res, http.StatusOK)
	m := totpSecretPattern.FindStringSubmatch(res.body)
	if m == nil {
		t.Fatalf("page lacks the TOTP secret; body:\n%s", res.body)
	}
	return res, strings.ReplaceAll(m[1], " ", "")
}

func TestTOTPSetupAndLogin(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, withDomain(t, env, testDomain), lanAddr)
	logIn(t, b, "anna", ownerPassword)
	res := b.get("/account/totp")
	wantBody(t, res, "Bisher schützt nur Dein Passwort Dein Konto.", `id="start-totp"`)
	wantNotInBody(t, res, `id="totp-qr"`)

	res, secret := startTOTPSetup(t, b)
	if csp := res.header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src data:") {
		t.Errorf("Content-Security-Policy %q lacks img-src data:", csp)
	}
	otpauth := decodeQR(t, qrOnPage(t, res, "totp-qr"))
	checkOTPAuthURI(t, otpauth, "Heimwolke familie-mueller.de", "anna", secret)

	// A wrong code leaves the setup pending and shows the same secret.
	res = b.post("/account/totp/enable", form("code", "000000"))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, "Der Code stimmt nicht.", groupInFours(secret))
	res = b.post("/account/totp/enable", form("code", ""))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, "Gib den sechsstelligen Code aus Deiner App ein.")

	// The code of the previous 30-second step is still accepted, which
	// leaves the current step's code for the login below.
	now := time.Now()
	wantRedirect(t, b.post("/account/totp/enable", form("code", totpCode(t, secret, now.Add(-30*time.Second)))), "/account/totp?done=enabled")
	res = b.get("/account/totp?done=enabled")
	wantBody(t, res, "Die Anmeldung mit Sicherheitscode ist eingeschaltet.", `id="disable-totp"`)
	wantNotInBody(t, res, `id="totp-qr"`, secret)
	wantRedirect(t, b.post("/account/totp/start", form()), "/account/totp")

	fresh := newBrowser(t, env.h, otherLANAddr)
	wantRedirect(t, fresh.submit("/login", "/login", form("login_name", "anna", "login_password", ownerPassword)), "/login/totp")
	wantRedirect(t, fresh.submit("/login/totp", "/login/totp", form("code", totpCode(t, secret, now))), "/account")

	// Turning it off takes the password.
	b.get("/account/totp")
	res = b.post("/account/totp/disable", form("totp_password", "falsches passwort"))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, "Das Passwort stimmt nicht.")
	res = b.post("/account/totp/disable", form("totp_password", ""))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, "Gib Dein Passwort ein.")
	wantRedirect(t, b.post("/account/totp/disable", form("totp_password", ownerPassword)), "/account/totp?done=disabled")
	wantBody(t, b.get("/account/totp?done=disabled"), "Die Anmeldung mit Sicherheitscode ist ausgeschaltet.")

	user, err := env.accounts.UserByName(context.Background(), "anna")
	if err != nil {
		t.Fatal(err)
	}
	if user.TOTPEnabled {
		t.Error("TOTP still enabled after turning it off")
	}
	logIn(t, newBrowser(t, env.h, otherLANAddr), "anna", ownerPassword)
}

// checkOTPAuthURI checks uri against the key URI format that authenticator
// apps read: otpauth://totp/ISSUER:ACCOUNT with the issuer repeated as a
// parameter and the RFC 6238 defaults spelled out.
func checkOTPAuthURI(t *testing.T, uri, issuer, account, secret string) {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatalf("QR code %q: %v", uri, err)
	}
	if u.Scheme != "otpauth" || u.Host != "totp" {
		t.Errorf("QR code %q, want otpauth://totp/…", uri)
	}

	if got, want := strings.TrimPrefix(u.Path, "/"), issuer+":"+account; got != want {
		t.Errorf("label %q, want %q", got, want)
	}
	if strings.Contains(u.RawQuery, "+") {
		t.Errorf("query %q has '+', want spaces as %%20", u.RawQuery)
	}

	q := u.Query()
	for key, want := range map[string]string{"issuer": issuer, "algorithm": "SHA1", "digits": "6", "period": "30", "secret": secret} {
		if got := q.Get(key); got != want {
			t.Errorf("parameter %s = %q, want %q", key, got, want)
		}
	}
	if strings.Contains(q.Get("secret"), "=") {
		t.Errorf("secret %q has padding, want none", q.Get("secret"))
	}

	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(q.Get("secret"))
	if err != nil {
		t.Fatalf("secret %q is not base32: %v", q.Get("secret"), err)
	}
	if len(key) < 20 {
		t.Errorf("secret has %d bytes, want at least 20 (160 bits, RFC 4226 section 4)", len(key))
	}
}

func TestTOTPEnableWithoutSetup(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, env.h, lanAddr)
	logIn(t, b, "ben", memberPassword)
	b.get("/account/totp")
	res := b.post("/account/totp/enable", form("code", "123456"))
	wantStatus(t, res, http.StatusConflict)
	wantBody(t, res, "This setup is no longer valid", `href="#start-totp"`)
}

func TestTOTPNewKeyReplacesOld(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, env.h, lanAddr)
	logIn(t, b, "ben", memberPassword)
	_, first := startTOTPSetup(t, b)
	_, second := startTOTPSetup(t, b)
	if first == second {
		t.Fatal("a new setup showed the same secret")
	}
	wantBody(t, b.get("/account/totp"), "Heimwolke", groupInFours(second))

	res := b.post("/account/totp/enable", form("code", totpCode(t, first, time.Now())))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantRedirect(t, b.post("/account/totp/enable", form("code", totpCode(t, second, time.Now()))), "/account/totp?done=enabled")
}
