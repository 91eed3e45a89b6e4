package webui

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// setupComponent is this file's row in the schema_versions table, which the
// packages that share the database file keep one row each in.
const setupComponent = "setup"

// setupMigrations[i] brings the schema from version i to version i+1.
// Append new migrations, and never edit one that has shipped.
var setupMigrations = []string{
	// Version 1.
	`
CREATE TABLE setup (
	id        INTEGER PRIMARY KEY CHECK (id = 1), -- a single row
	completed INTEGER NOT NULL                    -- Unix seconds
);
`,
}

// SetupState records in the box's SQLite database whether the setup wizard
// has finished. It is safe for concurrent use.
type SetupState struct {
	db *sql.DB

	// complete caches the row, which only ever goes from absent to present.
	complete atomic.Bool
}

// OpenSetupState opens the database at path, the same file that
// accounts.Open uses, creating it with mode 0600 and the setup table if they
// do not exist.
func OpenSetupState(ctx context.Context, path string) (*SetupState, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("opening setup state %s: %w", path, err)
	}
	// Create the file ourselves, because SQLite would use the umask's mode
	// for a file that also holds password hashes.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening setup state: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("opening setup state: %w", err)
	}

	db, err := sql.Open("sqlite", setupDSN(abs))
	if err != nil {
		return nil, fmt.Errorf("opening setup state %s: %w", abs, err)
	}
	if err := migrateSetup(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrating setup state in %s: %w", abs, err)
	}

	s := &SetupState{db: db}
	var completed int64
	err = db.QueryRowContext(ctx, `SELECT completed FROM setup WHERE id = 1`).Scan(&completed)
	switch {
	case err == nil:
		s.complete.Store(true)
	case !errors.Is(err, sql.ErrNoRows):
		db.Close()
		return nil, fmt.Errorf("reading setup state from %s: %w", abs, err)
	}
	return s, nil
}

// setupDSN returns the file: URI for the modernc.org/sqlite driver with the
// settings that the accounts package uses on the same file: WAL, writes that
// reach the disk before they return, and a 5 s wait for the write lock.
func setupDSN(absPath string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(absPath), RawQuery: q.Encode()}
	return u.String()
}

// migrateSetup applies the missing migrations and the new version number in
// one transaction.
func migrateSetup(ctx context.Context, db *sql.DB) error {
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
	err = tx.QueryRowContext(ctx, `SELECT version FROM schema_versions WHERE component = ?`, setupComponent).Scan(&version)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if version > len(setupMigrations) {
		return fmt.Errorf("schema version %d of %q is newer than this program's %d: run a newer Heimwolke or restore a backup",
			version, setupComponent, len(setupMigrations))
	}
	if version == len(setupMigrations) {
		return nil
	}

	for i := version; i < len(setupMigrations); i++ {
		if _, err := tx.ExecContext(ctx, setupMigrations[i]); err != nil {
			return fmt.Errorf("applying migration to version %d: %w", i+1, err)
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO schema_versions (component, version) VALUES (?, ?)
		ON CONFLICT (component) DO UPDATE SET version = excluded.version`, setupComponent, len(setupMigrations))
	if err != nil {
		return fmt.Errorf("writing schema version: %w", err)
	}
	return tx.Commit()
}

// Complete reports whether the setup wizard has finished.
func (s *SetupState) Complete() bool { return s.complete.Load() }

// MarkComplete records that the setup wizard has finished. Marking it twice
// keeps the first time.
func (s *SetupState) MarkComplete(ctx context.Context, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO setup (id, completed) VALUES (1, ?) ON CONFLICT (id) DO NOTHING`, now.Unix())
	if err != nil {
		return fmt.Errorf("marking setup complete: %w", err)
	}
	s.complete.Store(true)
	return nil
}

// Close closes the database.
func (s *SetupState) Close() error { return s.db.Close() }
