package accounts

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// sqlite3Query runs sql on the database file with the sqlite3 program.
func sqlite3Query(t *testing.T, sqlite3, path, sql string) string {
	t.Helper()
	out, err := exec.Command(sqlite3, path, sql).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s %q: %v\n%s", path, sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

// grepCount returns how many lines of file contain s, as grep -c counts
// them. A missing file counts 0.
func grepCount(t *testing.T, file, s string) string {
	t.Helper()
	if _, err := os.Stat(file); os.IsNotExist(err) {
		return "0"
	}
	out, err := exec.Command("grep", "-c", "-a", "-F", "--", s, file).Output()
	// grep exits with 1 when no line matches, and still prints 0.
	if err != nil && !(isExitCode(err, 1) && len(out) > 0) {
		t.Fatalf("grep -c %q %s: %v", s, file, err)
	}
	return strings.TrimSpace(string(out))
}

func isExitCode(err error, code int) bool {
	ee, ok := err.(*exec.ExitError)
	return ok && ee.ExitCode() == code
}

// TestSQLite3SeesNoSecrets opens the database with the sqlite3 program, an
// independent reader of the file format, and greps the database and WAL for
// every secret the test handed to the store.
func TestSQLite3SeesNoSecrets(t *testing.T) {
	sqlite3 := testpeer.Require(t, "sqlite3", "sqlite3")
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)
	ben := env.createMember(t, "ben")
	appSecret, _, err := env.store.CreateAppPassword(ctx, owner.ID, "Thunderbird on the laptop", ScopeMail)
	if err != nil {
		t.Fatal(err)
	}
	token, session, err := env.store.CreateSession(ctx, ben.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.store.CheckPassword(ctx, "anna", ownerPassword, lanAddr, "https"); err != nil {
		t.Fatal(err)
	}

	secrets := map[string]string{
		"owner password":           ownerPassword,
		"member password":          memberPassword,
		"app password":             appSecret,
		"app password, no dashes":  strings.ReplaceAll(appSecret, "-", ""),
		"session token":            token,
		"CSRF token (base64)":      session.CSRFToken(),
		"owner password, 1st half": ownerPassword[:12],
	}
	check := func(when string) {
		t.Helper()
		if got := sqlite3Query(t, sqlite3, env.path, "PRAGMA integrity_check"); got != "ok" {
			t.Errorf("%s: integrity_check = %q, want ok", when, got)
		}
		if got := sqlite3Query(t, sqlite3, env.path, "PRAGMA journal_mode"); got != "wal" {
			t.Errorf("%s: journal_mode = %q, want wal", when, got)
		}
		if got := sqlite3Query(t, sqlite3, env.path, "PRAGMA foreign_key_check"); got != "" {
			t.Errorf("%s: foreign_key_check = %q, want nothing", when, got)
		}
		if got := sqlite3Query(t, sqlite3, env.path, "SELECT name, role FROM users ORDER BY id"); got != "anna|owner\nben|member" {
			t.Errorf("%s: users = %q, want anna|owner and ben|member", when, got)
		}

		for _, file := range []string{env.path, env.path + "-wal"} {
			for label, secret := range secrets {
				if n := grepCount(t, file, secret); n != "0" {
					t.Errorf("%s: grep -c finds the %s in %s %s times, want 0", when, label, file, n)
				}
			}
		}
		// The positive control shows that grep reads these files at all.
		found := grepCount(t, env.path, "$argon2id$v=19$") != "0" || grepCount(t, env.path+"-wal", "$argon2id$v=19$") != "0"
		if !found {
			t.Errorf("%s: grep finds no Argon2id hash in the database or WAL, so the grep checks prove nothing", when)
		}
	}

	// While the store is open, recent writes sit in the WAL.
	if fi, err := os.Stat(env.path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("no WAL next to the open database: %v", err)
	}
	check("store open")

	if err := env.store.Close(); err != nil {
		t.Fatal(err)
	}
	env.store = nil
	check("store closed")

	raw, err := os.ReadFile(env.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte("SQLite format 3\x00")) {
		t.Fatal("database file lacks the SQLite header")
	}
}
