package queue

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/sqlitedb"
)

func openTestQueue(t testing.TB, dir string, mod func(*Options)) *Queue {
	t.Helper()
	ctx := context.Background()
	db, err := sqlitedb.Open(ctx, filepath.Join(dir, "heimwolke.db"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	opts := Options{Dir: filepath.Join(dir, "queue"), DB: db, Hostname: "box.example.org"}
	if mod != nil {
		mod(&opts)
	}
	q, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// recordingSigner returns a fixed field and records the message it read.
type recordingSigner struct {
	domain string
	read   string
}

func (s *recordingSigner) SignatureFields(domain string, msg io.Reader) ([]byte, error) {
	b, err := io.ReadAll(msg)
	s.domain, s.read = domain, string(b)
	return []byte("DKIM-Signature: v=1; d=" + domain + "\r\n"), err
}

func TestEnqueueSignsAndStores(t *testing.T) {
	signer := &recordingSigner{}
	q := openTestQueue(t, t.TempDir(), func(o *Options) { o.Signer = signer })
	ctx := context.Background()
	header := []byte("From: a@example.org\r\nSubject: x\r\n")
	body := strings.NewReader("\r\nbody\r\n")
	body.Seek(3, io.SeekStart) // Enqueue must read the body from its start.

	id, err := q.Enqueue(ctx, Envelope{Login: "a", From: "a@example.org", To: []string{"x@r.test"}}, header, body)
	if err != nil {
		t.Fatal(err)
	}

	const message = "From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"
	if signer.domain != "example.org" {
		t.Errorf("signed for domain %q, want example.org", signer.domain)
	}
	if signer.read != message {
		t.Errorf("signer read %q, want %q", signer.read, message)
	}
	stored, err := q.Message(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if want := "DKIM-Signature: v=1; d=example.org\r\n" + message; string(stored) != want {
		t.Errorf("stored message %q, want %q", stored, want)
	}
	var size int64
	if err := q.db.QueryRowContext(ctx, `SELECT size FROM mailqueue_messages WHERE id = ?`, id).Scan(&size); err != nil {
		t.Fatal(err)
	}
	if size != int64(len(stored)) {
		t.Errorf("index size %d, want the file size %d", size, len(stored))
	}
}

func TestEnqueueBodyReadError(t *testing.T) {
	dir := t.TempDir()
	q := openTestQueue(t, dir, nil)
	body := &failingSeeker{ReadSeeker: strings.NewReader("\r\nbody\r\n")}
	_, err := q.Enqueue(context.Background(), Envelope{Login: "a", From: "a@example.org", To: []string{"x@r.test"}},
		[]byte("From: a@example.org\r\n"), body)
	if err == nil || !strings.Contains(err.Error(), "spool read failed") {
		t.Errorf("Enqueue with a failing body: error %v, want the read error", err)
	}
	files, err := os.ReadDir(filepath.Join(dir, "queue", "messages"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 0 {
		t.Errorf("queue folder has %d files after a failed Enqueue, want 0", len(files))
	}
	if entries, _ := q.Entries(context.Background()); len(entries) != 0 {
		t.Errorf("queue has %d entries after a failed Enqueue, want 0", len(entries))
	}
}

// failingSeeker returns two bytes and then fails every Read.
type failingSeeker struct {
	io.ReadSeeker
	reads int
}

func (f *failingSeeker) Read(p []byte) (int, error) {
	f.reads++
	if f.reads > 1 {
		return 0, errors.New("spool read failed")
	}
	return f.ReadSeeker.Read(p[:min(len(p), 2)])
}

func TestEnqueueSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	q := openTestQueue(t, dir, nil)
	header := []byte("From: a@example.org\r\nSubject: x\r\n")
	body := strings.NewReader("\r\nbody\r\n")
	id, err := q.Enqueue(context.Background(), Envelope{Login: "a", From: "a@example.org", To: []string{"x@r.test", "X@r.test", "y@r.test"}}, header, body)
	if err != nil {
		t.Fatal(err)
	}

	// A file that a crash left between rename and index commit.
	orphan := filepath.Join(dir, "queue", "messages", "123.eml")
	if err := os.WriteFile(orphan, []byte("never acknowledged"), 0o600); err != nil {
		t.Fatal(err)
	}

	q = openTestQueue(t, dir, nil)
	entries, err := q.Entries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("got %d entries, want 2 (x@ once, y@)", len(entries))
	}
	got, err := q.Message(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if want := "From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"; string(got) != want {
		t.Errorf("stored message = %q, want %q", got, want)
	}
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("orphan file still exists after reopening: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	err := Options{Smarthost: &control.SmarthostSettings{Host: "relay.test", Port: 0, TLS: "none"}}.validate()
	if err == nil {
		t.Fatal("validate accepted empty options")
	}
	for _, want := range []string{"missing Dir", "missing DB", "missing Hostname", "port 0", `TLS mode "none"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestSetSmarthostInvalid(t *testing.T) {
	q := openTestQueue(t, t.TempDir(), nil)
	err := q.SetSmarthost(&control.SmarthostSettings{Host: "relay.test", Port: 587, TLS: "plain"})
	if err == nil || !strings.Contains(err.Error(), `TLS mode "plain"`) {
		t.Errorf("SetSmarthost with TLS mode plain: error %v, want one naming the mode", err)
	}
	if q.currentSmarthost() != nil {
		t.Error("an invalid smarthost replaced direct delivery")
	}
}

func TestReplyResult(t *testing.T) {
	tests := []struct {
		err           error
		wantPermanent bool
		wantStatus    string
	}{
		{&textproto.Error{Code: 550, Msg: "5.1.1 <x@r.test>: User unknown"}, true, "5.1.1"},
		{&textproto.Error{Code: 451, Msg: "4.3.0 try later"}, false, "4.3.0"},
		{&textproto.Error{Code: 554, Msg: "no enhanced code"}, true, "5.0.0"},
		{errors.New("connection refused"), false, ""},
	}
	for _, tc := range tests {
		res := replyResult("mx:25", tc.err)
		if res.permanent != tc.wantPermanent || res.status != tc.wantStatus {
			t.Errorf("replyResult(%v) = permanent %v status %q, want %v %q", tc.err, res.permanent, res.status, tc.wantPermanent, tc.wantStatus)
		}
	}
}

func TestPolicyMatches(t *testing.T) {
	p := &stsPolicy{mode: "enforce", mx: []string{"mail.example.org", "*.example.net"}}
	tests := map[string]bool{
		"mail.example.org":      true,
		"MAIL.example.org.":     true,
		"mx1.example.net":       true,
		"a.mx1.example.net":     false, // the wildcard covers one label
		"example.net":           false,
		"mail.example.org.evil": false,
	}
	for host, want := range tests {
		if got := p.matches(host); got != want {
			t.Errorf("matches(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	p, err := parsePolicy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.org\r\nmx: *.example.net\r\nmax_age: 86400\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if p.mode != "enforce" || len(p.mx) != 2 || p.maxAge != 24*time.Hour {
		t.Errorf("policy = %+v, want enforce, 2 mx, 24h", p)
	}
	for _, bad := range []string{
		"mode: enforce\nmx: a\nmax_age: 1\n",
		"version: STSv1\nmode: always\nmx: a\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: a\nmax_age: 99999999999\n",
	} {
		if _, err := parsePolicy(bad); err == nil {
			t.Errorf("parsePolicy(%q) succeeded, want an error", bad)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add("version: STSv1\r\nmode: enforce\r\nmx: mail.example.org\r\nmax_age: 86400\r\n")
	f.Add("version: STSv1\nmode: none\nmax_age: 0\n")
	f.Add("mx:\n:\n")
	f.Fuzz(func(t *testing.T, text string) {
		p, err := parsePolicy(text)
		if err != nil {
			return
		}
		if p.mode != "enforce" && p.mode != "testing" && p.mode != "none" {
			t.Errorf("parsePolicy accepted mode %q", p.mode)
		}
		p.matches("mail.example.org")
	})
}

func TestBuildDSNEnglish(t *testing.T) {
	q := openTestQueue(t, t.TempDir(), nil)
	content := "DKIM-Signature: x\r\nFrom: ben@example.org\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nsecret body\r\n"
	m := &queuedMessage{
		login: "ben", from: "ben@example.org", created: time.Unix(1700000000, 0),
		content: io.NewSectionReader(strings.NewReader(content), 0, int64(len(content))),
	}
	dsn, err := q.buildDSN("en", m, []failure{{rcpt: "x@r.test", status: "4.4.7", detail: "connection refused"}})
	if err != nil {
		t.Fatal(err)
	}
	s := string(dsn)
	for _, want := range []string{
		"Reporting-MTA: dns; box.example.org",
		"Final-Recipient: rfc822; x@r.test",
		"Status: 4.4.7",
		"could not be reached for 5 days",
		"report-type=delivery-status",
		"Auto-Submitted: auto-replied",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("DSN lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "secret body") {
		t.Errorf("DSN contains the original body, want only its header:\n%s", s)
	}
}

// notFoundResolver fails every query with "no such host", so that
// direct delivery goes to the recipient domain itself.
type notFoundResolver struct{}

func (notFoundResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (notFoundResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// TestLastSmarthostRecorded guards against the queue page blaming the
// recipient's server when the smarthost failed: an entry records whether
// its last failed attempt went through the smarthost.
func TestLastSmarthostRecorded(t *testing.T) {
	ctx := context.Background()
	// A port that refuses connections: a listener that is closed at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().(*net.TCPAddr).Port
	l.Close()

	now := time.Now()
	q := openTestQueue(t, t.TempDir(), func(o *Options) {
		o.Now = func() time.Time { return now }
		o.Smarthost = &control.SmarthostSettings{Host: "127.0.0.1", Port: refused, TLS: control.SmarthostSTARTTLS}
		o.Resolver = notFoundResolver{}
		o.MXPort = refused
		o.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort("127.0.0.1", strconv.Itoa(refused)))
		}
	})
	header := []byte("From: a@example.org\r\nSubject: x\r\n")
	body := strings.NewReader("\r\nbody\r\n")
	id, err := q.Enqueue(ctx, Envelope{Login: "a", From: "a@example.org", To: []string{"x@r.test"}}, header, body)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name      string
		smarthost *control.SmarthostSettings
	}{
		{"through smarthost", q.currentSmarthost()},
		{"direct", nil},
	} {
		if err := q.SetSmarthost(tc.smarthost); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Hour) // past the retry delay
		if err := q.deliverMessage(ctx, id); err != nil {
			t.Fatalf("%s: deliverMessage: %v", tc.name, err)
		}
		entries, err := q.Entries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			t.Fatalf("%s: got %d entries, want 1", tc.name, len(entries))
		}
		if !strings.Contains(entries[0].LastError, "connecting to") {
			t.Errorf("%s: last error %q, want a failed connection", tc.name, entries[0].LastError)
		}
		if got, want := entries[0].LastSmarthost, tc.smarthost != nil; got != want {
			t.Errorf("%s: LastSmarthost = %v, want %v", tc.name, got, want)
		}
	}
}

// TestBounceToDeletedSenderDropped guards against a bounce recreating the
// mailboxes of a sender whose account was deleted while their message
// was queued.
func TestBounceToDeletedSenderDropped(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, store.Options{
		Dir:          filepath.Join(dir, "mail"),
		DatabasePath: filepath.Join(dir, "mail.db"),
		UserExists:   func(ctx context.Context, login string) (bool, error) { return login != "ben", nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var logs strings.Builder
	q := openTestQueue(t, dir, func(o *Options) {
		o.Local = st
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	content := "From: ben@example.org\r\nSubject: Hallo\r\n\r\nText\r\n"
	m := &queuedMessage{
		id: 7, login: "ben", from: "ben@example.org", created: time.Unix(1700000000, 0),
		content: io.NewSectionReader(strings.NewReader(content), 0, int64(len(content))),
	}

	q.bounce(ctx, m, []failure{{rcpt: "x@r.test", status: "5.1.1", detail: "no such user"}})

	if !strings.Contains(logs.String(), "mail bounce dropped: sender deleted") {
		t.Errorf("log lacks the dropped bounce:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("log has an error for the dropped bounce:\n%s", logs.String())
	}
	// Mailbox fails with ErrNoSuchUser only while ben has no mailboxes.
	if _, err := st.Mailbox(ctx, "ben", "INBOX"); !errors.Is(err, store.ErrNoSuchUser) {
		t.Errorf("ben's inbox after the bounce: got %v, want ErrNoSuchUser", err)
	}
	if entries, err := os.ReadDir(filepath.Join(dir, "mail", "ben")); err == nil {
		t.Errorf("ben's message folder exists after the bounce with %d entries, want none", len(entries))
	}
}
