// Package sqlitedb opens the box's SQLite database file (modernc.org/sqlite)
// with the settings that every package sharing it relies on, and applies
// each package's schema migrations, tracked per component in one
// schema_versions table.
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Open opens the database at path, creating the file with mode 0600 if it
// does not exist, and checks that WAL, synchronous=FULL and foreign keys took
// effect: an acknowledged write then survives a power cut.
func Open(ctx context.Context, path string, busyTimeout time.Duration) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("opening database %s: %w", path, err)
	}

	if err := createPrivate(abs); err != nil {
		return nil, fmt.Errorf("opening database: %w", err)
	}

	db, err := sql.Open("sqlite", dsn(abs, busyTimeout))
	if err != nil {
		return nil, fmt.Errorf("opening database %s: %w", abs, err)
	}
	if err := checkPragmas(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening database %s: %w", abs, err)
	}
	return db, nil
}

// createPrivate creates the database file with mode 0600 if it does not
// exist, because SQLite would create it with the umask's mode, and it
// contains password hashes and TOTP secrets. SQLite gives the -wal and -shm
// files the mode of the database file.
//
// An existing file is left unopened, because closing any descriptor of the
// file drops every POSIX lock that this process holds on it (fcntl(2)).
// The connections of an earlier Open would lose their locks. Another
// program, such as the sqlite3 shell, would then take the WAL for unused
// and delete it.
func createPrivate(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil // created meanwhile, by another process
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// dsn returns a file: URI for the modernc.org/sqlite driver, so that a '?'
// or '#' in the path is escaped instead of starting the query. The pragmas
// apply to every connection that database/sql opens. BEGIN IMMEDIATE takes
// the write lock at the start of a transaction, where busy_timeout waits for
// it, rather than failing with SQLITE_BUSY when a reader upgrades later.
func dsn(absPath string, busyTimeout time.Duration) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(absPath), RawQuery: q.Encode()}
	return u.String()
}

// checkPragmas verifies that the settings the durability promise rests on
// took effect. WAL fails, for example, on a file system without shared
// memory support, and SQLite then keeps the old journal mode silently.
func checkPragmas(ctx context.Context, db *sql.DB) error {
	want := []struct{ pragma, value string }{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
	}
	for _, w := range want {
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+w.pragma).Scan(&got); err != nil {
			return fmt.Errorf("reading PRAGMA %s: %w", w.pragma, err)
		}
		if got != w.value {
			return fmt.Errorf("PRAGMA %s is %q, want %q", w.pragma, got, w.value)
		}
	}
	return nil
}

// Migrate applies the migrations of component that the database lacks and
// records the new version, in one transaction, so a crash leaves either the
// old or the new schema. migrations[i] brings the schema from version i to
// i+1. The transaction holds the write lock from its start, so two processes
// that open the file at once do not both migrate.
func Migrate(ctx context.Context, db *sql.DB, component string, migrations []string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()

	_, err = tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_versions (
		component TEXT PRIMARY KEY,
		version   INTEGER NOT NULL
	) WITHOUT ROWID`)
	if err != nil {
		return fmt.Errorf("creating schema_versions: %w", err)
	}

	var version int
	err = tx.QueryRowContext(ctx, `SELECT version FROM schema_versions WHERE component = ?`, component).Scan(&version)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("reading schema version of %q: %w", component, err)
	}
	if version > len(migrations) {
		// A newer program migrated the file, and an older one runs now.
		// NOTE: this also happens after an update that migrated the
		// schema is rolled back, so the agent must restore the database
		// with the old root file system or never roll back across a
		// migration.
		return fmt.Errorf("schema version %d is newer than this program's %d for %q: run a newer Heimwolke or restore a backup", version, len(migrations), component)
	}
	if version == len(migrations) {
		return nil
	}

	for i := version; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("applying migration of %q to version %d: %w", component, i+1, err)
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO schema_versions (component, version) VALUES (?, ?)
		ON CONFLICT (component) DO UPDATE SET version = excluded.version`, component, len(migrations))
	if err != nil {
		return fmt.Errorf("writing schema version of %q: %w", component, err)
	}
	return tx.Commit()
}

// Querier is a *sql.DB, *sql.Tx or *sql.Conn.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Int64s runs query, which selects one integer column, and returns its
// values in order.
func Int64s(ctx context.Context, q Querier, query string, args ...any) ([]int64, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var values []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		values = append(values, v)
	}
	return values, rows.Err()
}
