package webui

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

func TestWizardOnlyFromLAN(t *testing.T) {
	env := newTestEnv(t)
	tests := []struct {
		addr string
		lan  bool
	}{
		{"192.168.1.20:1000", true},
		{"10.1.2.3:1000", true},
		{"172.16.0.9:1000", true},
		{"169.254.10.1:1000", true},
		{"127.0.0.1:1000", true},
		{"[::1]:1000", true},
		{"[fe80::1%eth0]:1000", true},
		{"[fd12:3456::1]:1000", true},
		{"[::ffff:192.168.1.20]:1000", true},
		{"203.0.113.5:1000", false},
		{"100.64.1.1:1000", false}, // carrier-grade NAT, shared with other customers
		{"[2001:db8::1]:1000", false},
	}
	for _, tt := range tests {
		b := newBrowser(t, env.h, tt.addr)
		res := b.get("/")
		if tt.lan {
			if res.status != http.StatusSeeOther || res.header.Get("Location") != "/setup" {
				t.Errorf("GET / from %s: got %d to %q, want 303 to /setup", tt.addr, res.status, res.header.Get("Location"))
			}
			continue
		}
		if res.status != http.StatusForbidden {
			t.Errorf("GET / from %s: got %d, want 403", tt.addr, res.status)
			continue
		}
		wantBody(t, res, "Nur aus dem Heimnetz", "Only from your home network",
			"nur aus Deinem Heimnetz einrichten", "can only be set up from your home network")
	}
}

func TestWizardRefusesInternetPost(t *testing.T) {
	env := newTestEnv(t)
	b := newBrowser(t, env.h, internetAddr)
	res := b.post("/setup/apply", form("csrf", "x"))
	wantStatus(t, res, http.StatusForbidden)
	if env.setup.Complete() {
		t.Error("setup complete after a POST from the internet")
	}
}

func TestEveryPathLeadsToWizard(t *testing.T) {
	env := newTestEnv(t)
	b := newBrowser(t, env.h, lanAddr)
	for _, path := range []string{"/", "/login", "/account", "/no/such/page"} {
		wantRedirect(t, b.get(path), "/setup")
	}
	wantRedirect(t, b.get("/setup"), "/setup/language")
	res := b.get("/static/ui.css")
	wantStatus(t, res, http.StatusOK)
}

func TestWizardLanguageFromAcceptLanguage(t *testing.T) {
	env := newTestEnv(t)
	b := newBrowser(t, env.h, lanAddr)
	b.acceptLanguage = "de-AT,de;q=0.9,en;q=0.5"
	res := b.get("/setup/language")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, `<html lang="de">`, `value="de" checked`, "Schritt 1 von 9")

	wantRedirect(t, b.post("/setup/language", form("lang", "en")), "/setup/owner")
	res = b.get("/setup/owner")
	wantBody(t, res, `<html lang="en">`, "Step 2 of 9", "Login name")
}

// TestWizardFirstPageGreets guards what the whole-box test reads after the
// first boot: the welcome title in both languages and the version.
func TestWizardFirstPageGreets(t *testing.T) {
	env := newTestEnv(t)
	for _, tt := range []struct{ accept, title string }{
		{"en", "Welcome to your Heimwolke"},
		{"de-DE,de;q=0.9", "Willkommen bei Deiner Heimwolke"},
	} {
		b := newBrowser(t, env.h, lanAddr)
		b.acceptLanguage = tt.accept
		wantRedirect(t, b.get("/"), "/setup")
		wantRedirect(t, b.get("/setup"), "/setup/language")
		res := b.get("/setup/language")
		wantStatus(t, res, http.StatusOK)
		wantBody(t, res, "<h1>"+tt.title+"</h1>", `<span id="version">v1.2.3-test</span>`)
	}
}

func TestWizardLanguageRejectsUnknown(t *testing.T) {
	env := newTestEnv(t)
	b := newBrowser(t, env.h, lanAddr)
	res := b.submit("/setup/language", "/setup/language", form("lang", "fr"))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, "Choose one of the languages.")
}

// TestWizardValidationMessages checks that each rule of the owner step
// names the problem and the fix, in the wizard's language.
func TestWizardValidationMessages(t *testing.T) {
	long := strings.Repeat("a", 65)
	tests := []struct {
		name, field    string
		values         []string // name, display name, password, repeated
		wantDE, wantEN string
	}{
		{"empty name", "name", []string{"", "", ownerPassword, ownerPassword},
			"Gib einen Anmeldenamen ein", "Enter a login name"},
		{"umlaut", "name", []string{"jürgen", "", ownerPassword, ownerPassword},
			"Schreibe Umlaute aus (ae statt ä, ss statt ß)", "Write umlauts out (ae for ä, ss for ß)"},
		{"space", "name", []string{"anna m", "", ownerPassword, ownerPassword},
			"lass Leerzeichen weg", "leave out spaces"},
		{"leading dot", "name", []string{".anna", "", ownerPassword, ownerPassword},
			"mit einem Buchstaben oder einer Ziffer beginnen und enden", "Begin and end the login name with a letter or a digit."},
		{"double dot", "name", []string{"anna..m", "", ownerPassword, ownerPassword},
			"keine zwei Punkte hintereinander", "must not contain two dots in a row"},
		{"long name", "name", []string{long, "", ownerPassword, ownerPassword},
			"hat 65 Zeichen. Kürze ihn auf höchstens 64.", "has 65 characters. Shorten it to at most 64."},
		{"long display name", "display_name", []string{"anna", strings.Repeat("ü", 101), ownerPassword, ownerPassword},
			"Der Anzeigename hat 101 Zeichen", "The display name has 101 characters"},
		{"empty password", "password", []string{"anna", "", "", ""},
			"Gib ein Passwort ein.", "Enter a password."},
		{"short password", "password", []string{"anna", "", "kurz", "kurz"},
			"Das Passwort hat nur 4 Zeichen. Wähle eines mit mindestens 10.", "The password has only 4 characters. Choose one with at least 10."},
		{"password is name", "password", []string{"annamueller", "", "AnnaMueller", "AnnaMueller"},
			"darf nicht der Anmeldename sein", "must not be the login name"},
		{"control character", "password", []string{"anna", "", "tab\there-and-there", "tab\there-and-there"},
			"keine Steuerzeichen wie Tabulatoren", "must not contain control characters such as tabs"},
		{"mismatch", "password2", []string{"anna", "", ownerPassword, ownerPassword + "!"},
			"Die beiden Passwörter stimmen nicht überein", "The two passwords differ"},
	}
	for _, tt := range tests {
		for _, lang := range []string{"de", "en"} {
			t.Run(tt.name+"/"+lang, func(t *testing.T) {
				env := newTestEnv(t)
				b := newBrowser(t, env.h, lanAddr)
				wantRedirect(t, b.submit("/setup/language", "/setup/language", form("lang", lang)), "/setup/owner")
				res := b.submit("/setup/owner", "/setup/owner", form(
					"name", tt.values[0], "display_name", tt.values[1], "password", tt.values[2], "password2", tt.values[3]))
				wantStatus(t, res, http.StatusUnprocessableEntity)
				want := tt.wantEN
				if lang == "de" {
					want = tt.wantDE
				}
				wantBody(t, res, want, `id="`+tt.field+`-error"`, `href="#`+tt.field+`"`)
			})
		}
	}
}

func TestWizardDraftSurvivesReload(t *testing.T) {
	env := newTestEnv(t)
	b := newBrowser(t, env.h, lanAddr)
	wantRedirect(t, b.submit("/setup/language", "/setup/language", form("lang", "de")), "/setup/owner")

	// A valid password with an invalid login name: the step fails, and the
	// draft keeps both the name as typed and the password.
	res := b.submit("/setup/owner", "/setup/owner", form(
		"name", "Anna M", "display_name", "Anna Müller", "password", ownerPassword, "password2", ownerPassword))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, `value="Anna M"`, `value="Anna Müller"`, "Das eingegebene Passwort ist vorgemerkt")
	wantNotInBody(t, res, ownerPassword)

	// The invalid name does not count as a finished owner step.
	wantRedirect(t, b.get("/setup/summary"), "/setup/owner")

	reloaded := b.get("/setup/owner")
	wantStatus(t, reloaded, http.StatusOK)
	wantBody(t, reloaded, `value="Anna M"`, `value="Anna Müller"`, "Das eingegebene Passwort ist vorgemerkt")
	wantNotInBody(t, reloaded, ownerPassword)

	// Fixing the name alone completes the step with the kept password.
	wantRedirect(t, b.post("/setup/owner", form("name", "anna", "display_name", "Anna Müller")), "/setup/members")

	// A failed member keeps its fields too.
	res = b.submit("/setup/members", "/setup/members", form(
		"action", "add", "name", "anna", "display_name", "Zweite Anna", "password", memberPassword, "password2", memberPassword, "language", "en"))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, "Den Anmeldenamen anna gibt es schon")
	reloaded = b.get("/setup/members")
	wantBody(t, reloaded, `value="Zweite Anna"`, `<option value="en" lang="en" selected>`, "Das eingegebene Passwort ist vorgemerkt")

	// Another browser on the LAN does not see the draft.
	other := newBrowser(t, env.h, otherLANAddr)
	wantNotInBody(t, other.get("/setup/owner"), `value="Anna Müller"`)
}

func TestWizardMembersAddAndRemove(t *testing.T) {
	env := newTestEnv(t)
	b := newBrowser(t, env.h, lanAddr)
	wantRedirect(t, b.get("/setup/members"), "/setup/owner") // no owner yet
	wantRedirect(t, b.submit("/setup/owner", "/setup/owner", form(
		"name", "anna", "password", ownerPassword, "password2", ownerPassword)), "/setup/members")

	for _, name := range []string{"ben", "carla"} {
		wantRedirect(t, b.submit("/setup/members", "/setup/members", form(
			"action", "add", "name", name, "password", memberPassword, "password2", memberPassword, "language", "de")), "/setup/members")
	}
	res := b.submit("/setup/members", "/setup/members", form(
		"action", "add", "name", "Ben", "password", memberPassword, "password2", memberPassword, "language", "de"))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, "The login name ben is taken already")
	// The password kept from the rejected form belongs to that name: a
	// member under another name needs a password of their own.
	res = b.submit("/setup/members", "/setup/members", form("action", "add", "name", "erik", "language", "de"))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, "Enter a password.")

	wantRedirect(t, b.submit("/setup/members", "/setup/members", form("action", "remove", "member", "ben")), "/setup/members")
	// "next" with a filled form adds that member before moving on.
	wantRedirect(t, b.submit("/setup/members", "/setup/members", form(
		"action", "next", "name", "dora", "password", memberPassword, "password2", memberPassword, "language", "en")), "/setup/domain")
	walkLaterSteps(t, b)

	res = b.get("/setup/summary")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "<li>carla</li>", "<li>dora</li>")
	wantNotInBody(t, res, "<li>ben</li>", memberPassword)
}

func TestWizardApplyCreatesAccounts(t *testing.T) {
	env := newTestEnv(t)
	b := newBrowser(t, env.h, lanAddr)
	completeSetup(t, b)
	ctx := context.Background()

	if !env.setup.Complete() {
		t.Fatal("setup not complete after apply")
	}
	reopened, err := OpenSetupState(ctx, env.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	if !reopened.Complete() {
		t.Error("setup not complete in the database after apply")
	}

	owner, err := env.accounts.UserByName(ctx, "anna")
	if err != nil {
		t.Fatal(err)
	}
	if owner.Role != accounts.RoleOwner || owner.DisplayName != "Anna Müller" || owner.Language != accounts.LanguageGerman {
		t.Errorf("owner = %+v, want role owner, display name Anna Müller, language de", owner)
	}
	member, err := env.accounts.UserByName(ctx, "ben")
	if err != nil {
		t.Fatal(err)
	}
	if member.Role != accounts.RoleMember || member.Language != accounts.LanguageEnglish {
		t.Errorf("member = %+v, want role member, language en", member)
	}
	if _, err := env.accounts.CheckPassword(ctx, "ben", memberPassword, netip.MustParseAddr("192.168.1.20"), "test"); err != nil {
		t.Errorf("member's password: %v", err)
	}

	// The owner is logged in.
	res := b.get("/account?notice=setup_done")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "Hallo Anna Müller!", "Deine Heimwolke ist eingerichtet")
}

func TestWizardSecondRunRefused(t *testing.T) {
	env := newTestEnv(t)

	// A second browser fills in a draft while the first completes the setup.
	late := newBrowser(t, env.h, otherLANAddr)
	late.acceptLanguage = "de"
	wantRedirect(t, late.submit("/setup/owner", "/setup/owner", form(
		"name", "carla", "password", memberPassword, "password2", memberPassword)), "/setup/members")
	late.get("/setup/members")
	completeSetup(t, newBrowser(t, env.h, lanAddr))

	res := late.post("/setup/apply", form())
	wantStatus(t, res, http.StatusForbidden)
	wantBody(t, res, "Einrichtung schon abgeschlossen", "kein zweites Mal starten")
	users, err := env.accounts.Users(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 {
		t.Errorf("got %d users, want the 2 of the first run", len(users))
	}

	b := newBrowser(t, env.h, otherLANAddr)
	for _, path := range []string{"/setup", "/setup/language", "/setup/owner", "/setup/domain", "/setup/summary", "/setup/progress"} {
		res := b.get(path)
		wantStatus(t, res, http.StatusForbidden)
		wantBody(t, res, "Setup already complete", "cannot run a second time", `href="/login"`)
	}
}

// TestWizardResumesInterruptedApply guards against a box that can never
// finish its setup because an earlier apply created the owner and then
// stopped before it marked the setup complete.
func TestWizardResumesInterruptedApply(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	_, err := env.accounts.CreateOwner(ctx, accounts.NewUser{Name: "anna", Language: "de", Password: ownerPassword})
	if err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, env.h, lanAddr)
	wantRedirect(t, b.submit("/setup/owner", "/setup/owner", form(
		"name", "anna", "password", "ein ganz anderes passwort", "password2", "ein ganz anderes passwort")), "/setup/members")
	wantRedirect(t, b.submit("/setup/members", "/setup/members", form("action", "next")), "/setup/domain")
	walkLaterSteps(t, b)
	wantRedirect(t, b.submit("/setup/summary", "/setup/apply", form()), "/setup/progress")
	res := b.get("/setup/progress")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "The account anna exists already", `<a href="/setup/owner" id="fix-accounts">`)
	wantNotInBody(t, res, `id="finish"`)
	if got := len(env.agent.received()); got != 0 {
		t.Errorf("agent received %d settings before the accounts existed, want 0", got)
	}
	if env.setup.Complete() {
		t.Fatal("setup complete after a wrong owner password")
	}

	wantRedirect(t, b.submit("/setup/owner", "/setup/owner", form(
		"name", "anna", "password", ownerPassword, "password2", ownerPassword)), "/setup/members")
	applyAndFinish(t, b)
	if !env.setup.Complete() {
		t.Error("setup not complete after resuming with the owner's password")
	}
}

// TestWizardResumeReplacesStaleMembers walks the wizard again after an
// interrupted apply had created the owner and two members: the member the
// new draft drops is deleted, and the one it keeps takes the new password.
func TestWizardResumeReplacesStaleMembers(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	if _, err := env.accounts.CreateOwner(ctx, accounts.NewUser{Name: "anna", Language: "de", Password: ownerPassword}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ben", "root"} {
		if _, err := env.accounts.CreateMember(ctx, accounts.NewUser{Name: name, Language: "de", Password: "das alte passwort von " + name}); err != nil {
			t.Fatal(err)
		}
	}

	b := newBrowser(t, env.h, lanAddr)
	wantRedirect(t, b.submit("/setup/owner", "/setup/owner", form(
		"name", "anna", "password", ownerPassword, "password2", ownerPassword)), "/setup/members")
	res := b.submit("/setup/members", "/setup/members", form(
		"action", "add", "name", "ben", "display_name", "Ben", "password", memberPassword, "password2", memberPassword, "language", "de"))
	wantStatus(t, res, http.StatusSeeOther)
	wantRedirect(t, b.submit("/setup/members", "/setup/members", form("action", "next")), "/setup/domain")
	walkLaterSteps(t, b)
	applyAndFinish(t, b)

	if _, err := env.accounts.UserByName(ctx, "root"); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("member root from the interrupted apply: got %v, want it deleted", err)
	}
	if _, err := env.accounts.CheckPassword(ctx, "ben", memberPassword, netip.MustParseAddrPort(lanAddr).Addr(), "test"); err != nil {
		t.Errorf("ben with the new draft's password: %v, want it accepted", err)
	}
}
