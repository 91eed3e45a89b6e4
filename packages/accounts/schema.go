package accounts

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
