package webui

import (
	"context"
	"errors"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/authlimit"
	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/logging"
)

// fakeRebooter records reboots instead of restarting anything.
type fakeRebooter struct {
	available bool
	err       error

	mu    sync.Mutex
	calls int
}

func (f *fakeRebooter) Available() bool { return f.available }

func (f *fakeRebooter) Reboot(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.err
}

func (f *fakeRebooter) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// fakeResetter records factory resets instead of deleting anything.
type fakeResetter struct {
	err error

	mu    sync.Mutex
	calls int
}

func (f *fakeResetter) Reset(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.err
}

func (f *fakeResetter) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// fakeAgent serves a fixed status on the control API, as heimwolke-agent
// would.
type fakeAgent struct {
	status control.Status
	err    error
}

func (f *fakeAgent) Status(ctx context.Context) (control.Status, error) {
	return f.status, f.err
}

// serveAgent serves agent on a Unix socket in a temporary folder until the
// test ends and returns the socket path.
func serveAgent(t *testing.T, agent control.Handler) string {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "control.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- control.NewServer(agent, slog.New(slog.DiscardHandler)).Serve(ctx, socket) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	for range 500 {
		if conn, err := net.Dial("unix", socket); err == nil {
			conn.Close()
			return socket
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("agent socket %s not accepting connections after 5 s", socket)
	return ""
}

// adminEnv is a Handler whose setup is complete, with the owner "anna"
// logged in in owner and the member "ben", and fakes for the reboot and
// the factory reset.
type adminEnv struct {
	*testEnv
	owner    *browser
	rebooter *fakeRebooter
	resetter *fakeResetter
	logs     *logging.Ring
	dataDir  string
}

// newAdminEnv builds the environment. configure may change the options
// before the Handler is made.
func newAdminEnv(t *testing.T, configure func(*Options)) *adminEnv {
	t.Helper()
	ctx := context.Background()
	dbDir := t.TempDir()
	dbPath := filepath.Join(dbDir, "heimwolke.db")
	logs := logging.NewRing(200)
	logger := slog.New(logs.Handler(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug})))
	start := time.Now()
	limiter := authlimit.New(authlimit.Config{Now: func() time.Time { return start }})

	store, err := accounts.Open(ctx, dbPath, accounts.Options{Logger: logger, Limiter: limiter, Argon2: cheapArgon2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	setup, err := OpenSetupState(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { setup.Close() })

	env := &adminEnv{
		rebooter: &fakeRebooter{available: true},
		resetter: &fakeResetter{},
		logs:     logs,
		dataDir:  dbDir,
	}
	opts := Options{
		Accounts:    store,
		Setup:       setup,
		Limiter:     limiter,
		Logger:      logger,
		Version:     "v1.2.3-test",
		Domain:      "box.example.org",
		AgentSocket: filepath.Join(t.TempDir(), "no-agent.sock"),
		DataDir:     dbDir,
		Rebooter:    env.rebooter,
		Resetter:    env.resetter,
		Logs:        logs,
	}
	if configure != nil {
		configure(&opts)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	env.testEnv = &testEnv{h: h, accounts: store, setup: setup, dbPath: dbPath}
	env.owner = newBrowser(t, h, lanAddr)
	completeSetup(t, env.owner)
	return env
}

// message returns the catalog message key in German, as html/template
// escapes it, for checks of texts from other areas' catalogs.
func (env *adminEnv) message(key string, pairs ...any) string {
	return html.EscapeString(env.h.t("de", key, pairs...))
}

// userID returns the ID of the user name.
func (env *adminEnv) userID(t *testing.T, name string) int64 {
	t.Helper()
	u, err := env.accounts.UserByName(context.Background(), name)
	if err != nil {
		t.Fatalf("UserByName(%q): %v", name, err)
	}
	return u.ID
}

func TestAdminPagesLoggedOut(t *testing.T) {
	env := newAdminEnv(t, nil)
	b := newBrowser(t, env.h, otherLANAddr)
	for _, path := range []string{"/admin", "/admin/", "/admin/people", "/admin/reset"} {
		wantRedirect(t, b.get(path), "/login")
	}
	// Forms of a visitor without a session carry the visitor's token,
	// which passes the CSRF check but not the owner check.
	b.get("/login")
	wantRedirect(t, b.post("/admin/reboot", form("confirm", "yes")), "/login")
	b.get("/login")
	wantRedirect(t, b.post("/admin/reset", form("reset_box_name", "box.example.org", "reset_password", ownerPassword)), "/login")
	if env.rebooter.count() != 0 || env.resetter.count() != 0 {
		t.Errorf("reboots %d, resets %d; want none", env.rebooter.count(), env.resetter.count())
	}
}

func TestAdminPagesForbiddenToMember(t *testing.T) {
	env := newAdminEnv(t, nil)
	ben := newBrowser(t, env.h, otherLANAddr)
	logIn(t, ben, "ben", memberPassword) // Ben reads English
	for _, path := range []string{"/admin", "/admin/people", "/admin/reset"} {
		res := ben.get(path)
		wantStatus(t, res, http.StatusForbidden)
		wantBody(t, res, "Only for the box", "only the account that set it up can open them")
	}

	annaID := strconv.FormatInt(env.userID(t, "anna"), 10)
	posts := []struct {
		path string
		form []string
	}{
		{"/admin/reboot", []string{"confirm", "yes"}},
		{"/admin/reset", []string{"reset_box_name", "box.example.org", "reset_password", memberPassword}},
		{"/admin/people", []string{"name", "eve", "password", memberPassword, "password2", memberPassword, "language", "en"}},
		{"/admin/people/" + annaID + "/delete", []string{"confirm", "yes"}},
	}
	for _, p := range posts {
		ben.get("/account")
		wantStatus(t, ben.post(p.path, form(p.form...)), http.StatusForbidden)
	}
	if env.rebooter.count() != 0 || env.resetter.count() != 0 {
		t.Errorf("reboots %d, resets %d; want none", env.rebooter.count(), env.resetter.count())
	}
	if _, err := env.accounts.UserByName(context.Background(), "eve"); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("user eve after a member's POST: got %v, want ErrNotFound", err)
	}
	if !strings.Contains(strings.Join(env.logs.Lines(), "\n"), `msg="admin page denied to a member" user=ben`) {
		t.Error("log lacks the refused member")
	}
}

func TestAdminPostsNeedCSRF(t *testing.T) {
	env := newAdminEnv(t, nil)
	benID := strconv.FormatInt(env.userID(t, "ben"), 10)
	for _, path := range []string{"/admin/reboot", "/admin/reset", "/admin/people", "/admin/people/" + benID + "/delete"} {
		for _, token := range []string{"", "forged-token"} {
			res := env.owner.post(path, form("csrf", token, "confirm", "yes",
				"reset_box_name", "box.example.org", "reset_password", ownerPassword,
				"name", "eve", "password", memberPassword, "password2", memberPassword, "language", "en"))
			wantStatus(t, res, http.StatusForbidden)
			wantBody(t, res, env.message("error.csrf.title"))
		}
	}
	if env.rebooter.count() != 0 || env.resetter.count() != 0 {
		t.Errorf("reboots %d, resets %d; want none", env.rebooter.count(), env.resetter.count())
	}
	if _, err := env.accounts.User(context.Background(), env.userID(t, "ben")); err != nil {
		t.Errorf("ben after forged deletes: %v", err)
	}
	if _, err := env.accounts.UserByName(context.Background(), "eve"); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("user eve after forged POSTs: got %v, want ErrNotFound", err)
	}
}

func TestDashboardAgentUp(t *testing.T) {
	started := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	agent := &fakeAgent{status: control.Status{
		Program:       "heimwolke-agent",
		Version:       "v9.8.7-agent",
		StartedAt:     started,
		UptimeSeconds: 60,
		DNS: &control.DNSStatus{
			Provider:   "desec",
			Hostname:   "box.example.org",
			IPv4:       "198.51.100.7",
			IPv6:       "2001:db8::7",
			LastUpdate: started.Add(time.Minute),
		},
		Certificate: &control.CertificateStatus{
			Names:    []string{"example.org", "mail.example.org"},
			NotAfter: time.Now().Add(5 * 24 * time.Hour),
		},
		Update: &control.UpdateStatus{State: control.UpdateDownloading, AvailableVersion: "v9.9.0"},
	}}
	socket := serveAgent(t, agent)
	env := newAdminEnv(t, func(o *Options) { o.AgentSocket = socket })

	res := env.owner.get("/admin")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res,
		"v1.2.3-test", "v9.8.7-agent", `id="agent-state">läuft<`,
		"198.51.100.7", "2001:db8::7", `id="dns-provider">deSEC (dedyn.io)<`, "box.example.org",
		"example.org, mail.example.org", "läuft bald ab",
		"lädt herunter", "v9.9.0",
		// This agent serves no settings, so the mail state is unknown.
		`id="mail-state">unbekannt<`,
	)
	wantNotInBody(t, res, "Noch nicht eingerichtet", "nicht erreichbar")
}

func TestDashboardAgentNotConfigured(t *testing.T) {
	socket := serveAgent(t, &fakeAgent{status: control.Status{Program: "heimwolke-agent", Version: "v1.0.0", StartedAt: time.Now()}})
	env := newAdminEnv(t, func(o *Options) { o.AgentSocket = socket })

	res := env.owner.get("/admin")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, `id="agent-state">läuft<`, "v1.0.0")
	for _, id := range []string{"update", "certificate", "dns"} {
		wantBody(t, res, `id="`+id+`">Noch nicht eingerichtet`)
	}
}

func TestDashboardAgentDown(t *testing.T) {
	stale := filepath.Join(t.TempDir(), "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	failing := serveAgent(t, &fakeAgent{err: errors.New("disk on fire")})

	cases := []struct {
		name, socket, problem string
	}{
		{"no socket", filepath.Join(t.TempDir(), "missing.sock"), "Die Weboberfläche findet den Agenten nicht"},
		{"stale socket", stale, "Der Agent nimmt keine Anfragen der Weboberfläche an"},
		{"error reply", failing, "Der Agent hat mit einem Fehler geantwortet"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := newAdminEnv(t, func(o *Options) { o.AgentSocket = c.socket })
			res := env.owner.get("/admin")
			wantStatus(t, res, http.StatusOK)
			wantBody(t, res, `id="agent-state" class="error">nicht erreichbar<`, c.problem,
				`id="update">Unbekannt, solange der Agent nicht erreichbar ist.`,
				`id="dns">Unbekannt`, `id="certificate">Unbekannt`)
			wantNotInBody(t, res, "disk on fire")
			// heimwolke itself is up all the same.
			wantBody(t, res, "v1.2.3-test")
		})
	}
}

func TestDashboardLogLines(t *testing.T) {
	env := newAdminEnv(t, nil)
	log := slog.New(env.logs.Handler(slog.NewTextHandler(io.Discard, nil)))
	log.Info("dns update sent", "provider", "desec", "token", "tok-very-secret")
	log.Warn("login failed", "user", "anna", "password", "pw-very-secret")

	res := env.owner.get("/admin")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "dns update sent", "token=(hidden)", "password=(hidden)", `msg=&#34;web login&#34; user=anna`)
	wantNotInBody(t, res, "tok-very-secret", "pw-very-secret")
	// Newest first.
	if strings.Index(res.body, "login failed") > strings.Index(res.body, "dns update sent") {
		t.Error("log lines not newest first")
	}

	// The passwords that the wizard and the login sent are not there
	// either.
	wantNotInBody(t, res, ownerPassword, memberPassword)

	noLogs := newAdminEnv(t, func(o *Options) { o.Logs = nil })
	wantBody(t, noLogs.owner.get("/admin"), "hebt für diese Seite keine Protokollzeilen auf")
}

func TestDashboardStorage(t *testing.T) {
	env := newAdminEnv(t, nil)
	usage, err := measureStorage(env.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	res := env.owner.get("/admin")
	wantBody(t, res, `id="storage-total">`+formatBytes("de", usage.total)+"<", env.dataDir)

	none := newAdminEnv(t, func(o *Options) { o.DataDir = "" })
	wantBody(t, none.owner.get("/admin"), `id="storage">Die Größe des Datenordners ließ sich nicht messen.`)
}

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		lang string
		n    uint64
		want string
	}{
		{"en", 0, "0\u00a0B"},
		{"en", 999, "999\u00a0B"},
		{"en", 1000, "1.0\u00a0kB"},
		{"de", 1500, "1,5\u00a0kB"},
		{"en", 12_345_678, "12\u00a0MB"},
		{"de", 31_914_983_424, "32\u00a0GB"},
		{"de", 7_654_321_000, "7,7\u00a0GB"},
		{"en", 2_000_000_000_000, "2.0\u00a0TB"},
		{"en", 5_000_000_000_000_000_000, "5000\u00a0PB"},
	}
	for _, tt := range tests {
		if got := formatBytes(tt.lang, tt.n); got != tt.want {
			t.Errorf("formatBytes(%q, %d) = %q, want %q", tt.lang, tt.n, got, tt.want)
		}
	}
}

func TestPeopleAddMember(t *testing.T) {
	env := newAdminEnv(t, nil)
	res := env.owner.get("/admin/people")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, `id="user-anna"`, `id="user-ben"`, "Anna Müller", "verwaltet die Box", "Mitglied", `id="delete-ben"`)
	wantNotInBody(t, res, `id="delete-anna"`)

	res = env.owner.post("/admin/people", form("name", "Clara", "display_name", "Clara Zetkin",
		"password", "tulpe fenster regen", "password2", "tulpe fenster regen", "language", "de"))
	wantRedirect(t, res, "/admin/people?notice=member_added")
	res = env.owner.get("/admin/people?notice=member_added")
	wantBody(t, res, "Das Mitglied ist angelegt", `id="user-clara"`, "Clara Zetkin")

	clara := newBrowser(t, env.h, otherLANAddr)
	logIn(t, clara, "clara", "tulpe fenster regen")
	u, err := env.accounts.UserByName(context.Background(), "clara")
	if err != nil || u.Role != accounts.RoleMember || u.Language != accounts.LanguageGerman {
		t.Errorf("clara = %+v, %v; want a German member", u, err)
	}
}

func TestPeopleAddMemberInvalid(t *testing.T) {
	env := newAdminEnv(t, nil)
	env.owner.get("/admin/people")
	cases := []struct {
		name   string
		form   []string
		errors []string
	}{
		{"empty", []string{"language", "de"},
			[]string{env.message("validate.name.empty"), env.message("validate.password.empty")}},
		{"name taken", []string{"name", "BEN", "password", "tulpe fenster regen", "password2", "tulpe fenster regen", "language", "en"},
			[]string{env.message("validate.name.taken", "name", "ben")}},
		{"bad name and mismatch", []string{"name", "Jörg Ü", "display_name", "Jörg", "password", "tulpe fenster regen", "password2", "tulpe fenster", "language", "de"},
			[]string{env.message("validate.name.chars"), env.message("validate.password.mismatch"), `value="Jörg Ü"`, `value="Jörg"`}},
		{"bad language", []string{"name", "dora", "password", "tulpe fenster regen", "password2", "tulpe fenster regen", "language", "fr"},
			[]string{env.message("validate.language")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := env.owner.post("/admin/people", form(c.form...))
			wantStatus(t, res, http.StatusUnprocessableEntity)
			wantBody(t, res, c.errors...)
			wantNotInBody(t, res, "tulpe fenster regen")
		})
	}
	users, err := env.accounts.Users(context.Background())
	if err != nil || len(users) != 2 {
		t.Errorf("users after invalid forms: got %d (%v), want 2", len(users), err)
	}
}

func TestPeopleDeleteMember(t *testing.T) {
	env := newAdminEnv(t, nil)
	ben := newBrowser(t, env.h, otherLANAddr)
	logIn(t, ben, "ben", memberPassword)
	benID := env.userID(t, "ben")
	deletePath := "/admin/people/" + strconv.FormatInt(benID, 10) + "/delete"

	env.owner.get("/admin/people")
	res := env.owner.post(deletePath, form())
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "Ben (ben) löschen?", `name="confirm" value="yes"`, `action="`+deletePath+`"`)
	if _, err := env.accounts.User(context.Background(), benID); err != nil {
		t.Fatalf("ben after the first POST: %v, want the account kept until the confirmation", err)
	}

	wantRedirect(t, env.owner.post(deletePath, form("confirm", "yes")), "/admin/people?notice=member_deleted")
	if _, err := env.accounts.User(context.Background(), benID); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("ben after the confirmation: got %v, want ErrNotFound", err)
	}
	res = env.owner.get("/admin/people?notice=member_deleted")
	wantBody(t, res, "Das Mitglied ist gelöscht.")
	wantNotInBody(t, res, `id="user-ben"`)
	wantRedirect(t, ben.get("/account"), "/login")
	if !strings.Contains(strings.Join(env.logs.Lines(), "\n"), `msg="member deleted" user=ben`) {
		t.Error("log lacks the deletion")
	}

	// Gone already: the same confirmation from a second tab.
	wantStatus(t, env.owner.post(deletePath, form("confirm", "yes")), http.StatusNotFound)
	wantStatus(t, env.owner.post("/admin/people/abc/delete", form("confirm", "yes")), http.StatusNotFound)
}

func TestPeopleDeleteOwnerRejected(t *testing.T) {
	env := newAdminEnv(t, nil)
	env.owner.get("/admin/people")
	annaPath := "/admin/people/" + strconv.FormatInt(env.userID(t, "anna"), 10) + "/delete"
	res := env.owner.post(annaPath, form("confirm", "yes"))
	wantStatus(t, res, http.StatusConflict)
	wantBody(t, res, "lässt sich nicht löschen")
	if _, err := env.accounts.UserByName(context.Background(), "anna"); err != nil {
		t.Errorf("anna after a delete: %v", err)
	}
}

func TestRebootNeedsConfirmation(t *testing.T) {
	env := newAdminEnv(t, nil)
	res := env.owner.get("/admin")
	wantBody(t, res, `action="/admin/reboot"`, `id="reboot"`)

	res = env.owner.post("/admin/reboot", form())
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "Box jetzt neu starten?", `name="confirm" value="yes"`)
	if n := env.rebooter.count(); n != 0 {
		t.Fatalf("reboots before the confirmation: got %d, want 0", n)
	}

	// Only "yes" confirms.
	env.owner.post("/admin/reboot", form("confirm", "1"))
	if n := env.rebooter.count(); n != 0 {
		t.Fatalf("reboots after confirm=1: got %d, want 0", n)
	}

	res = env.owner.post("/admin/reboot", form("confirm", "yes"))
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "Die Box startet neu")
	if n := env.rebooter.count(); n != 1 {
		t.Errorf("reboots after the confirmation: got %d, want 1", n)
	}
}

func TestRebootFailure(t *testing.T) {
	env := newAdminEnv(t, nil)
	env.rebooter.err = errors.New("gokrazy said no")
	env.owner.get("/admin")
	res := env.owner.post("/admin/reboot", form("confirm", "yes"))
	wantStatus(t, res, http.StatusBadGateway)
	wantBody(t, res, "Ziehe den Stecker der Box")
	wantNotInBody(t, res, "gokrazy said no")
}

func TestRebootUnavailableOnPC(t *testing.T) {
	env := newAdminEnv(t, nil)
	env.rebooter.available = false

	res := env.owner.get("/admin")
	wantBody(t, res, `id="reboot-unavailable"`, "Neu starten lässt sich nur die Box selbst")
	wantNotInBody(t, res, `id="reboot"`)

	res = env.owner.post("/admin/reboot", form("confirm", "yes"))
	wantStatus(t, res, http.StatusNotImplemented)
	if n := env.rebooter.count(); n != 0 {
		t.Errorf("reboots: got %d, want 0", n)
	}

	res = env.owner.get("/admin/reset")
	wantBody(t, res, `id="reset-unavailable"`, env.dataDir)
	wantNotInBody(t, res, `action="/admin/reset"`)
	res = env.owner.post("/admin/reset", form("reset_box_name", "box.example.org", "reset_password", ownerPassword))
	wantStatus(t, res, http.StatusNotImplemented)
	if n := env.resetter.count(); n != 0 {
		t.Errorf("resets: got %d, want 0", n)
	}
}

func TestResetNeedsNameAndPassword(t *testing.T) {
	env := newAdminEnv(t, nil)
	res := env.owner.get("/admin/reset")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "Gib zur Bestätigung box.example.org ein", `autocomplete="current-password"`, "alle Konten")

	cases := []struct {
		name, box, password string
		status              int
		want                string
	}{
		{"nothing", "", "", http.StatusUnprocessableEntity, "Gib den Namen der Box genau so ein: box.example.org"},
		{"wrong name", "heimwolke", ownerPassword, http.StatusUnprocessableEntity, "Gib den Namen der Box genau so ein"},
		{"no password", "box.example.org", "", http.StatusUnprocessableEntity, env.message("validate.current_password.empty")},
		{"wrong password", "box.example.org", "falsches passwort", http.StatusUnprocessableEntity, "Das Passwort stimmt nicht."},
		{"member's password", "box.example.org", memberPassword, http.StatusUnprocessableEntity, "Das Passwort stimmt nicht."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := env.owner.post("/admin/reset", form("reset_box_name", c.box, "reset_password", c.password))
			wantStatus(t, res, c.status)
			wantBody(t, res, c.want)
			if c.password != "" {
				wantNotInBody(t, res, c.password)
			}
		})
	}
	if env.resetter.count() != 0 || env.rebooter.count() != 0 {
		t.Fatalf("resets %d, reboots %d after wrong confirmations; want none", env.resetter.count(), env.rebooter.count())
	}

	// Case and a trailing dot do not matter in a host name.
	res = env.owner.post("/admin/reset", form("reset_box_name", " Box.Example.ORG. ", "reset_password", ownerPassword))
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "Alle Daten sind gelöscht, und die Box startet neu.")
	wantNotInBody(t, res, `id="logout"`)
	if env.resetter.count() != 1 || env.rebooter.count() != 1 {
		t.Errorf("resets %d, reboots %d after the confirmation; want 1 and 1", env.resetter.count(), env.rebooter.count())
	}
	if _, ok := env.owner.cookies[sessionCookie]; ok {
		t.Error("session cookie kept after the factory reset")
	}
}

func TestResetFailureKeepsBoxRunning(t *testing.T) {
	env := newAdminEnv(t, nil)
	env.resetter.err = errors.New("removing /perm/heimwolke/files: device busy")
	env.owner.get("/admin/reset")
	res := env.owner.post("/admin/reset", form("reset_box_name", "box.example.org", "reset_password", ownerPassword))
	wantStatus(t, res, http.StatusInternalServerError)
	wantBody(t, res, "Einige Daten ließen sich nicht löschen")
	wantNotInBody(t, res, "device busy")
	if n := env.rebooter.count(); n != 0 {
		t.Errorf("reboots after a failed reset: got %d, want 0", n)
	}
}

func TestResetThrottled(t *testing.T) {
	env := newAdminEnv(t, nil)
	env.owner.get("/admin/reset")
	var res response
	for range 20 {
		res = env.owner.post("/admin/reset", form("reset_box_name", "box.example.org", "reset_password", "falsches passwort"))
		if res.status == http.StatusTooManyRequests {
			break
		}
	}
	wantStatus(t, res, http.StatusTooManyRequests)
	if res.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	throttled, _, _ := strings.Cut(env.h.t("de", "login.throttled"), "{wait}")
	wantBody(t, res, `id="reset_password-error">`+html.EscapeString(throttled))
	if n := env.resetter.count(); n != 0 {
		t.Errorf("resets: got %d, want 0", n)
	}
}

// TestResetDeletesDataFolder runs the factory reset with the real
// FolderResetter on the folder that holds the live database.
func TestResetDeletesDataFolder(t *testing.T) {
	env := newAdminEnv(t, func(o *Options) { o.Resetter = nil })
	for _, name := range []string{"agent/settings.json", "files/anna/foto.jpg"} {
		path := filepath.Join(env.dataDir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	env.owner.get("/admin/reset")
	res := env.owner.post("/admin/reset", form("reset_box_name", "box.example.org", "reset_password", ownerPassword))
	wantStatus(t, res, http.StatusOK)
	entries, err := os.ReadDir(env.dataDir)
	if err != nil {
		t.Fatalf("data folder after the reset: %v, want it kept", err)
	}
	for _, e := range entries {
		t.Errorf("data folder after the reset contains %s, want it empty", e.Name())
	}
	if n := env.rebooter.count(); n != 1 {
		t.Errorf("reboots: got %d, want 1", n)
	}
}

func TestFolderResetter(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"heimwolke.db", "heimwolke.db-wal", "agent/settings.json", "files/a/b/c.txt", ".hidden"} {
		path := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(path), 0o700)
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A read-only folder inside does not stop RemoveAll when running as
	// root, and for other users shows that Reset goes on past a failure.
	if err := os.Chmod(filepath.Join(dir, "files", "a"), 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "files", "a"), 0o700) })

	err := FolderResetter{Dir: dir}.Reset(context.Background())
	entries, _ := os.ReadDir(dir)
	if os.Geteuid() == 0 {
		if err != nil {
			t.Errorf("Reset: %v", err)
		}
		if len(entries) != 0 {
			t.Errorf("folder after Reset has %d entries, want 0", len(entries))
		}
	} else {
		if err == nil {
			t.Error("Reset with an undeletable file: got nil, want an error")
		}
		if len(entries) != 1 || entries[0].Name() != "files" {
			t.Errorf("folder after a partial Reset: got %v, want only files", entries)
		}
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("folder itself after Reset: %v, want it kept", err)
	}

	for _, bad := range []string{"", "/", "/.."} {
		if err := (FolderResetter{Dir: bad}).Reset(context.Background()); err == nil {
			t.Errorf("Reset of %q: got nil, want an error", bad)
		}
	}
}
