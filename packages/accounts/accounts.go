// Package accounts stores Heimwolke's users in SQLite and checks their logins:
// the main password (Argon2id), TOTP (RFC 6238), app passwords for mail, DAV
// and XMPP clients, and web UI sessions. It renders no pages.
package accounts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/heimwolke/heimwolke/packages/authlimit"
	"github.com/heimwolke/heimwolke/packages/sqlitedb"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Errors that callers tell apart with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")

	// ErrBadCredentials means that a login failed. It does not reveal
	// whether the user name or the secret was wrong.
	ErrBadCredentials = errors.New("invalid user name or password")

	// ErrThrottled means that too many logins failed and this attempt was
	// rejected unchecked. errors.As with *ThrottledError gives the wait.
	ErrThrottled = errors.New("too many failed logins")

	// ErrInvalid means that an argument was rejected. errors.As with
	// *FieldError gives the field and the rule.
	ErrInvalid = errors.New("invalid value")

	// ErrTOTPRequired comes with the user from CheckPassword when the
	// password was right and the user has TOTP enabled: the login is
	// complete only after VerifyTOTP accepts a code.
	ErrTOTPRequired = errors.New("TOTP code required")
)

// ThrottledError is returned when a login attempt came too soon after
// failures. It matches ErrThrottled.
type ThrottledError struct {
	// RetryAfter is how long the client must wait before the next attempt.
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins: retry in %v", e.RetryAfter.Round(time.Second))
}

func (e *ThrottledError) Unwrap() error { return ErrThrottled }

// FieldError names an argument that failed validation and the rule it broke.
// It matches ErrInvalid. Several of them may come joined with errors.Join.
type FieldError struct {
	Field string // for example "name" or "password"
	Rule  string // what a valid value looks like
}

func (e *FieldError) Error() string { return "invalid " + e.Field + ": " + e.Rule }

func (e *FieldError) Unwrap() error { return ErrInvalid }

// Options configures a Store. The zero value of each field selects its
// default.
type Options struct {
	// Logger receives failed logins and internal errors. Default
	// slog.Default().
	Logger *slog.Logger

	// Limiter throttles failed logins. Pass the one Limiter that every
	// protocol shares. Default: a new Limiter with authlimit's defaults.
	Limiter *authlimit.Limiter

	// Argon2 sets the cost of new password hashes. Stored hashes with lower
	// memory or time cost are rehashed at the next successful login.
	// Default 64 MiB, 2 passes, 2 lanes, chosen for a Raspberry Pi 3.
	Argon2 Argon2Params

	// MaxConcurrentHashes caps the Argon2id computations that run at once,
	// because each one takes Argon2.Memory of RAM. Default 2.
	MaxConcurrentHashes int

	// SessionIdleTimeout ends a web session that was not used for this long.
	// Default 72 h.
	SessionIdleTimeout time.Duration

	// SessionLifetime ends a web session this long after its creation, used
	// or not. Default 14 days.
	SessionLifetime time.Duration

	// BusyTimeout is how long a statement waits for another connection's
	// write lock on the database. Default 5 s.
	BusyTimeout time.Duration

	// Now returns the current time. Default time.Now. Tests inject a clock.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Limiter == nil {
		o.Limiter = authlimit.New(authlimit.Config{Now: o.Now})
	}
	if o.Argon2 == (Argon2Params{}) {
		o.Argon2 = defaultArgon2
	}
	if o.MaxConcurrentHashes <= 0 {
		o.MaxConcurrentHashes = 2
	}
	if o.SessionIdleTimeout <= 0 {
		o.SessionIdleTimeout = 72 * time.Hour
	}
	if o.SessionLifetime <= 0 {
		o.SessionLifetime = 14 * 24 * time.Hour
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Store is the accounts database. It is safe for concurrent use.
type Store struct {
	db        *sql.DB
	opts      Options
	logger    *slog.Logger
	limiter   *authlimit.Limiter
	hashSlots chan struct{}

	// dummyHash is checked when a login names an unknown user, so that the
	// check takes as long as for a known user.
	dummyHash phc
}

// Open opens the SQLite database at path, creating it with mode 0600 if it
// does not exist, and brings its schema up to date. The database runs in WAL
// mode with synchronous=FULL, so a change that a method has returned from
// survives a power cut.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if err := opts.Argon2.validate(); err != nil {
		return nil, fmt.Errorf("opening accounts database: %w", err)
	}

	db, err := sqlitedb.Open(ctx, path, opts.BusyTimeout)
	if err != nil {
		return nil, fmt.Errorf("opening accounts database: %w", err)
	}
	if err := sqlitedb.Migrate(ctx, db, schemaComponent, migrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrating accounts database %s: %w", path, err)
	}

	dummy, err := newDummyHash(opts.Argon2)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Store{
		db:        db,
		opts:      opts,
		logger:    opts.Logger,
		limiter:   opts.Limiter,
		hashSlots: make(chan struct{}, opts.MaxConcurrentHashes),
		dummyHash: dummy,
	}, nil
}

// Close closes the database. SQLite then copies the WAL into the database
// file and removes the WAL.
func (s *Store) Close() error {
	return s.db.Close()
}

// write runs fn in a transaction that holds the database's write lock.
func (s *Store) write(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()

	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *Store) now() time.Time { return s.opts.Now() }
