package notice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/sqlitedb"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// fakeAgent replaces heimwolke-agent on the control socket: it serves
// a certificate status that the test sets, and fixed settings.
type fakeAgent struct {
	mu       sync.Mutex
	cert     *control.CertificateStatus
	settings control.Settings
	// noSettings makes GetSettings fail as before the setup.
	noSettings bool
}

func (a *fakeAgent) Status(context.Context) (control.Status, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return control.Status{Program: "heimwolke-agent", Certificate: a.cert}, nil
}

func (a *fakeAgent) GetSettings(context.Context) (control.Settings, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.noSettings {
		return control.Settings{}, control.ErrNoSettings
	}
	return a.settings, nil
}

func (a *fakeAgent) setCertificate(c *control.CertificateStatus) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cert = c
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// box is a test setup: the agent on a Unix socket, the accounts and the mail
// store in one database in a temporary folder, as on the box.
type box struct {
	agent  *fakeAgent
	client *control.Client
	users  *accounts.Store
	mail   *store.Store
	dbPath string
	clock  *clock
	owner  *accounts.User
}

var testStart = time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)

func newBox(t *testing.T, domain string, lang accounts.Language) *box {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	b := &box{
		agent: &fakeAgent{settings: control.Settings{
			SchemaVersion: control.SchemaVersion,
			Domain:        domain,
			Services:      control.ServiceSettings{Mail: true},
		}},
		dbPath: filepath.Join(dir, "heimwolke.db"),
		clock:  &clock{now: testStart},
	}

	socket := filepath.Join(dir, "agent.sock")
	agentCtx, stopAgent := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- control.NewServer(b.agent, nil).Serve(agentCtx, socket) }()
	t.Cleanup(func() {
		stopAgent()
		<-served
	})
	waitForSocket(t, socket)
	b.client = control.NewClient(socket)

	users, err := accounts.Open(ctx, b.dbPath, accounts.Options{Argon2: accounts.Argon2Params{Memory: 64, Time: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { users.Close() })
	b.users = users
	name := map[accounts.Language]string{accounts.LanguageGerman: "Jürgen Müller", accounts.LanguageEnglish: "Jane Doe"}[lang]
	b.owner, err = users.CreateOwner(ctx, accounts.NewUser{Name: "owner", DisplayName: name, Language: lang, Password: "Kastanienbaum-2026"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := users.CreateMember(ctx, accounts.NewUser{Name: "ben", Language: accounts.LanguageEnglish, Password: "Birnbaum-Allee-2026"}); err != nil {
		t.Fatal(err)
	}

	mail, err := store.Open(ctx, store.Options{Dir: filepath.Join(dir, "messages"), DatabasePath: b.dbPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mail.Close() })
	b.mail = mail
	return b
}

func waitForSocket(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	t.Fatalf("control socket %s did not appear within 5 s", path)
}

// notifier starts a Notifier on its own connection to the database, as a
// freshly started heimwolke would.
func (b *box) notifier(t *testing.T) *Notifier {
	t.Helper()
	db, err := sqlitedb.Open(context.Background(), b.dbPath, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	n, err := New(Options{Agent: b.client, Users: b.users, Deliverer: b.mail, DB: db, Location: time.UTC, Now: b.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (b *box) check(t *testing.T, n *Notifier) {
	t.Helper()
	if err := n.CheckNow(context.Background()); err != nil {
		t.Fatalf("CheckNow: %v", err)
	}
}

// inbox returns the raw messages in login's inbox, none when it does not
// exist yet.
func (b *box) inbox(t *testing.T, login string) [][]byte {
	t.Helper()
	ctx := context.Background()
	mbox, err := b.mail.Mailbox(ctx, login, store.Inbox)
	if errors.Is(err, store.ErrNoMailbox) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	err = b.mail.EachMessage(ctx, mbox.ID, []store.UIDRange{{First: 1, Last: ^uint32(0)}}, false, func(m *store.Message) error {
		f, err := b.mail.OpenMessage(m.File)
		if err != nil {
			return err
		}
		defer f.Close()
		raw, err := io.ReadAll(f)
		msgs = append(msgs, raw)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// parsedMail is a message as Python's email package (policy.default) reads it.
type parsedMail struct {
	Subject       string `json:"subject"`
	From          string `json:"from"`
	FromAddress   string `json:"from_address"`
	To            string `json:"to"`
	ToAddress     string `json:"to_address"`
	Date          string `json:"date"`
	MessageID     string `json:"message_id"`
	MIMEVersion   string `json:"mime_version"`
	ContentType   string `json:"content_type"`
	Charset       string `json:"charset"`
	Encoding      string `json:"encoding"`
	AutoSubmitted string `json:"auto_submitted"`
	Defects       int    `json:"defects"`
	Body          string `json:"body"`
}

const parseScript = `
import email, email.policy, json, sys
from email.utils import parsedate_to_datetime
msg = email.message_from_binary_file(sys.stdin.buffer, policy=email.policy.default)
parsedate_to_datetime(msg["Date"])
out = {
    "subject": str(msg["Subject"]),
    "from": str(msg["From"]),
    "from_address": msg["From"].addresses[0].addr_spec,
    "to": str(msg["To"]),
    "to_address": msg["To"].addresses[0].addr_spec,
    "date": str(msg["Date"]),
    "message_id": str(msg["Message-ID"]),
    "mime_version": str(msg["MIME-Version"]),
    "content_type": msg.get_content_type(),
    "charset": msg.get_content_charset(),
    "encoding": msg.get("Content-Transfer-Encoding", ""),
    "auto_submitted": msg.get("Auto-Submitted", ""),
    "defects": len(msg.defects) + sum(len(h.defects) for h in msg.values()),
    "body": msg.get_content(),
}
json.dump(out, sys.stdout)
`

// parseWithPython reads raw with Python's email package, an independent
// RFC 5322, MIME and RFC 2047 parser.
func parseWithPython(t *testing.T, raw []byte) parsedMail {
	t.Helper()
	python := testpeer.Require(t, "/usr/bin/python3", "python3")
	cmd := exec.Command(python, "-c", parseScript)
	cmd.Stdin = bytes.NewReader(raw)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 could not parse the notice: %v\n%s\nmessage:\n%s", err, stderr.String(), raw)
	}
	var m parsedMail
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("decoding python3's output %q: %v", out, err)
	}
	return m
}

func expiringCertificate(now time.Time) *control.CertificateStatus {
	return &control.CertificateStatus{
		Names:         []string{"familie.test", "mail.familie.test"},
		NotAfter:      now.Add(10 * 24 * time.Hour),
		LastRenewal:   now.Add(-80 * 24 * time.Hour),
		LastError:     "urn:ietf:params:acme:error:connection: 203.0.113.7: Timeout during connect (likely firewall problem)",
		Issuer:        "Let's Encrypt",
		Challenge:     "http-01",
		NextAttempt:   now.Add(2 * time.Hour),
		ExpiryWarning: true,
	}
}

// TestExpiringGerman checks the notice for an expiring certificate in German
// with Python's email package, and that the owner gets it once a day only,
// also after a restart.
func TestExpiringGerman(t *testing.T) {
	b := newBox(t, "familie.test", accounts.LanguageGerman)
	b.agent.setCertificate(expiringCertificate(testStart))

	n := b.notifier(t)
	b.check(t, n)
	b.check(t, n)
	msgs := b.inbox(t, "owner")
	if len(msgs) != 1 {
		t.Fatalf("owner's inbox after two checks has %d messages, want 1", len(msgs))
	}
	if got := b.inbox(t, "ben"); len(got) != 0 {
		t.Errorf("member's inbox has %d messages, want 0", len(got))
	}

	raw := msgs[0]
	for i, c := range raw {
		if c >= 0x80 {
			t.Fatalf("byte %d of the notice is %#x, want 7-bit ASCII only:\n%s", i, c, raw)
		}
	}
	m := parseWithPython(t, raw)
	if os.Getenv("NOTICE_DUMP") != "" {
		t.Logf("raw:\n%s\nbody:\n%s", raw, m.Body)
	}
	wantSubject := "Zertifikat Deiner Heimwolke läuft am 15.12.2026 ab"
	if m.Subject != wantSubject {
		t.Errorf("Subject = %q, want %q", m.Subject, wantSubject)
	}
	if !bytes.Contains(raw, []byte("Subject: =?utf-8?")) {
		t.Errorf("Subject is not RFC 2047 encoded in the raw message:\n%s", raw)
	}
	if m.From != "Heimwolke <postmaster@familie.test>" {
		t.Errorf("From = %q, want %q", m.From, "Heimwolke <postmaster@familie.test>")
	}
	if m.ToAddress != "owner@familie.test" {
		t.Errorf("To address = %q, want %q", m.ToAddress, "owner@familie.test")
	}
	if m.To != "Jürgen Müller <owner@familie.test>" {
		t.Errorf("To = %q, want %q", m.To, "Jürgen Müller <owner@familie.test>")
	}
	if !strings.HasSuffix(m.MessageID, "@familie.test>") || !strings.HasPrefix(m.MessageID, "<") {
		t.Errorf("Message-ID = %q, want <...@familie.test>", m.MessageID)
	}
	if m.Date != "Sat, 05 Dec 2026 09:00:00 +0000" {
		t.Errorf("Date = %q, want %q", m.Date, "Sat, 05 Dec 2026 09:00:00 +0000")
	}
	if m.MIMEVersion != "1.0" {
		t.Errorf("MIME-Version = %q, want 1.0", m.MIMEVersion)
	}
	if m.ContentType != "text/plain" || m.Charset != "utf-8" {
		t.Errorf("content type = %s; charset=%s, want text/plain; charset=utf-8", m.ContentType, m.Charset)
	}
	if m.Encoding != "quoted-printable" {
		t.Errorf("Content-Transfer-Encoding = %q, want quoted-printable", m.Encoding)
	}
	if m.AutoSubmitted != "auto-generated" {
		t.Errorf("Auto-Submitted = %q, want auto-generated", m.AutoSubmitted)
	}
	if m.Defects != 0 {
		t.Errorf("python3 found %d defects in the notice, want 0:\n%s", m.Defects, raw)
	}
	for _, want := range []string{
		"Hallo Jürgen Müller,",
		"für familie.test, mail.familie.test läuft am 15.12.2026, 09:00 ab",
		"Meist leitet der Router Port 80 oder 443 nicht an die Box weiter.",
		"Genaue Meldung: urn:ietf:params:acme:error:connection: 203.0.113.7: Timeout during connect",
		"das nächste Mal am 05.12.2026, 11:00.",
		"Öffne die Verwaltung unter https://familie.test/admin",
		"Prüfe in Deinem Router, ob die Ports 80 und 443",
		"docs/de/zertifikate.md",
		"höchstens einmal am Tag",
	} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("body lacks %q:\n%s", want, m.Body)
		}
	}

	restarted := b.notifier(t)
	b.clock.advance(23 * time.Hour)
	b.check(t, restarted)
	if got := len(b.inbox(t, "owner")); got != 1 {
		t.Fatalf("owner's inbox after a restart and 23 hours has %d messages, want 1", got)
	}
	b.clock.advance(time.Hour)
	b.check(t, restarted)
	if got := len(b.inbox(t, "owner")); got != 2 {
		t.Fatalf("owner's inbox after 24 hours has %d messages, want 2", got)
	}
}

// TestLocalCertificateNoMail guards against mailing the owner about the
// box's own CA, whose certificates the agent always flags as expiring.
func TestLocalCertificateNoMail(t *testing.T) {
	b := newBox(t, "familie.test", accounts.LanguageGerman)
	b.agent.setCertificate(&control.CertificateStatus{
		Names:         []string{"heimwolke.local"},
		NotAfter:      testStart.Add(2 * 24 * time.Hour),
		Issuer:        "Heimwolke heimwolke local CA",
		Local:         true,
		LastError:     "signing certificate: disk full",
		ExpiryWarning: true,
	})

	n := b.notifier(t)
	b.check(t, n)
	b.clock.advance(2 * FailureGrace)
	b.check(t, n)
	if got := len(b.inbox(t, "owner")); got != 0 {
		t.Errorf("owner's inbox has %d messages for a local certificate, want 0", got)
	}
}

// TestFailingEnglish checks the English notice about a renewal that keeps
// failing while the certificate is still valid: none within the first day,
// one after it.
func TestFailingEnglish(t *testing.T) {
	b := newBox(t, "family.test", accounts.LanguageEnglish)
	b.agent.setCertificate(&control.CertificateStatus{
		Names:       []string{"family.test", "*.family.test"},
		NotAfter:    testStart.Add(40 * 24 * time.Hour),
		LastError:   "presenting DNS-01 record: hetzner: 401 Unauthorized: invalid token",
		Challenge:   "dns-01",
		NextAttempt: testStart.Add(30 * time.Minute),
	})

	n := b.notifier(t)
	b.check(t, n)
	b.clock.advance(FailureGrace - time.Minute)
	b.check(t, n)
	if got := len(b.inbox(t, "owner")); got != 0 {
		t.Fatalf("owner's inbox within the first day of failures has %d messages, want 0", got)
	}

	b.clock.advance(time.Minute)
	b.check(t, b.notifier(t))
	msgs := b.inbox(t, "owner")
	if len(msgs) != 1 {
		t.Fatalf("owner's inbox after a day of failures has %d messages, want 1", len(msgs))
	}
	m := parseWithPython(t, msgs[0])
	if want := "Your Heimwolke cannot renew its certificate"; m.Subject != want {
		t.Errorf("Subject = %q, want %q", m.Subject, want)
	}
	if m.From != "Heimwolke <postmaster@family.test>" {
		t.Errorf("From = %q, want %q", m.From, "Heimwolke <postmaster@family.test>")
	}
	for _, want := range []string{
		"Hello Jane Doe,",
		"renew its certificate for family.test, *.family.test since 5 Dec 2026, 09:00",
		"valid until 14 Jan 2027, 09:00",
		"Your DNS provider rejected the change",
		"Exact message: presenting DNS-01 record: hetzner: 401 Unauthorized: invalid token",
		"The box keeps trying by itself.",
		"https://family.test/admin",
		"Check under \"DNS\"",
		"docs/en/certificates.md",
	} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("body lacks %q:\n%s", want, m.Body)
		}
	}
}

// TestErrorClearedRestartsGrace guards against a notice about an old,
// already solved renewal error: the day of grace starts again with a new
// error.
func TestErrorClearedRestartsGrace(t *testing.T) {
	b := newBox(t, "familie.test", accounts.LanguageGerman)
	failing := &control.CertificateStatus{
		Names:     []string{"familie.test"},
		NotAfter:  testStart.Add(60 * 24 * time.Hour),
		LastError: "dial tcp: lookup acme-v02.api.letsencrypt.org: no such host",
	}
	b.agent.setCertificate(failing)
	n := b.notifier(t)
	b.check(t, n)

	b.clock.advance(12 * time.Hour)
	b.agent.setCertificate(&control.CertificateStatus{Names: failing.Names, NotAfter: failing.NotAfter})
	b.check(t, n)

	b.clock.advance(12 * time.Hour)
	b.agent.setCertificate(failing)
	b.check(t, n)
	if got := len(b.inbox(t, "owner")); got != 0 {
		t.Errorf("owner's inbox after two half-day failures has %d messages, want 0", got)
	}
}

// TestNoDomainNoMail checks that a box without a domain sends nothing and
// reports no error, since it has no address to send from.
func TestNoDomainNoMail(t *testing.T) {
	b := newBox(t, "", accounts.LanguageGerman)
	b.agent.setCertificate(expiringCertificate(testStart))
	b.check(t, b.notifier(t))
	if got := len(b.inbox(t, "owner")); got != 0 {
		t.Errorf("owner's inbox without a domain has %d messages, want 0", got)
	}
}

// TestNoSettingsNoMail checks that a box before the setup sends nothing and
// reports no error.
func TestNoSettingsNoMail(t *testing.T) {
	b := newBox(t, "familie.test", accounts.LanguageGerman)
	b.agent.noSettings = true
	b.agent.setCertificate(expiringCertificate(testStart))
	b.check(t, b.notifier(t))
	if got := len(b.inbox(t, "owner")); got != 0 {
		t.Errorf("owner's inbox before the setup has %d messages, want 0", got)
	}
}

// TestMailOffNoMail checks that a box whose mail service is turned off
// stores no notice, because the owner would not read it there.
func TestMailOffNoMail(t *testing.T) {
	b := newBox(t, "familie.test", accounts.LanguageGerman)
	b.agent.settings.Services.Mail = false
	b.agent.setCertificate(expiringCertificate(testStart))
	b.check(t, b.notifier(t))
	if got := len(b.inbox(t, "owner")); got != 0 {
		t.Errorf("owner's inbox with mail turned off has %d messages, want 0", got)
	}
}

// TestRunChecksAtStart checks that Run checks at once and stops when its
// context ends.
func TestRunChecksAtStart(t *testing.T) {
	b := newBox(t, "familie.test", accounts.LanguageGerman)
	b.agent.setCertificate(expiringCertificate(testStart))
	n := b.notifier(t)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for len(b.inbox(t, "owner")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not deliver a notice within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v after its context ended, want nil", err)
	}
}

func TestNewRequiresOptions(t *testing.T) {
	_, err := New(Options{})
	if err == nil {
		t.Fatal("New(Options{}) succeeded, want an error")
	}
	for _, field := range []string{"Agent", "Users", "Deliverer", "DB"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("New(Options{}) error %q does not name %s", err, field)
		}
	}
}
