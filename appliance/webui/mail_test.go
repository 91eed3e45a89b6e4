package webui

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/mail/aliases"
	"github.com/heimwolke/heimwolke/appliance/mail/queue"
	"github.com/heimwolke/heimwolke/appliance/mail/smtp"
	"github.com/heimwolke/heimwolke/appliance/mail/store"
	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/sqlitedb"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// The mail server's types implement the interfaces of the mail pages.
var (
	_ MailAliases = (*aliases.Directory)(nil)
	_ MailQueue   = (*queue.Queue)(nil)
	_ MailExport  = (*store.Store)(nil)
)

// staticQueue is a MailQueue with fixed entries.
type staticQueue []queue.Entry

func (q staticQueue) Entries(ctx context.Context) ([]queue.Entry, error) { return q, nil }

// mailEnv is a completed setup with the owner anna (German) and the member
// ben (English), a real alias directory for example.test and a real mail
// store.
type mailEnv struct {
	*testEnv
	directory *aliases.Directory
	store     *store.Store
}

func newMailEnv(t *testing.T, q MailQueue) *mailEnv {
	t.Helper()
	env, _ := websiteEnv(t)
	ctx := context.Background()

	db, err := sqlitedb.Open(ctx, filepath.Join(t.TempDir(), "mail.db"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	aliasStore, err := aliases.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mailStore, err := store.Open(ctx, store.Options{Dir: filepath.Join(dir, "mail"), DatabasePath: filepath.Join(dir, "store.db"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mailStore.Close() })

	me := &mailEnv{testEnv: env, directory: aliasStore.Directory([]string{"example.test"}, env.accounts), store: mailStore}
	env.h.mail = MailServices{Aliases: me.directory, Queue: q, Export: mailStore}
	return me
}

func TestMailAdminAliases(t *testing.T) {
	for _, lang := range []string{"de", "en"} {
		t.Run(lang, func(t *testing.T) {
			env := newMailEnv(t, nil)
			setLanguage(t, env.testEnv, "anna", lang)
			b := newBrowser(t, env.h, lanAddr)
			logIn(t, b, "anna", ownerPassword)
			cat := env.h.catalog

			res := b.get("/admin/mail")
			wantStatus(t, res, http.StatusOK)
			wantBody(t, res, cat.T(lang, "mailui.admin.aliases.none"), `<a href="/admin/mail" aria-current="page">`)

			res = b.submit("/admin/mail", "/admin/mail/aliases", form("address", "Info@Example.Test", "login", "ben"))
			wantRedirect(t, res, "/admin/mail?notice=alias_added")
			res = b.get("/admin/mail?notice=alias_added")
			wantBody(t, res, cat.T(lang, "mailui.admin.alias.added"), "info@example.test")
			if got, err := env.directory.Lookup(context.Background(), "info@example.test"); got != "ben" || err != nil {
				t.Errorf("Lookup(info@) after adding = %q, %v; want ben, nil", got, err)
			}

			res = b.submit("/admin/mail", "/admin/mail/aliases", form("address", "info@example.test", "login", "anna"))
			wantStatus(t, res, http.StatusUnprocessableEntity)
			wantBody(t, res, htmlEscape(fillMessage(cat.T(lang, "mailui.admin.alias.taken"), "address", "info@example.test")))

			res = b.submit("/admin/mail", "/admin/mail/aliases", form("address", "kontakt@other.test", "login", "ben"))
			wantStatus(t, res, http.StatusUnprocessableEntity)
			wantBody(t, res, `aria-invalid="true"`, `value="kontakt@other.test"`)
			wantBody(t, res, htmlEscape(fillMessage(cat.T(lang, "mailui.admin.alias.invalid"), "address", "kontakt@other.test", "domains", "example.test")))

			res = b.submit("/admin/mail", "/admin/mail/aliases/remove", form("address", "info@example.test"))
			wantRedirect(t, res, "/admin/mail?notice=alias_removed")
			if _, err := env.directory.Lookup(context.Background(), "info@example.test"); !errors.Is(err, smtp.ErrUnknownRecipient) {
				t.Errorf("Lookup(info@) after removing: got %v, want ErrUnknownRecipient", err)
			}
		})
	}
}

func TestMailAdminCatchAll(t *testing.T) {
	env := newMailEnv(t, nil)
	b := newBrowser(t, env.h, lanAddr)
	logIn(t, b, "anna", ownerPassword)
	ctx := context.Background()

	res := b.submit("/admin/mail", "/admin/mail/catch-all", form("domain", "example.test", "login", "ben"))
	wantRedirect(t, res, "/admin/mail?notice=catchall_saved#catchall")
	if got, err := env.directory.Lookup(ctx, "anything@example.test"); got != "ben" || err != nil {
		t.Errorf("Lookup with catch-all = %q, %v; want ben, nil", got, err)
	}
	res = b.get("/admin/mail")
	wantBody(t, res, `<option value="ben" selected>`)

	res = b.submit("/admin/mail", "/admin/mail/catch-all", form("domain", "example.test", "login", ""))
	wantRedirect(t, res, "/admin/mail?notice=catchall_saved#catchall")
	if _, err := env.directory.Lookup(ctx, "anything@example.test"); !errors.Is(err, smtp.ErrUnknownRecipient) {
		t.Errorf("Lookup after clearing the catch-all: got %v, want ErrUnknownRecipient", err)
	}

	res = b.submit("/admin/mail", "/admin/mail/catch-all", form("domain", "other.test", "login", "ben"))
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, `id="catchall-error"`)
}

func TestMailAdminAccess(t *testing.T) {
	env := newMailEnv(t, nil)

	anonymous := newBrowser(t, env.h, lanAddr)
	wantRedirect(t, anonymous.get("/admin/mail"), "/login")

	member := newBrowser(t, env.h, otherLANAddr)
	logIn(t, member, "ben", memberPassword)
	wantStatus(t, member.get("/admin/mail"), http.StatusForbidden)
	res := member.post("/admin/mail/aliases", form("address", "ben2@example.test", "login", "ben"))
	wantStatus(t, res, http.StatusForbidden)

	owner := newBrowser(t, env.h, lanAddr)
	logIn(t, owner, "anna", ownerPassword)
	owner.get("/admin/mail")
	res = owner.post("/admin/mail/aliases", form("address", "info@example.test", "login", "ben", "csrf", "forged"))
	wantStatus(t, res, http.StatusForbidden)
	if list, _ := env.directory.List(context.Background()); len(list) != 0 {
		t.Errorf("aliases after forged requests: got %v, want none", list)
	}
}

func TestMailAdminNotConfigured(t *testing.T) {
	env, _ := websiteEnv(t)
	b := newBrowser(t, env.h, lanAddr)
	logIn(t, b, "anna", ownerPassword)
	wantStatus(t, b.get("/admin/mail"), http.StatusNotFound)
	wantStatus(t, b.get("/account/mail"), http.StatusNotFound)
}

func TestMailAdminQueue(t *testing.T) {
	next := time.Date(2026, 3, 14, 15, 9, 0, 0, time.Local)
	q := staticQueue{
		{MessageID: 1, Login: "ben", To: "oma@example.net", Attempts: 3, NextAttempt: next, LastError: "connecting to mx.example.net:25: dial tcp: i/o timeout"},
		{MessageID: 2, Login: "anna", To: "shop@example.com", Attempts: 1, NextAttempt: next, LastError: "RCPT TO: 451 4.7.1 greylisted, try again later"},
		{MessageID: 3, Login: "anna", To: "new@example.org", NextAttempt: next},
	}
	for _, lang := range []string{"de", "en"} {
		t.Run(lang, func(t *testing.T) {
			env := newMailEnv(t, q)
			setLanguage(t, env.testEnv, "anna", lang)
			b := newBrowser(t, env.h, lanAddr)
			logIn(t, b, "anna", ownerPassword)
			cat := env.h.catalog

			res := b.get("/admin/mail")
			wantStatus(t, res, http.StatusOK)
			wantBody(t, res,
				"oma@example.net", "shop@example.com", "new@example.org",
				`">3</td>`,
				htmlEscape(cat.T(lang, "mailui.queue.reason.unreachable")),
				htmlEscape(cat.T(lang, "mailui.queue.reason.deferred")),
				htmlEscape(cat.T(lang, "mailui.queue.reason.waiting")),
				"greylisted, try again later",
				next.Format(cat.T(lang, "format.datetime")),
			)
		})
	}

	env := newMailEnv(t, staticQueue{})
	b := newBrowser(t, env.h, lanAddr)
	logIn(t, b, "anna", ownerPassword)
	wantBody(t, b.get("/admin/mail"), `id="queue-empty"`)
}

func TestMailAccountExport(t *testing.T) {
	python := testpeer.Require(t, "/usr/bin/python3", "python3")
	env := newMailEnv(t, nil)
	ctx := context.Background()
	if err := env.store.CreateMailbox(ctx, "ben", "Reisen/Übersee", ""); err != nil {
		t.Fatal(err)
	}
	messages := []string{
		"From: oma@example.net\r\nTo: ben@example.test\r\nSubject: Hallo Ben\r\n\r\nFrom the garden: tomatoes.\r\n",
		"From: shop@example.com\r\nTo: ben@example.test\r\nSubject: Rechnung\r\n\r\nSecond message.\r\n",
	}
	for _, m := range messages {
		if err := env.store.Deliver(ctx, "ben", "Reisen/Übersee", strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
	}

	for _, lang := range []string{"de", "en"} {
		setLanguage(t, env.testEnv, "ben", lang)
		b := newBrowser(t, env.h, otherLANAddr)
		logIn(t, b, "ben", memberPassword)
		wantBody(t, b.get("/account"), `href="/account/mail"`)
		res := b.get("/account/mail")
		wantStatus(t, res, http.StatusOK)
		wantBody(t, res, htmlEscape(env.h.catalog.T(lang, "mailui.account.intro")), "INBOX", "Reisen/Übersee", "/account/mail/export?folder=Reisen%2f%c3%9cbersee")
	}

	b := newBrowser(t, env.h, otherLANAddr)
	logIn(t, b, "ben", memberPassword)
	wantStatus(t, b.get("/account/mail/export?folder=Nicht+da"), http.StatusNotFound)
	res := b.get("/account/mail/export?folder=Reisen%2F%C3%9Cbersee")
	wantStatus(t, res, http.StatusOK)
	if got := res.header.Get("Content-Type"); got != "application/mbox" {
		t.Errorf("Content-Type = %q, want application/mbox", got)
	}
	if got, want := res.header.Get("Content-Disposition"), "attachment; filename*=utf-8''Reisen-%C3%9Cbersee.mbox"; got != want {
		t.Errorf("Content-Disposition = %q, want %q", got, want)
	}

	path := filepath.Join(t.TempDir(), "export.mbox")
	if err := os.WriteFile(path, []byte(res.body), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `import mailbox, sys
for m in mailbox.mbox(sys.argv[1]):
    print(m["Subject"] + "|" + m.get_payload().strip())`
	out, err := exec.Command(python, "-c", script, path).CombinedOutput()
	if err != nil {
		t.Fatalf("reading the export with Python's mailbox module: %v\n%s", err, out)
	}
	// The store quotes body lines that start with "From " as mboxrd does.
	// Python's mbox reader does not split at the quoted line and leaves
	// the quote in the body.
	want := "Hallo Ben|>From the garden: tomatoes.\nRechnung|Second message.\n"
	if got := strings.ReplaceAll(string(out), "\r", ""); got != want {
		t.Errorf("Python's mailbox module read:\n%s\nwant:\n%s", got, want)
	}

	// Another user's folder of the same name is not reachable.
	anna := newBrowser(t, env.h, lanAddr)
	logIn(t, anna, "anna", ownerPassword)
	wantStatus(t, anna.get("/account/mail/export?folder=Reisen%2F%C3%9Cbersee"), http.StatusNotFound)
}

// setLanguage sets the language of the user name.
func setLanguage(t *testing.T, env *testEnv, name, lang string) {
	t.Helper()
	ctx := context.Background()
	u, err := env.accounts.UserByName(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.accounts.SetProfile(ctx, u.ID, u.DisplayName, accounts.Language(lang)); err != nil {
		t.Fatal(err)
	}
}

// htmlEscape escapes text as html/template does in element content.
func htmlEscape(text string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(text)
}

func TestQueueReasonKeyRelay(t *testing.T) {
	for _, c := range []struct {
		name  string
		entry queue.Entry
		want  string
	}{
		{"direct, refused", queue.Entry{LastError: "connecting to mx.example.net:25: connection refused"}, "mailui.queue.reason.unreachable"},
		{"relay, refused", queue.Entry{LastError: "connecting to smtp.example.net:587: connection refused", LastSmarthost: true}, "mailui.queue.reason.relay_unreachable"},
		{"relay, STARTTLS", queue.Entry{LastError: "STARTTLS with smtp.example.net: TLS handshake failed", LastSmarthost: true}, "mailui.queue.reason.relay_unreachable"},
		{"relay, login", queue.Entry{LastError: "logging in to smarthost smtp.example.net: 535 5.7.8", LastSmarthost: true}, "mailui.queue.reason.relay_login"},
		{"relay, RCPT", queue.Entry{LastError: "RCPT TO <ben@example.org>: 450 4.2.0 try later", LastSmarthost: true}, "mailui.queue.reason.relay_rejected"},
	} {
		if got := queueReasonKey(c.entry); got != c.want {
			t.Errorf("%s: queueReasonKey = %q, want %q", c.name, got, c.want)
		}
	}
}
