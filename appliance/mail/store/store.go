// Package store keeps the household's mail: one file per message under a
// data folder and an index in SQLite with folders, UIDs, flags and quotas
// (the IMAP data model of RFC 9051 section 2.3). It speaks no protocol; the
// IMAP server and the SMTP delivery both use it.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/heimwolke/heimwolke/packages/sqlitedb"
)

// Errors that callers tell apart with errors.Is.
var (
	ErrNoMailbox     = errors.New("mailbox not found")
	ErrMailboxExists = errors.New("mailbox already exists")
	ErrQuotaExceeded = errors.New("mail quota exceeded")
	ErrTooBig        = errors.New("message too big")
	ErrInvalidName   = errors.New("invalid mailbox name")
	ErrInvalidLogin  = errors.New("invalid login name")

	// ErrNoSuchUser means that the login has no mailboxes and
	// Options.UserExists reports that it has no account, so the store
	// did not create them.
	ErrNoSuchUser = errors.New("no such user")

	// ErrInvalidLevel means that a level of a mailbox name is empty, or
	// "." or ".." in a new name. It matches ErrInvalidName too.
	ErrInvalidLevel = fmt.Errorf(`%w: a level is empty, "." or ".."`, ErrInvalidName)
)

// Options configures a Store. The zero value of each field selects its
// default.
type Options struct {
	// Dir is the folder of the message files, created if missing. Required.
	Dir string

	// DatabasePath is the SQLite database of the index. The mail tables live
	// next to those of other components. Required.
	DatabasePath string

	// DefaultQuota is the bytes of mail that a user may store unless
	// SetQuota set another limit. Default 10 GiB.
	DefaultQuota int64

	// MaxMessageSize is the largest message Deliver and Append accept, in
	// bytes. Default 64 MiB.
	MaxMessageSize int64

	// Logger receives startup repairs and errors that are not returned.
	// Default slog.Default().
	Logger *slog.Logger

	// Now returns the current time. Default time.Now.
	Now func() time.Time

	// UserExists reports whether login has an account. EnsureUser, and
	// with it Deliver, DeliverAll and Append, calls it before it creates
	// the mailboxes of a login that has none, and fails with
	// ErrNoSuchUser when it returns false. Mail that was in transit while
	// a member was deleted then cannot recreate their mailboxes for a
	// later member of the same name. Default nil: every login exists.
	UserExists func(ctx context.Context, login string) (bool, error)
}

func (o Options) withDefaults() Options {
	if o.DefaultQuota <= 0 {
		o.DefaultQuota = 10 << 30
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Store is the mail store. It is safe for concurrent use. Only one process
// may open a data folder at a time.
type Store struct {
	db     *sql.DB
	opts   Options
	dir    string
	logger *slog.Logger

	// mu serializes index changes together with the delivery of their
	// events, so every listener receives the changes of a mailbox in commit
	// order. Message files are written before mu is taken.
	mu        sync.Mutex
	listeners []func(Event)
}

// Open opens the store, creating the folder and the tables if missing, and
// removes message files that no index row names: a crash between writing a
// file and committing its row leaves such a file behind.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if opts.Dir == "" || opts.DatabasePath == "" {
		return nil, errors.New("opening mail store: Options.Dir and Options.DatabasePath are required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("opening mail store %s: %w", opts.Dir, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, tmpDirName), 0o700); err != nil {
		return nil, fmt.Errorf("opening mail store: %w", err)
	}

	db, err := sqlitedb.Open(ctx, opts.DatabasePath, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("opening mail store: %w", err)
	}
	if err := sqlitedb.Migrate(ctx, db, schemaComponent, migrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrating mail store %s: %w", opts.DatabasePath, err)
	}

	s := &Store{db: db, opts: opts, dir: dir, logger: opts.Logger}
	if err := s.removeOrphans(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening mail store: %w", err)
	}
	return s, nil
}

// Close closes the index database.
func (s *Store) Close() error {
	return s.db.Close()
}

// MaxMessageSize returns the largest message size in bytes that Deliver and
// Append accept.
func (s *Store) MaxMessageSize() int64 { return s.opts.MaxMessageSize }

// write runs fn in a transaction while holding s.mu and, after the commit,
// passes the events that fn collected to the listeners, still under s.mu.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx, events *[]Event) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()

	var events []Event
	if err := fn(tx, &events); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	for _, ev := range events {
		for _, l := range s.listeners {
			l(ev)
		}
	}
	return nil
}
