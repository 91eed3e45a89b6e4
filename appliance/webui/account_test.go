package webui

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

var secretPattern = regexp.MustCompile(`id="app-password-secret">([a-z0-9-]+)<`)

func TestAppPasswordShownOnce(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, env.h, lanAddr)
	logIn(t, b, "anna", ownerPassword)
	wantBody(t, b.get("/account"), "Du hast noch keine App-Passwörter.")

	res := b.post("/account/app-passwords", form("app_name", "Thunderbird auf dem Laptop", "scope", "mail", "scope", "dav"))
	if res.status != http.StatusSeeOther || !strings.HasPrefix(res.header.Get("Location"), "/account?created=") {
		t.Fatalf("got %d to %q, want 303 to /account?created=…", res.status, res.header.Get("Location"))
	}
	// A browser does not send the fragment.
	secretPage, _, _ := strings.Cut(res.header.Get("Location"), "#")

	res = b.get(secretPage)
	wantStatus(t, res, http.StatusOK)
	m := secretPattern.FindStringSubmatch(res.body)
	if m == nil {
		t.Fatalf("page lacks the new app password; body:\n%s", res.body)
	}
	secret := m[1]
	wantBody(t, res, "Dein neues App-Passwort für Thunderbird auf dem Laptop", "nur dieses eine Mal angezeigt")

	// Reloading the page shows the name only.
	for _, path := range []string{secretPage, "/account"} {
		res = b.get(path)
		wantNotInBody(t, res, secret, "app-password-secret")
		wantBody(t, res, "Thunderbird auf dem Laptop", "E-Mail, Kalender, Kontakte, Dateien", "noch nie")
	}

	// Another user cannot take the secret either.
	ben := newBrowser(t, env.h, otherLANAddr)
	logIn(t, ben, "ben", memberPassword)
	wantNotInBody(t, ben.get(secretPage), "app-password-secret")

	ctx := context.Background()
	lan := netip.MustParseAddr("192.168.1.20")
	if _, err := env.accounts.CheckAppPassword(ctx, "anna", secret, lan, "imap", accounts.ScopeMail); err != nil {
		t.Errorf("app password for mail: %v", err)
	}
	if _, err := env.accounts.CheckAppPassword(ctx, "anna", secret, lan, "xmpp", accounts.ScopeXMPP); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Errorf("app password for XMPP: got %v, want ErrBadCredentials", err)
	}

	// The list now shows the last use.
	res = b.get("/account")
	wantNotInBody(t, res, "noch nie")

	list, err := env.accounts.AppPasswords(ctx, 1)
	if err != nil || len(list) != 1 {
		t.Fatalf("AppPasswords = %v, %v; want one", list, err)
	}
	revoke := "/account/app-passwords/" + strconv.FormatInt(list[0].ID, 10) + "/revoke"
	// Ben cannot revoke Anna's app password.
	ben.get("/account")
	wantStatus(t, ben.post(revoke, form()), http.StatusNotFound)

	wantRedirect(t, b.post(revoke, form()), "/account?notice=app_password_revoked")
	res = b.get("/account?notice=app_password_revoked")
	wantBody(t, res, "Das App-Passwort ist widerrufen", "Du hast noch keine App-Passwörter.")
	if _, err := env.accounts.CheckAppPassword(ctx, "anna", secret, lan, "imap", accounts.ScopeMail); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Errorf("revoked app password: got %v, want ErrBadCredentials", err)
	}
}

func TestAppPasswordValidation(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, env.h, lanAddr)
	logIn(t, b, "ben", memberPassword) // Ben's language is English
	b.get("/account")

	res := b.post("/account/app-passwords", form("app_name", "  "))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, "Give the app password a name", "Choose at least one service.")

	res = b.post("/account/app-passwords", form("app_name", strings.Repeat("x", 101), "scope", "xmpp"))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, "The name has 101 characters", `value="xmpp" checked`)
	wantNotInBody(t, res, `value="mail" checked`)
}

func TestChangePassword(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, env.h, lanAddr)
	other := newBrowser(t, env.h, otherLANAddr)
	logIn(t, b, "anna", ownerPassword)
	logIn(t, other, "anna", ownerPassword)
	const newPassword = "ein neues langes passwort"

	b.get("/account")
	res := b.post("/account/password", form("current_password", "falsch", "new_password", newPassword, "new_password2", newPassword))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, "Das bisherige Passwort stimmt nicht.")

	res = b.post("/account/password", form("current_password", ownerPassword, "new_password", "kurz", "new_password2", "kurz"))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, "Das Passwort hat nur 4 Zeichen")

	res = b.post("/account/password", form("current_password", ownerPassword, "new_password", newPassword, "new_password2", newPassword))
	wantRedirect(t, res, "/account?notice=password_changed")
	wantBody(t, b.get("/account?notice=password_changed"), "Dein Passwort ist geändert")
	wantRedirect(t, other.get("/account"), "/login")

	fresh := newBrowser(t, env.h, otherLANAddr)
	wantBody(t, fresh.submit("/login", "/login", form("login_name", "anna", "login_password", ownerPassword)), "The login name or the password is wrong")
	logIn(t, fresh, "anna", newPassword)
}

func TestFormBodyLimit(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, env.h, lanAddr)
	b.get("/login")
	res := b.post("/login", form("login_name", strings.Repeat("a", maxFormBytes)))
	wantStatus(t, res, http.StatusRequestEntityTooLarge)
}

func TestAccountTrailingSlashRedirects(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, env.h, lanAddr)
	logIn(t, b, "anna", ownerPassword)
	wantRedirect(t, b.get("/account/"), "/account")
}

// TestAppPasswordFormLeavesChatOff guards against an app password form that
// ticks chat while the box has no chat server. The option stays.
func TestAppPasswordFormLeavesChatOff(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, env.h, lanAddr)
	logIn(t, b, "anna", ownerPassword)
	res := b.get("/account")
	wantBody(t, res, `value="mail" checked`, `value="dav" checked`, `id="scope-xmpp" name="scope" value="xmpp">`)
}
