package aliases

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/mail/smtp"
	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/sqlitedb"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

const testDomain = "example.test"

var _ smtp.Directory = (*Directory)(nil)

// newTestDirectory returns a Directory of testDomain over the users anna
// (owner) and ben (member).
func newTestDirectory(t testing.TB) *Directory {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	users, err := accounts.Open(ctx, filepath.Join(dir, "accounts.db"), accounts.Options{
		Argon2: accounts.Argon2Params{Memory: 64, Time: 1, Threads: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { users.Close() })
	if _, err := users.CreateOwner(ctx, accounts.NewUser{Name: "anna", Password: "correct horse battery", Language: accounts.LanguageEnglish}); err != nil {
		t.Fatal(err)
	}
	if _, err := users.CreateMember(ctx, accounts.NewUser{Name: "ben", Password: "correct horse battery", Language: accounts.LanguageEnglish}); err != nil {
		t.Fatal(err)
	}

	db, err := sqlitedb.Open(ctx, filepath.Join(dir, "heimwolke.db"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	return store.Directory([]string{"Example.Test."}, users)
}

func TestLookup(t *testing.T) {
	ctx := context.Background()
	d := newTestDirectory(t)
	if err := d.Add(ctx, "Info@example.test", "BEN"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		addr, want string
		err        error
	}{
		{"anna@example.test", "anna", nil},
		{"ANNA+shop@Example.Test", "anna", nil},
		{"info@example.test", "ben", nil},
		{"info+news@example.test", "ben", nil},
		{"postmaster@example.test", "anna", nil},
		{"abuse+x@example.test", "anna", nil},
		{"nobody@example.test", "", smtp.ErrUnknownRecipient},
		{"anna@other.test", "", smtp.ErrNotLocal},
		{"not-an-address", "", smtp.ErrNotLocal},
	}
	for _, tt := range tests {
		got, err := d.Lookup(ctx, tt.addr)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tt.addr, got, err, tt.want, tt.err)
		}
	}

	if err := d.SetCatchAll(ctx, "example.test", "ben"); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Lookup(ctx, "nobody@example.test"); got != "ben" || err != nil {
		t.Errorf("Lookup with catch-all = %q, %v; want ben, nil", got, err)
	}
	if err := d.ClearCatchAll(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Lookup(ctx, "nobody@example.test"); !errors.Is(err, smtp.ErrUnknownRecipient) {
		t.Errorf("Lookup after ClearCatchAll: got %v, want ErrUnknownRecipient", err)
	}
}

func TestRoleAddressAlias(t *testing.T) {
	ctx := context.Background()
	d := newTestDirectory(t)
	if err := d.Add(ctx, "postmaster@example.test", "ben"); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Lookup(ctx, "postmaster@example.test"); got != "ben" {
		t.Errorf("Lookup(postmaster@) = %q, want ben", got)
	}
	if got, _ := d.Lookup(ctx, "abuse@example.test"); got != "anna" {
		t.Errorf("Lookup(abuse@) = %q, want anna", got)
	}
	if owned, _ := d.Owns(ctx, "anna", "postmaster@example.test"); owned {
		t.Error("anna owns postmaster@ after it became ben's alias")
	}
	if owned, _ := d.Owns(ctx, "anna", "abuse@example.test"); !owned {
		t.Error("anna does not own abuse@")
	}
}

// legacyUsers is the box's users plus members named postmaster and
// webmaster, as a box has them that was set up before those names were
// reserved.
type legacyUsers struct{ *accounts.Store }

func (u legacyUsers) UserByName(ctx context.Context, name string) (*accounts.User, error) {
	if name == "postmaster" || name == "webmaster" {
		return &accounts.User{ID: 99, Name: name, Role: accounts.RoleMember}, nil
	}
	return u.Store.UserByName(ctx, name)
}

// TestRoleAddressesSkipUsers guards against a member named postmaster
// receiving the box's reports and complaints: every role address reaches
// the owner over SMTP, and that member may not send as it.
func TestRoleAddressesSkipUsers(t *testing.T) {
	ctx := context.Background()
	d := newTestDirectory(t)
	d = d.Store.Directory(d.Domains(), legacyUsers{d.users.(*accounts.Store)})
	deliverer := &memDeliverer{}
	host, port := startSMTP(t, d, deliverer)

	for _, local := range append(accounts.ReservedNames(), "Postmaster", "webmaster+x") {
		rcpt := local + "@" + testDomain
		if out, code := swaksTo(t, host, port, rcpt); code != 0 {
			t.Fatalf("%s: swaks exit code %d, want 0:\n%s", rcpt, code, out)
		}
		if got := deliverer.last(); got != "anna" {
			t.Errorf("%s delivered to %q, want the owner anna", rcpt, got)
		}
	}
	for _, login := range []string{"postmaster", "webmaster"} {
		if owned, err := d.Owns(ctx, login, login+"@"+testDomain); owned || err != nil {
			t.Errorf("Owns(%s, %s@) = %v, %v; want false, nil", login, login, owned, err)
		}
	}
	if owned, err := d.Owns(ctx, "anna", "hostmaster@"+testDomain); !owned || err != nil {
		t.Errorf("Owns(anna, hostmaster@) = %v, %v; want true, nil", owned, err)
	}
}

func TestOwns(t *testing.T) {
	ctx := context.Background()
	d := newTestDirectory(t)
	if err := d.Add(ctx, "info@example.test", "ben"); err != nil {
		t.Fatal(err)
	}
	if err := d.SetCatchAll(ctx, "example.test", "ben"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		login, addr string
		want        bool
	}{
		{"ben", "ben@example.test", true},
		{"ben", "info@example.test", true},
		{"anna", "info@example.test", false},
		{"ben", "random@example.test", false},
		{"ben", "ben@other.test", false},
		{"ben", "postmaster@example.test", false},
	}
	for _, tt := range tests {
		got, err := d.Owns(ctx, tt.login, tt.addr)
		if got != tt.want || err != nil {
			t.Errorf("Owns(%q, %q) = %v, %v; want %v, nil", tt.login, tt.addr, got, err, tt.want)
		}
	}
}

func TestAddRejects(t *testing.T) {
	ctx := context.Background()
	d := newTestDirectory(t)
	if err := d.Add(ctx, "info@example.test", "ben"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr, login string
		err         error
	}{
		{"info@example.test", "anna", ErrExists},
		{"anna@example.test", "ben", ErrExists},
		{"info@other.test", "ben", ErrInvalidAddress},
		{"no-at-sign", "ben", ErrInvalidAddress},
		{".info@example.test", "ben", ErrInvalidAddress},
		{"in..fo@example.test", "ben", ErrInvalidAddress},
		{"in fo@example.test", "ben", ErrInvalidAddress},
		{"info+x@example.test", "ben", ErrInvalidAddress},
		{"jürgen@example.test", "ben", ErrInvalidAddress},
		{strings.Repeat("a", 65) + "@example.test", "ben", ErrInvalidAddress},
		{"kontakt@example.test", "carl", ErrUnknownLogin},
	}
	for _, tt := range tests {
		err := d.Add(ctx, tt.addr, tt.login)
		if !errors.Is(err, tt.err) {
			t.Errorf("Add(%q, %q) = %v, want %v", tt.addr, tt.login, err, tt.err)
		}
	}
	if err := d.SetCatchAll(ctx, "other.test", "ben"); !errors.Is(err, ErrInvalidAddress) {
		t.Errorf("SetCatchAll(other.test) = %v, want ErrInvalidAddress", err)
	}
	if err := d.Remove(ctx, "kontakt@example.test"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove(unknown) = %v, want ErrNotFound", err)
	}

	list, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0] != (Alias{"info@example.test", "ben"}) {
		t.Errorf("List = %v, want [{info@example.test ben}]", list)
	}
}

// memDeliverer keeps delivered messages in memory.
type memDeliverer struct {
	mu    sync.Mutex
	login []string
}

func (m *memDeliverer) Deliver(ctx context.Context, login, folder string, r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.login = append(m.login, login)
	return nil
}

func (m *memDeliverer) last() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.login) == 0 {
		return ""
	}
	return m.login[len(m.login)-1]
}

// startSMTP serves inbound SMTP with d on a loopback port.
func startSMTP(t *testing.T, d smtp.Directory, deliverer smtp.Deliverer) (host, port string) {
	t.Helper()
	srv, err := smtp.New(smtp.Options{
		Hostname:  "mail." + testDomain,
		TLSConfig: testpeer.SelfSigned(t, "mail."+testDomain).ServerConfig(),
		Directory: d,
		Deliverer: deliverer,
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l, smtp.Inbound)
	host, port, _ = net.SplitHostPort(l.Addr().String())
	return host, port
}

// swaksTo sends one message to rcpt and returns swaks' transcript and
// exit code.
func swaksTo(t *testing.T, host, port, rcpt string) (string, int) {
	t.Helper()
	return testpeer.Swaks(t, "--server", host, "--port", port,
		"--ehlo", "client.sender.test", "--from", "someone@sender.test", "--to", rcpt, "-tls")
}

func TestSMTPDeliversToAliases(t *testing.T) {
	ctx := context.Background()
	d := newTestDirectory(t)
	deliverer := &memDeliverer{}
	host, port := startSMTP(t, d, deliverer)

	if out, code := swaksTo(t, host, port, "kontakt@example.test"); code == 0 || !strings.Contains(out, "550") {
		t.Fatalf("unknown address: got exit code %d, want a 550 rejection:\n%s", code, out)
	}

	// Added while the server runs: no restart in between.
	if err := d.Add(ctx, "kontakt@example.test", "ben"); err != nil {
		t.Fatal(err)
	}
	if out, code := swaksTo(t, host, port, "kontakt@example.test"); code != 0 {
		t.Fatalf("alias: swaks exit code %d, want 0:\n%s", code, out)
	}
	if got := deliverer.last(); got != "ben" {
		t.Errorf("alias delivered to %q, want ben", got)
	}

	if out, code := swaksTo(t, host, port, "postmaster@example.test"); code != 0 {
		t.Fatalf("postmaster: swaks exit code %d, want 0:\n%s", code, out)
	}
	if got := deliverer.last(); got != "anna" {
		t.Errorf("postmaster@ delivered to %q, want anna", got)
	}

	if err := d.SetCatchAll(ctx, testDomain, "anna"); err != nil {
		t.Fatal(err)
	}
	if out, code := swaksTo(t, host, port, "whatever@example.test"); code != 0 {
		t.Fatalf("catch-all: swaks exit code %d, want 0:\n%s", code, out)
	}
	if got := deliverer.last(); got != "anna" {
		t.Errorf("catch-all delivered to %q, want anna", got)
	}

	if err := d.Remove(ctx, "kontakt@example.test"); err != nil {
		t.Fatal(err)
	}
	if out, code := swaksTo(t, host, port, "kontakt@example.test"); code != 0 {
		t.Fatalf("removed alias under catch-all: swaks exit code %d, want 0:\n%s", code, out)
	}
	if got := deliverer.last(); got != "anna" {
		t.Errorf("removed alias delivered to %q, want anna through the catch-all", got)
	}
}

// FuzzLookup feeds Lookup and Add with addresses as they come from RCPT
// TO and the admin form: neither may panic, and an address that Add
// accepts must be valid and found by Lookup afterwards.
func FuzzLookup(f *testing.F) {
	for _, seed := range []string{"info@example.test", "a+b@example.test", "@example.test", "x@", "a..b@example.test", "\"q\"@example.test", "ä@example.test", "postmaster@EXAMPLE.TEST."} {
		f.Add(seed)
	}
	d := newTestDirectory(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, addr string) {
		d.Lookup(ctx, addr)
		if err := d.Add(ctx, addr, "ben"); err != nil {
			return
		}
		defer d.Remove(ctx, addr)

		// Add trims the spaces that a form field may carry, and an SMTP
		// client sends none.
		trimmed := strings.TrimSpace(addr)
		local, _, _ := strings.Cut(strings.ToLower(trimmed), "@")
		if err := checkLocalPart(local); err != nil {
			t.Errorf("Add(%q) accepted a local part that checkLocalPart rejects: %v", addr, err)
		}
		if got, err := d.Lookup(ctx, trimmed); got != "ben" || err != nil {
			t.Errorf("Lookup(%q) after Add = %q, %v; want ben, nil", addr, got, err)
		}
	})
}

func TestRemoveTarget(t *testing.T) {
	ctx := context.Background()
	d := newTestDirectory(t)
	for address, login := range map[string]string{
		"info@example.test":    "ben",
		"kontakt@example.test": "Ben",
		"abuse@example.test":   "ben",
		"team@example.test":    "anna",
	} {
		if err := d.Add(ctx, address, login); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.SetCatchAll(ctx, testDomain, "ben"); err != nil {
		t.Fatal(err)
	}

	removed, err := d.RemoveTarget(ctx, "BEN")
	if err != nil {
		t.Fatal(err)
	}
	want := "@example.test,abuse@example.test,info@example.test,kontakt@example.test"
	if got := strings.Join(removed, ","); got != want {
		t.Errorf("RemoveTarget(BEN) = %s, want %s", got, want)
	}

	list, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0] != (Alias{Address: "team@example.test", Login: "anna"}) {
		t.Errorf("aliases after RemoveTarget = %+v, want only team@ for anna", list)
	}
	if catchAlls, _ := d.CatchAlls(ctx); len(catchAlls) != 0 {
		t.Errorf("catch-alls after RemoveTarget = %+v, want none", catchAlls)
	}
	if got, _ := d.Lookup(ctx, "abuse@example.test"); got != "anna" {
		t.Errorf("Lookup(abuse@) after RemoveTarget = %q, want the owner anna", got)
	}
	if _, err := d.Lookup(ctx, "info@example.test"); !errors.Is(err, smtp.ErrUnknownRecipient) {
		t.Errorf("Lookup(info@) after RemoveTarget: got %v, want ErrUnknownRecipient", err)
	}

	removed, err = d.RemoveTarget(ctx, "ben")
	if err != nil || len(removed) != 0 {
		t.Errorf("second RemoveTarget(ben) = %v, %v; want nothing, nil", removed, err)
	}
}
