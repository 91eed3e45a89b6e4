package store

// schemaComponent names the store's migrations in sqlitedb's schema_versions
// table.
const schemaComponent = "mail"

// migrations[i] brings the schema from version i to i+1.
var migrations = []string{
	`CREATE TABLE mail_users (
		login      TEXT PRIMARY KEY,
		quota      INTEGER NOT NULL DEFAULT 0, -- bytes, 0 means Options.DefaultQuota
		used       INTEGER NOT NULL DEFAULT 0  -- bytes of all message files
	) WITHOUT ROWID;

	CREATE TABLE mail_mailboxes (
		id           INTEGER PRIMARY KEY,
		login        TEXT NOT NULL REFERENCES mail_users (login) ON DELETE CASCADE,
		name         TEXT NOT NULL,             -- UTF-8, '/' separates levels
		special_use  TEXT NOT NULL DEFAULT '',  -- RFC 6154 attribute such as \Sent
		uid_validity INTEGER NOT NULL,
		uid_next     INTEGER NOT NULL DEFAULT 1,
		subscribed   INTEGER NOT NULL DEFAULT 1,
		UNIQUE (login, name)
	);

	CREATE TABLE mail_messages (
		id            INTEGER PRIMARY KEY,
		mailbox_id    INTEGER NOT NULL REFERENCES mail_mailboxes (id) ON DELETE CASCADE,
		uid           INTEGER NOT NULL,
		file          TEXT NOT NULL UNIQUE,  -- path below Options.Dir
		size          INTEGER NOT NULL,      -- bytes, CRLF line ends
		internal_date INTEGER NOT NULL,      -- Unix seconds
		flags         TEXT NOT NULL DEFAULT '', -- space-separated, sorted
		search_text   TEXT, -- see searchText; NULL if the header is not indexed
		UNIQUE (mailbox_id, uid)
	);

	-- Headers sit in their own table so that scans of flags and sizes do
	-- not read them.
	CREATE TABLE mail_headers (
		message_id INTEGER PRIMARY KEY REFERENCES mail_messages (id) ON DELETE CASCADE,
		header     BLOB NOT NULL -- the header section with its blank line
	);

	-- The row named uid_validity keeps UIDVALIDITY values unique across mailbox
	-- deletions, so a re-created mailbox never reuses an old value.
	CREATE TABLE mail_counters (
		name  TEXT PRIMARY KEY,
		value INTEGER NOT NULL
	) WITHOUT ROWID;`,
}
