package sqlitedb

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// TestSecondOpenKeepsLocks opens the database twice in one process, as
// heimwolke does for its components, and then reads it with Debian's
// sqlite3. The second Open must not release the first one's file locks:
// the CLI would then believe it is the last connection, checkpoint and
// delete the WAL that heimwolke still writes to.
func TestSecondOpenKeepsLocks(t *testing.T) {
	cli := testpeer.Require(t, "sqlite3", "sqlite3")
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "box.db")
	first, err := Open(ctx, path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := first.ExecContext(ctx, `CREATE TABLE notes (text TEXT)`); err != nil {
		t.Fatal(err)
	}
	if _, err := first.ExecContext(ctx, `INSERT INTO notes VALUES ('eins')`); err != nil {
		t.Fatal(err)
	}
	second, err := Open(ctx, path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()

	if out, err := exec.Command(cli, path, "SELECT count(*) FROM notes").CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Errorf("WAL after the sqlite3 read: %v, want it kept while heimwolke has the database open", err)
	}
	for i := range 20 {
		if _, err := first.ExecContext(ctx, `INSERT INTO notes VALUES (?)`, i); err != nil {
			t.Fatalf("write %d after the sqlite3 read: %v", i, err)
		}
	}
	var n int
	if err := second.QueryRowContext(ctx, `SELECT count(*) FROM notes`).Scan(&n); err != nil || n != 21 {
		t.Errorf("rows seen by the second handle: %d (%v), want 21", n, err)
	}
}
