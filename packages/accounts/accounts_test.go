package accounts

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// cheapArgon2 keeps the tests fast. The cost has no effect on correctness.
var cheapArgon2 = Argon2Params{Memory: 64, Time: 1, Threads: 1}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type syncBuffer = testpeer.Buffer

type testEnv struct {
	store *Store
	clock *testClock
	log   *syncBuffer
	path  string
	opts  Options
}

// newTestEnv opens a store in a temporary directory with a fake clock, cheap
// hashes and a captured debug log. opts may set further options.
func newTestEnv(t *testing.T, opts Options) *testEnv {
	t.Helper()
	env := &testEnv{
		clock: &testClock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)},
		log:   &syncBuffer{},
		path:  filepath.Join(t.TempDir(), "heimwolke.db"),
	}
	if opts.Argon2 == (Argon2Params{}) {
		opts.Argon2 = cheapArgon2
	}
	opts.Now = env.clock.Now
	opts.Logger = slog.New(slog.NewTextHandler(env.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	env.opts = opts
	env.reopen(t)
	return env
}

// reopen closes the store, if open, and opens the file again.
func (env *testEnv) reopen(t *testing.T) {
	t.Helper()
	if env.store != nil {
		if err := env.store.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	s, err := Open(context.Background(), env.path, env.opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", env.path, err)
	}
	env.store = s
	t.Cleanup(func() { s.Close() })
}

const (
	ownerPassword  = "correct horse battery staple"
	memberPassword = "Rhabarberbarbara-42"
)

var (
	lanAddr      = netip.MustParseAddr("192.168.178.23")
	internetAddr = netip.MustParseAddr("203.0.113.50")
)

func (env *testEnv) createOwner(t *testing.T) *User {
	t.Helper()
	u, err := env.store.CreateOwner(context.Background(), NewUser{
		Name: "anna", DisplayName: "Anna Müller", Language: LanguageGerman, Password: ownerPassword,
	})
	if err != nil {
		t.Fatalf("CreateOwner: %v", err)
	}
	return u
}

func (env *testEnv) createMember(t *testing.T, name string) *User {
	t.Helper()
	u, err := env.store.CreateMember(context.Background(), NewUser{
		Name: name, Language: LanguageEnglish, Password: memberPassword,
	})
	if err != nil {
		t.Fatalf("CreateMember(%s): %v", name, err)
	}
	return u
}

func TestOpenSetsPragmas(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	tests := []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"synchronous", "2"},
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
	}
	for _, tt := range tests {
		var got string
		if err := env.store.db.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("PRAGMA %s = %q, want %q", tt.pragma, got, tt.want)
		}
	}
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	env := newTestEnv(t, Options{})
	fi, err := os.Stat(env.path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Fatalf("database file mode = %v, want 0600", got)
	}
}

func TestOpenPathWithQueryCharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a?b#c d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "x.db")
	s, err := Open(context.Background(), path, Options{Argon2: cheapArgon2})
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	defer s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at the given path: %v", err)
	}
}

func TestMigrationsIdempotentAcrossReopen(t *testing.T) {
	env := newTestEnv(t, Options{})
	owner := env.createOwner(t)
	for range 3 {
		env.reopen(t)
	}

	var version int
	err := env.store.db.QueryRow(`SELECT version FROM schema_versions WHERE component = 'accounts'`).Scan(&version)
	if err != nil {
		t.Fatal(err)
	}
	if version != len(migrations) {
		t.Fatalf("schema version = %d, want %d", version, len(migrations))
	}
	got, err := env.store.User(context.Background(), owner.ID)
	if err != nil {
		t.Fatalf("User after reopen: %v", err)
	}
	if got.Name != "anna" {
		t.Fatalf("user name after reopen = %q, want anna", got.Name)
	}
}

func TestOpenRejectsNewerSchema(t *testing.T) {
	env := newTestEnv(t, Options{})
	_, err := env.store.db.Exec(`UPDATE schema_versions SET version = 99 WHERE component = 'accounts'`)
	if err != nil {
		t.Fatal(err)
	}
	env.store.Close()

	_, err = Open(context.Background(), env.path, env.opts)
	if err == nil || !strings.Contains(err.Error(), "schema version 99 is newer") {
		t.Fatalf("Open with schema version 99: got %v, want an error naming the version", err)
	}
}

func TestOpenRejectsBadArgon2Options(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	_, err := Open(context.Background(), path, Options{Argon2: Argon2Params{Memory: 4, Time: 1, Threads: 1}})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "Argon2 memory" {
		t.Fatalf("Open with 4 KiB: got %v, want a FieldError for Argon2 memory", err)
	}
}

// TestDurableAcrossReopen guards against a method that returns before its
// change is committed: everything acknowledged must be there after Close
// and a new Open.
func TestDurableAcrossReopen(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)
	member := env.createMember(t, "ben")
	secret, ap, err := env.store.CreateAppPassword(ctx, owner.ID, "Thunderbird on the laptop", ScopeMail)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := env.store.CreateSession(ctx, owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.store.SetPassword(ctx, member.ID, "ein neues Passwort"); err != nil {
		t.Fatal(err)
	}

	env.reopen(t)

	users, err := env.store.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 {
		t.Fatalf("got %d users after reopen, want 2", len(users))
	}
	if _, err := env.store.CheckAppPassword(ctx, "anna", secret, lanAddr, "imap", ScopeMail); err != nil {
		t.Errorf("app password %d after reopen: %v", ap.ID, err)
	}
	if _, err := env.store.Session(ctx, token); err != nil {
		t.Errorf("session after reopen: %v", err)
	}
	if _, err := env.store.CheckPassword(ctx, "ben", "ein neues Passwort", lanAddr, "https"); err != nil {
		t.Errorf("new password after reopen: %v", err)
	}
}

func TestErrorTypes(t *testing.T) {
	te := error(&ThrottledError{RetryAfter: 90 * time.Second})
	if !errors.Is(te, ErrThrottled) {
		t.Error("ThrottledError does not match ErrThrottled")
	}
	if got, want := te.Error(), "too many failed logins: retry in 1m30s"; got != want {
		t.Errorf("ThrottledError.Error() = %q, want %q", got, want)
	}
	fe := error(&FieldError{"name", "must not be empty"})
	if !errors.Is(fe, ErrInvalid) {
		t.Error("FieldError does not match ErrInvalid")
	}
	if got, want := fe.Error(), "invalid name: must not be empty"; got != want {
		t.Errorf("FieldError.Error() = %q, want %q", got, want)
	}
}
