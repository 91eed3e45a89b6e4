package notice

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/heimwolke/heimwolke/packages/sqlitedb"
)

// migrations of the "notice" component. notice_sent holds, per problem kind,
// when the last notice went out. notice_error holds at most one row: when
// the Notifier first saw the current renewal error, so that the day of grace
// survives a restart. Times are Unix seconds.
var migrations = []string{`
CREATE TABLE notice_sent (
	problem TEXT PRIMARY KEY,
	sent_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE notice_error (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	since INTEGER NOT NULL
);
`}

// resendAfter is the least time between two notices about one problem.
const resendAfter = 24 * time.Hour

// state is the Notifier's record of sent notices and of the renewal
// error's start, kept in SQLite across restarts.
type state struct {
	// mu serializes checks, so that two checks at once cannot both find a
	// notice due and send it twice.
	mu sync.Mutex
	db *sql.DB
}

func openState(ctx context.Context, db *sql.DB) (*state, error) {
	if err := sqlitedb.Migrate(ctx, db, "notice", migrations); err != nil {
		return nil, fmt.Errorf("migrating notice tables: %w", err)
	}
	return &state{db: db}, nil
}

// due reports whether no notice about kind went out in the resendAfter
// before now.
func (s *state) due(ctx context.Context, kind string, now time.Time) (bool, error) {
	var sentAt int64
	err := s.db.QueryRowContext(ctx, `SELECT sent_at FROM notice_sent WHERE problem = ?`, kind).Scan(&sentAt)
	if errors.Is(err, sql.ErrNoRows) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading when the last %s notice was sent: %w", kind, err)
	}
	return now.Sub(time.Unix(sentAt, 0)) >= resendAfter, nil
}

// markSent records that a notice about kind went out at now.
func (s *state) markSent(ctx context.Context, kind string, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO notice_sent (problem, sent_at) VALUES (?, ?)
		ON CONFLICT (problem) DO UPDATE SET sent_at = excluded.sent_at`, kind, now.Unix())
	if err != nil {
		return fmt.Errorf("recording the %s notice: %w", kind, err)
	}
	return nil
}

// errorSince returns when the current renewal error was first seen, and
// records now as that time when no error was recorded.
func (s *state) errorSince(ctx context.Context, now time.Time) (time.Time, error) {
	_, err := s.db.ExecContext(ctx, `INSERT INTO notice_error (id, since) VALUES (1, ?)
		ON CONFLICT (id) DO NOTHING`, now.Unix())
	if err != nil {
		return time.Time{}, fmt.Errorf("recording the renewal error's start: %w", err)
	}
	var since int64
	if err := s.db.QueryRowContext(ctx, `SELECT since FROM notice_error WHERE id = 1`).Scan(&since); err != nil {
		return time.Time{}, fmt.Errorf("reading the renewal error's start: %w", err)
	}
	return time.Unix(since, 0), nil
}

// clearError deletes the renewal error's start after the agent reports no
// error.
func (s *state) clearError(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM notice_error`); err != nil {
		return fmt.Errorf("clearing the renewal error's start: %w", err)
	}
	return nil
}
