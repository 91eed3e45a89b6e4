package sqlitedb

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOpenCreatesPrivateWALDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "box.db")
	db, err := Open(context.Background(), path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("database file mode = %o, want 600", got)
	}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestMigrateComponentsApart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "box.db")
	db, err := Open(ctx, path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	a := []string{"CREATE TABLE a (x INTEGER)", "ALTER TABLE a ADD COLUMN y INTEGER"}
	b := []string{"CREATE TABLE b (x INTEGER)"}
	for range 2 { // the second round must find nothing to do
		if err := Migrate(ctx, db, "a", a); err != nil {
			t.Fatalf("Migrate a: %v", err)
		}
		if err := Migrate(ctx, db, "b", b); err != nil {
			t.Fatalf("Migrate b: %v", err)
		}
	}
	var version int
	if err := db.QueryRow(`SELECT version FROM schema_versions WHERE component = 'a'`).Scan(&version); err != nil || version != 2 {
		t.Errorf("version of a = %d, %v; want 2", version, err)
	}
	if _, err := db.Exec("INSERT INTO a (x, y) VALUES (1, 2)"); err != nil {
		t.Errorf("table a lacks its migrated column: %v", err)
	}

	err = Migrate(ctx, db, "a", a[:1])
	if err == nil || !strings.Contains(err.Error(), "schema version 2 is newer") {
		t.Errorf("Migrate with fewer migrations than applied = %v, want an error naming version 2", err)
	}
}

func TestMigrateFailureKeepsOldSchema(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "box.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := Migrate(ctx, db, "a", []string{"CREATE TABLE a (x INTEGER)", "NOT SQL"}); err == nil {
		t.Fatal("Migrate with a broken migration succeeded")
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'a'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("table a exists after a failed migration (count %d, %v), want the transaction rolled back", n, err)
	}
}
