package dav

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/sqlitedb"
)

// TestIsBusy guards against a locked database reaching clients as 500
// instead of 503: isBusy must recognize the driver's SQLITE_BUSY.
func TestIsBusy(t *testing.T) {
	ctx := context.Background()
	db, err := sqlitedb.Open(ctx, filepath.Join(t.TempDir(), "busy.db"), 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE t (x INTEGER)`); err != nil {
		t.Fatal(err)
	}

	holder, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.Exec(`INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}

	_, err = db.ExecContext(ctx, `INSERT INTO t VALUES (2)`)
	if err == nil {
		t.Fatal("second writer succeeded while the first held the lock, want SQLITE_BUSY")
	}
	if !isBusy(err) {
		t.Errorf("isBusy(%v) = false, want true", err)
	}
	if isBusy(errors.New("other")) {
		t.Error("isBusy(other error) = true, want false")
	}
}
