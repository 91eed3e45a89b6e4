package webui

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/heimwolke/heimwolke/packages/sqlitedb"
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
	db, err := sqlitedb.Open(ctx, path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("opening setup state: %w", err)
	}
	if err := sqlitedb.Migrate(ctx, db, setupComponent, setupMigrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrating setup state in %s: %w", path, err)
	}

	s := &SetupState{db: db}
	var completed int64
	err = db.QueryRowContext(ctx, `SELECT completed FROM setup WHERE id = 1`).Scan(&completed)
	switch {
	case err == nil:
		s.complete.Store(true)
	case !errors.Is(err, sql.ErrNoRows):
		db.Close()
		return nil, fmt.Errorf("reading setup state from %s: %w", path, err)
	}
	return s, nil
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
