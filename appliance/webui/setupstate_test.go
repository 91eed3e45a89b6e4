package webui

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

func TestSetupStateMarkComplete(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "heimwolke.db")
	s, err := OpenSetupState(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Complete() {
		t.Fatal("new database: setup complete, want incomplete")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database file mode %v, want 0600", fi.Mode().Perm())
	}

	first := time.Unix(1_800_000_000, 0)
	if err := s.MarkComplete(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkComplete(ctx, first.Add(time.Hour)); err != nil {
		t.Fatalf("second MarkComplete: %v", err)
	}
	if !s.Complete() {
		t.Error("after MarkComplete: setup incomplete, want complete")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// An independent reader sees the first time.
	sqlite3 := testpeer.Require(t, "sqlite3", "sqlite3")
	out, err := exec.Command(sqlite3, path, "SELECT completed FROM setup; SELECT version FROM schema_versions WHERE component = 'setup';").CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v: %s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "1800000000\n1"; got != want {
		t.Errorf("sqlite3 output %q, want %q", got, want)
	}

	reopened, err := OpenSetupState(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	if !reopened.Complete() {
		t.Error("after reopening: setup incomplete, want complete")
	}
}

func TestSetupStateRejectsNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "heimwolke.db")
	s, err := OpenSetupState(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`UPDATE schema_versions SET version = 99 WHERE component = 'setup'`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	_, err = OpenSetupState(ctx, path)
	if err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Errorf("opening a newer schema: got %v, want an error naming version 99", err)
	}
}
