package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/heimwolke/heimwolke/packages/sqlitedb"
)

// Entry is one queued recipient, for status pages and tests.
type Entry struct {
	MessageID   int64
	Login       string
	From        string
	To          string
	Attempts    int
	NextAttempt time.Time
	LastError   string
	// LastSmarthost reports that the attempt that failed with LastError
	// went through the smarthost, so the error is the smarthost's and not
	// the recipient's server's.
	LastSmarthost bool
	Created       time.Time
}

// Entries lists the recipients still queued, oldest message first.
func (q *Queue) Entries(ctx context.Context) ([]Entry, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT m.id, m.login, m.sender, r.rcpt, r.attempts, r.next_attempt, r.last_error, r.last_smarthost, m.created
		FROM mailqueue_recipients r JOIN mailqueue_messages m ON m.id = r.message_id ORDER BY m.id, r.rcpt`)
	if err != nil {
		return nil, fmt.Errorf("listing mail queue: %w", err)
	}
	defer rows.Close()
	var entries []Entry
	for rows.Next() {
		var e Entry
		var next, created int64
		if err := rows.Scan(&e.MessageID, &e.Login, &e.From, &e.To, &e.Attempts, &next, &e.LastError, &e.LastSmarthost, &created); err != nil {
			return nil, fmt.Errorf("listing mail queue: %w", err)
		}
		e.NextAttempt, e.Created = time.Unix(next, 0), time.Unix(created, 0)
		entries = append(entries, e)
	}
	return entries, rows.Err()
}

// Message returns the stored bytes of a queued message, as signed.
func (q *Queue) Message(ctx context.Context, id int64) ([]byte, error) {
	var file string
	err := q.db.QueryRowContext(ctx, `SELECT file FROM mailqueue_messages WHERE id = ?`, id).Scan(&file)
	if err != nil {
		return nil, fmt.Errorf("reading queued message %d: %w", id, err)
	}
	return os.ReadFile(filepath.Join(q.msgDir, file))
}

// Run delivers due messages until ctx ends, then waits for the deliveries
// in progress to stop and returns ctx.Err().
func (q *Queue) Run(ctx context.Context) error {
	q.log.Info("mail queue started", "smarthost", q.currentSmarthost() != nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, q.opts.Workers)
	for {
		next, err := q.startDue(ctx, &wg, slots)
		if err != nil && ctx.Err() == nil {
			q.log.Error("mail queue pass failed", "err", err)
			next = q.opts.Now().Add(time.Minute)
		}
		wait := min(max(next.Sub(q.opts.Now()), time.Second), time.Minute)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			q.log.Info("mail queue stopped")
			return ctx.Err()
		case <-q.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// startDue starts a worker for every message with a due recipient that no
// worker has yet, and returns when the next recipient that is not due now
// becomes due.
func (q *Queue) startDue(ctx context.Context, wg *sync.WaitGroup, slots chan struct{}) (time.Time, error) {
	now := q.opts.Now()
	ids, err := q.dueMessages(ctx, now)
	if err != nil {
		return now, err
	}
	for _, id := range ids {
		if !q.claim(id) {
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			q.release(id)
			return now, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			defer q.Kick()
			defer q.release(id)
			if err := q.deliverMessage(ctx, id); err != nil && ctx.Err() == nil {
				q.log.Error("mail delivery failed", "queue_id", id, "err", err)
			}
		}()
	}

	var next sql.NullInt64
	err = q.db.QueryRowContext(ctx, `SELECT MIN(next_attempt) FROM mailqueue_recipients WHERE next_attempt > ?`, now.Unix()).Scan(&next)
	if err != nil {
		return now, err
	}
	if !next.Valid {
		return now.Add(time.Hour), nil
	}
	return time.Unix(next.Int64, 0), nil
}

func (q *Queue) dueMessages(ctx context.Context, now time.Time) ([]int64, error) {
	return sqlitedb.Int64s(ctx, q.db, `SELECT DISTINCT message_id FROM mailqueue_recipients WHERE next_attempt <= ? ORDER BY message_id`, now.Unix())
}

func (q *Queue) claim(id int64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.running[id] {
		return false
	}
	q.running[id] = true
	return true
}

func (q *Queue) release(id int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.running, id)
}

// queuedMessage is a message with its recipients that are due.
type queuedMessage struct {
	id      int64
	login   string
	from    string
	file    string
	created time.Time
	rcpts   []queuedRecipient
	// content is the open queue file, and close closes it.
	content *io.SectionReader
	close   func() error
}

type queuedRecipient struct {
	addr     string
	attempts int
}

func (q *Queue) loadMessage(ctx context.Context, id int64) (*queuedMessage, error) {
	m := &queuedMessage{id: id}
	var created int64
	err := q.db.QueryRowContext(ctx, `SELECT login, sender, file, created FROM mailqueue_messages WHERE id = ?`, id).
		Scan(&m.login, &m.from, &m.file, &created)
	if err != nil {
		return nil, fmt.Errorf("reading queued message %d: %w", id, err)
	}
	m.created = time.Unix(created, 0)

	rows, err := q.db.QueryContext(ctx, `SELECT rcpt, attempts FROM mailqueue_recipients WHERE message_id = ? AND next_attempt <= ?`, id, q.opts.Now().Unix())
	if err != nil {
		return nil, fmt.Errorf("reading recipients of queued message %d: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r queuedRecipient
		if err := rows.Scan(&r.addr, &r.attempts); err != nil {
			return nil, fmt.Errorf("reading recipients of queued message %d: %w", id, err)
		}
		m.rcpts = append(m.rcpts, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	f, err := os.Open(filepath.Join(q.msgDir, m.file))
	if err != nil {
		return nil, fmt.Errorf("reading queued message %d: %w", id, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading queued message %d: %w", id, err)
	}
	m.content, m.close = io.NewSectionReader(f, 0, fi.Size()), f.Close
	return m, nil
}

// deliverMessage makes one attempt for every due recipient of a message,
// grouped by domain (or all at once through the smarthost), and records
// the outcome of each.
func (q *Queue) deliverMessage(ctx context.Context, id int64) error {
	m, err := q.loadMessage(ctx, id)
	if err != nil {
		return err
	}
	defer m.close()

	sh := q.currentSmarthost()
	groups := map[string][]string{}
	for _, r := range m.rcpts {
		key := ""
		if sh == nil {
			key = strings.ToLower(r.addr[strings.LastIndexByte(r.addr, '@')+1:])
		}
		groups[key] = append(groups[key], r.addr)
	}

	var failed []failure
	for domain, rcpts := range groups {
		results := q.attempt(ctx, sh, domain, m.from, rcpts, m.content)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, r := range m.rcpts {
			res, ok := results[r.addr]
			if !ok {
				continue
			}
			res.smarthost = sh != nil
			f, err := q.record(ctx, m, r, res)
			if err != nil {
				return err
			}
			if f != nil {
				failed = append(failed, *f)
			}
		}
	}

	if len(failed) > 0 {
		q.bounce(ctx, m, failed)
	}
	return q.removeIfDone(ctx, m)
}

// failure is a recipient that the queue gave up on.
type failure struct {
	rcpt   string
	status string // enhanced status code, RFC 3463
	detail string // the remote server's reply or the local error
	remote string // the server that rejected, if any
}

// record writes the outcome of one attempt for one recipient: delivered
// recipients leave the queue, failed ones are retried later or returned as
// a failure once the error is permanent or the message is too old.
func (q *Queue) record(ctx context.Context, m *queuedMessage, r queuedRecipient, res result) (*failure, error) {
	log := q.log.With("queue_id", m.id, "rcpt", r.addr)
	if res.err == nil {
		log.Info("mail delivered", "remote", res.remote)
		_, err := q.db.ExecContext(ctx, `DELETE FROM mailqueue_recipients WHERE message_id = ? AND rcpt = ?`, m.id, r.addr)
		return nil, err
	}

	now := q.opts.Now()
	expired := now.Sub(m.created) >= q.opts.MaxAge
	if res.permanent || expired {
		log.Info("mail delivery failed permanently", "remote", res.remote, "err", res.err, "expired", expired)
		_, err := q.db.ExecContext(ctx, `DELETE FROM mailqueue_recipients WHERE message_id = ? AND rcpt = ?`, m.id, r.addr)
		status := res.status
		if status == "" {
			status = "4.4.7" // delivery time expired
			if res.permanent {
				status = "5.0.0"
			}
		}
		if expired && !res.permanent {
			status = "4.4.7"
		}
		return &failure{rcpt: r.addr, status: status, detail: res.err.Error(), remote: res.remote}, err
	}

	attempts := r.attempts + 1
	delay := q.opts.RetryDelays[min(attempts, len(q.opts.RetryDelays))-1]
	log.Info("mail delivery deferred", "remote", res.remote, "err", res.err, "attempts", attempts, "retry_in", delay)
	_, err := q.db.ExecContext(ctx, `UPDATE mailqueue_recipients SET attempts = ?, next_attempt = ?, last_error = ?, last_smarthost = ?
		WHERE message_id = ? AND rcpt = ?`,
		attempts, now.Add(delay).Unix(), res.err.Error(), res.smarthost, m.id, r.addr)
	return nil, err
}

// removeIfDone deletes the message once no recipient is left: first the
// index entry, then the file, so a crash in between leaves an orphan file
// that Open removes.
func (q *Queue) removeIfDone(ctx context.Context, m *queuedMessage) error {
	res, err := q.db.ExecContext(ctx, `DELETE FROM mailqueue_messages WHERE id = ? AND NOT EXISTS (SELECT 1 FROM mailqueue_recipients WHERE message_id = ?)`, m.id, m.id)
	if err != nil {
		return fmt.Errorf("removing delivered message %d: %w", m.id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	if err := os.Remove(filepath.Join(q.msgDir, m.file)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing delivered message %d: %w", m.id, err)
	}
	return nil
}
