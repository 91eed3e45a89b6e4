package accounts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// schemaComponent is this package's row in schema_versions. Other packages
// that share the database file keep their own rows.
const schemaComponent = "accounts"

// migrations[i] brings the schema from version i to version i+1. Append new
// migrations, and never edit one that has shipped.
var migrations = []string{
	// Version 1.
	`
CREATE TABLE users (
	id             INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused
	name           TEXT NOT NULL UNIQUE,
	display_name   TEXT NOT NULL,
	role           TEXT NOT NULL CHECK (role IN ('owner', 'member')),
	language       TEXT NOT NULL CHECK (language IN ('de', 'en')),
	password_hash  TEXT NOT NULL,             -- Argon2id PHC string
	totp_secret    BLOB,                      -- NULL: TOTP disabled
	totp_pending   BLOB,                      -- secret from StartTOTP awaiting EnableTOTP
	totp_last_step INTEGER NOT NULL DEFAULT 0, -- last accepted RFC 6238 time step
	created        INTEGER NOT NULL           -- Unix seconds
);

-- At most one owner.
CREATE UNIQUE INDEX users_single_owner ON users (role) WHERE role = 'owner';

CREATE TABLE app_passwords (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	name      TEXT NOT NULL,
	scope     INTEGER NOT NULL CHECK (scope BETWEEN 1 AND 7), -- Scope bits
	hash      BLOB NOT NULL,    -- SHA-256 of the secret
	created   INTEGER NOT NULL, -- Unix seconds
	last_used INTEGER           -- Unix seconds, NULL: never used
);
CREATE INDEX app_passwords_user_id ON app_passwords (user_id);

CREATE TABLE sessions (
	token_hash  BLOB PRIMARY KEY, -- SHA-256 of the token
	user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	csrf_secret BLOB NOT NULL,
	created     INTEGER NOT NULL, -- Unix seconds
	last_seen   INTEGER NOT NULL  -- Unix seconds
) WITHOUT ROWID;
CREATE INDEX sessions_user_id ON sessions (user_id);
`,
}

// migrate applies the missing migrations and the new version number in one
// transaction, so a crash leaves either the old or the new schema. The
// transaction holds the write lock from its start, so two processes that
// open the file at once do not both migrate.
func migrate(ctx context.Context, db *sql.DB) error {
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
	err = tx.QueryRowContext(ctx, `SELECT version FROM schema_versions WHERE component = ?`, schemaComponent).Scan(&version)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if version > len(migrations) {
		// A newer program migrated the file, and an older one runs now.
		// NOTE: this also happens after an update that migrated the
		// schema is rolled back, so the agent must restore the database
		// with the old root file system or never roll back across a
		// migration.
		return fmt.Errorf("schema version %d is newer than this program's %d: run a newer Heimwolke or restore a backup", version, len(migrations))
	}
	if version == len(migrations) {
		return nil
	}

	for i := version; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("applying migration to version %d: %w", i+1, err)
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO schema_versions (component, version) VALUES (?, ?)
		ON CONFLICT (component) DO UPDATE SET version = excluded.version`, schemaComponent, len(migrations))
	if err != nil {
		return fmt.Errorf("writing schema version: %w", err)
	}
	return tx.Commit()
}
