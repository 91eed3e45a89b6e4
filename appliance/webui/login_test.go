package webui

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLoginAndLogout(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, env.h, lanAddr)
	wantRedirect(t, b.get("/account"), "/login")

	res := b.submit("/login", "/login", form("login_name", "anna", "login_password", "falsches passwort"))
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "The login name or the password is wrong", `value="anna"`)
	if _, ok := b.cookies[sessionCookie]; ok {
		t.Fatal("session cookie set after a wrong password")
	}

	// Login names are compared without regard to ASCII case.
	logIn(t, b, "Anna", ownerPassword)
	res = b.get("/account")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "Hallo Anna Müller!", `lang="de"`)
	wantRedirect(t, b.get("/login"), "/account")

	b.get("/account")
	wantRedirect(t, b.post("/logout", form()), "/login?notice=logged_out")
	if _, ok := b.cookies[sessionCookie]; ok {
		t.Error("session cookie kept after logout")
	}
	wantRedirect(t, b.get("/account"), "/login")
	wantBody(t, b.get("/login?notice=logged_out"), "You are logged out.")
}

func TestSessionCookieAttributes(t *testing.T) {
	env := setupDone(t)
	for _, overTLS := range []bool{false, true} {
		b := newBrowser(t, env.h, lanAddr)
		b.tls = overTLS
		logIn(t, b, "anna", ownerPassword)
		c := b.cookies[sessionCookie]
		if c == nil {
			t.Fatalf("TLS %v: no session cookie", overTLS)
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
			t.Errorf("TLS %v: cookie HttpOnly=%v SameSite=%v Path=%q, want true, Lax, /", overTLS, c.HttpOnly, c.SameSite, c.Path)
		}
		if c.Secure != overTLS {
			t.Errorf("TLS %v: cookie Secure=%v, want %v", overTLS, c.Secure, overTLS)
		}
	}
}

func TestPlainHTTPOnlyFromLAN(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, env.h, internetAddr)
	res := b.get("/login")
	wantStatus(t, res, http.StatusForbidden)
	wantBody(t, res, "only available over an encrypted connection", "nur über eine verschlüsselte Verbindung", "203.0.113.5")

	b.tls = true
	wantStatus(t, b.get("/login"), http.StatusOK)
}

func TestLanguageChoiceOnLoginPage(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, env.h, lanAddr)
	b.acceptLanguage = "en-US"
	res := b.get("/login")
	wantBody(t, res, `<html lang="en">`, `href="/login?lang=de"`, ">Deutsch</a>")

	res = b.get("/login?lang=de")
	wantBody(t, res, `<html lang="de">`, "Anmeldename", `href="/login?lang=en"`)
	// The choice sticks in a cookie.
	wantBody(t, b.get("/login"), `<html lang="de">`)
}

func TestCSRFRequiredOnEveryPost(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, env.h, lanAddr)
	logIn(t, b, "anna", ownerPassword)
	b.get("/account")
	valid := b.csrf()
	if valid == "" {
		t.Fatal("account page has no CSRF token")
	}

	posts := []struct {
		path string
		form []string
	}{
		{"/login", []string{"login_name", "anna", "login_password", ownerPassword}},
		{"/logout", nil},
		{"/logout/everywhere", nil},
		{"/account/password", []string{"current_password", ownerPassword, "new_password", "neues langes passwort", "new_password2", "neues langes passwort"}},
		{"/account/app-passwords", []string{"app_name", "Laptop", "scope", "dav"}},
		{"/account/app-passwords/1/revoke", nil},
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

	// Nothing of the above took effect: the session is alive, and no app
	// password exists.
	wantStatus(t, b.get("/account"), http.StatusOK)
	list, err := env.accounts.AppPasswords(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("got %d app passwords, want 0", len(list))
	}

	// The wizard's forms are checked too.
	fresh := newTestEnv(t)
	w := newBrowser(t, fresh.h, lanAddr)
	w.get("/setup/language")
	res := w.post("/setup/language", form("lang", "de", "csrf", "forged"))
	wantStatus(t, res, http.StatusForbidden)
}

func TestLogoutEverywhere(t *testing.T) {
	env := setupDone(t)
	phone := newBrowser(t, env.h, lanAddr)
	laptop := newBrowser(t, env.h, otherLANAddr)
	logIn(t, phone, "anna", ownerPassword)
	logIn(t, laptop, "anna", ownerPassword)
	ben := newBrowser(t, env.h, otherLANAddr)
	logIn(t, ben, "ben", memberPassword)

	phone.get("/account")
	wantRedirect(t, phone.post("/logout/everywhere", form()), "/login?notice=logged_out_everywhere")

	wantRedirect(t, laptop.get("/account"), "/login")
	wantRedirect(t, phone.get("/account"), "/login")
	// Another user's session is not touched.
	wantStatus(t, ben.get("/account"), http.StatusOK)
}

func TestLoginWithTOTP(t *testing.T) {
	env := setupDone(t)
	ctx := context.Background()
	owner, err := env.accounts.UserByName(ctx, "anna")
	if err != nil {
		t.Fatal(err)
	}
	setup, err := env.accounts.StartTOTP(ctx, owner.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := env.accounts.EnableTOTP(ctx, owner.ID, totpCode(t, setup.Secret, now.Add(-30*time.Second))); err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, env.h, lanAddr)
	wantRedirect(t, b.get("/login/totp"), "/login?notice=totp_expired")
	res := b.submit("/login", "/login", form("login_name", "anna", "login_password", ownerPassword))
	wantRedirect(t, res, "/login/totp")
	if _, ok := b.cookies[sessionCookie]; ok {
		t.Fatal("session cookie set before the TOTP code")
	}
	wantRedirect(t, b.get("/account"), "/login")

	res = b.submit("/login/totp", "/login/totp", form("code", "000000"))
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "The code is wrong or was used already.")

	res = b.submit("/login/totp", "/login/totp", form("code", totpCode(t, setup.Secret, now)))
	wantRedirect(t, res, "/account")
	wantStatus(t, b.get("/account"), http.StatusOK)
}

// totpCode computes the RFC 6238 code for the base32 secret at t: HMAC-SHA-1,
// 6 digits, 30-second steps.
func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		t.Fatal(err)
	}
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(at.Unix()/30))
	mac := hmac.New(sha1.New, key)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	offset := sum[len(sum)-1] & 0x0f
	code := binary.BigEndian.Uint32(sum[offset:offset+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", code%1_000_000)
}

// TestWebLoginBruteForce sends 100 wrong passwords from the internet in a
// row: the first ones fail, the rest are refused with 429 and a page that
// shows the wait, and the right password from the LAN still works.
func TestWebLoginBruteForce(t *testing.T) {
	env := setupDone(t)
	attacker := newBrowser(t, env.h, internetAddr)
	attacker.tls = true
	attacker.acceptLanguage = "de"
	attacker.get("/login")
	token := attacker.csrf()

	var failed, throttled int
	for i := range 100 {
		res := attacker.post("/login", form("csrf", token, "login_name", "anna", "login_password", "rate-"+strconv.Itoa(i)))
		switch res.status {
		case http.StatusOK:
			failed++
			if throttled > 0 {
				t.Fatalf("attempt %d: checked again after being throttled", i)
			}
		case http.StatusTooManyRequests:
			throttled++
			retry, err := strconv.Atoi(res.header.Get("Retry-After"))
			if err != nil || retry < 1 {
				t.Fatalf("attempt %d: Retry-After %q, want a positive number of seconds", i, res.header.Get("Retry-After"))
			}
			if !strings.Contains(res.body, "Zu viele fehlgeschlagene Anmeldeversuche. Warte ") {
				t.Fatalf("attempt %d: throttle page lacks the wait; body:\n%s", i, res.body)
			}
		default:
			t.Fatalf("attempt %d: status %d, want 200 or 429", i, res.status)
		}
	}
	if failed == 0 || failed > 10 || throttled < 90 {
		t.Errorf("got %d failed and %d throttled attempts, want 1 to 10 failed and the rest throttled", failed, throttled)
	}

	// The attacker's right guess is refused too while the wait lasts.
	res := attacker.post("/login", form("csrf", token, "login_name", "anna", "login_password", ownerPassword))
	wantStatus(t, res, http.StatusTooManyRequests)

	owner := newBrowser(t, env.h, lanAddr)
	logIn(t, owner, "anna", ownerPassword)
}
