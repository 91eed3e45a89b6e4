// Package queue is the box's outbound mail queue. Enqueue signs a message
// with DKIM and returns once it is on disk (file fsynced, renamed, folder
// fsynced, index in SQLite). The queue delivers to each recipient's MX (RFC
// 5321 section 5) with STARTTLS and MTA-STS (RFC 8461), or through a
// smarthost. It retries for five days and sends a delivery status
// notification (RFC 3464) to the sender when delivery fails for good.
package queue

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/i18n"
	"github.com/heimwolke/heimwolke/packages/sqlitedb"
)

// Envelope is the SMTP envelope of a queued message.
type Envelope struct {
	// Login is the user who submitted the message, who receives bounces
	// in their inbox. Empty means that bounces are only logged.
	Login string
	// From is the envelope sender (MAIL FROM).
	From string
	// To are the recipients' addresses (RCPT TO).
	To []string
}

// Signer computes DKIM signatures. *auth.Keys implements it.
type Signer interface {
	// SignatureFields reads the message from msg and returns the
	// DKIM-Signature header fields for domain, each ending in CRLF, to
	// prepend to the message.
	SignatureFields(domain string, msg io.Reader) ([]byte, error)
}

// Deliverer stores a message in a local user's mailbox, as the message store
// does. The queue uses it for bounces, and drops a bounce with a log line
// when Deliver fails with store.ErrNoSuchUser.
type Deliverer interface {
	Deliver(ctx context.Context, login, folder string, msg io.Reader) error
}

// Resolver answers the DNS queries of direct delivery. *net.Resolver
// implements it.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Options configures a Queue. Fields marked required must be set; the zero
// value of the others selects the documented default.
type Options struct {
	// Dir is the folder for message files, for example
	// /perm/heimwolke/mail/queue. Required. It is created with mode 0700.
	Dir string
	// DB is the box's database, opened with sqlitedb.Open. Required. The
	// queue adds its tables with sqlitedb.Migrate.
	DB *sql.DB
	// Hostname is the box's mail host name, sent in EHLO and in bounces.
	// Required.
	Hostname string
	// Smarthost relays all outgoing mail when set; nil delivers directly
	// to each recipient domain's MX. SetSmarthost changes it later.
	Smarthost *control.SmarthostSettings
	// Signer signs each message with DKIM for the domain of its envelope
	// sender. Nil sends unsigned mail.
	Signer Signer
	// Local receives bounces for Envelope.Login. Nil only logs them.
	Local Deliverer
	// Language returns the language ("de", "en") of a user's bounces.
	// Nil means English.
	Language func(ctx context.Context, login string) string
	// Catalog contains the bounce texts. Default i18n.MustLoad().
	Catalog i18n.Catalog
	// Resolver looks up MX and MTA-STS records. Default
	// net.DefaultResolver.
	Resolver Resolver
	// MXPort is the port of the recipients' servers. Default 25; tests
	// point it at a local server.
	MXPort int
	// Dial opens connections to MX hosts and the smarthost. Default a
	// net.Dialer with a 30 s timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSConfig is the base of outbound TLS: RootCAs verify the MX hosts
	// and the smarthost. Nil means the system roots. The queue sets
	// ServerName itself.
	TLSConfig *tls.Config
	// HTTPClient fetches MTA-STS policies over HTTPS. Default a client
	// with a 30 s timeout that follows no redirects (RFC 8461 section
	// 3.3).
	HTTPClient *http.Client
	// RetryDelays are the waits after the first, second, ... failed
	// attempt; the last one repeats. Default 5 min, 15 min, 30 min, 1 h,
	// 2 h, then every 4 h.
	RetryDelays []time.Duration
	// MaxAge is how long the queue retries a recipient before it bounces
	// the message. Default 5 days.
	MaxAge time.Duration
	// Workers is how many deliveries run at once. Default 4.
	Workers int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Logger receives deliveries, retries and bounces. Default
	// slog.Default().
	Logger *slog.Logger
}

var defaultRetryDelays = []time.Duration{
	5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour,
}

func (o Options) withDefaults() Options {
	if o.Catalog == nil {
		o.Catalog = i18n.MustLoad()
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.MXPort == 0 {
		o.MXPort = 25
	}
	if o.Dial == nil {
		d := &net.Dialer{Timeout: 30 * time.Second}
		o.Dial = d.DialContext
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if len(o.RetryDelays) == 0 {
		o.RetryDelays = defaultRetryDelays
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 5 * 24 * time.Hour
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

func (o Options) validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("missing Dir: set the queue folder under the data folder"))
	}
	if o.DB == nil {
		errs = append(errs, errors.New("missing DB: open the box's database with sqlitedb.Open"))
	}
	if o.Hostname == "" {
		errs = append(errs, errors.New("missing Hostname: set the box's mail host name"))
	}
	errs = append(errs, validateSmarthost(o.Smarthost))
	return errors.Join(errs...)
}

func validateSmarthost(sh *control.SmarthostSettings) error {
	if sh == nil {
		return nil
	}
	var errs []error
	if sh.Host == "" || sh.Port <= 0 || sh.Port > 65535 {
		errs = append(errs, fmt.Errorf("invalid smarthost %q port %d: set a host name and a port from 1 to 65535", sh.Host, sh.Port))
	}
	if sh.TLS != control.SmarthostImplicitTLS && sh.TLS != control.SmarthostSTARTTLS {
		errs = append(errs, fmt.Errorf("invalid smarthost TLS mode %q: use %q or %q", sh.TLS, control.SmarthostImplicitTLS, control.SmarthostSTARTTLS))
	}
	return errors.Join(errs...)
}

// Queue is the outbound queue. It is safe for concurrent use.
type Queue struct {
	opts      Options
	log       *slog.Logger
	db        *sql.DB
	msgDir    string
	wake      chan struct{}
	mtasts    *stsCache
	mu        sync.Mutex
	running   map[int64]bool // messages that a worker is delivering
	smarthost *control.SmarthostSettings
}

// Open creates the queue's folder and tables, and deletes message files
// that a crash left without an index entry. Such a message was never
// acknowledged, because Enqueue returns only after the index commit.
func Open(ctx context.Context, opts Options) (*Queue, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("configuring mail queue: %w", err)
	}
	if err := sqlitedb.Migrate(ctx, opts.DB, "mailqueue", migrations); err != nil {
		return nil, fmt.Errorf("opening mail queue: %w", err)
	}
	q := &Queue{
		opts:    opts,
		log:     opts.Logger,
		db:      opts.DB,
		msgDir:  filepath.Join(opts.Dir, "messages"),
		wake:    make(chan struct{}, 1),
		mtasts:  newSTSCache(),
		running: map[int64]bool{},
	}
	q.smarthost = copySmarthost(opts.Smarthost)
	if err := os.MkdirAll(q.msgDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating mail queue folder: %w", err)
	}
	if err := q.removeOrphans(ctx); err != nil {
		return nil, err
	}
	return q, nil
}

var migrations = []string{`
CREATE TABLE mailqueue_messages (
	id      INTEGER PRIMARY KEY,
	login   TEXT NOT NULL,
	sender  TEXT NOT NULL,
	file    TEXT NOT NULL UNIQUE,
	size    INTEGER NOT NULL,
	created INTEGER NOT NULL -- Unix seconds
);
CREATE TABLE mailqueue_recipients (
	message_id   INTEGER NOT NULL REFERENCES mailqueue_messages (id) ON DELETE CASCADE,
	rcpt         TEXT NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL, -- Unix seconds
	last_error   TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (message_id, rcpt)
);
CREATE INDEX mailqueue_recipients_due ON mailqueue_recipients (next_attempt);
`, `
-- 1 when the attempt that set last_error went through the smarthost.
ALTER TABLE mailqueue_recipients ADD COLUMN last_smarthost INTEGER NOT NULL DEFAULT 0;
`}

// removeOrphans deletes message files without an index entry, and
// temporary files of interrupted writes.
func (q *Queue) removeOrphans(ctx context.Context) error {
	known := map[string]bool{}
	rows, err := q.db.QueryContext(ctx, `SELECT file FROM mailqueue_messages`)
	if err != nil {
		return fmt.Errorf("reading mail queue index: %w", err)
	}
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			rows.Close()
			return fmt.Errorf("reading mail queue index: %w", err)
		}
		known[f] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading mail queue index: %w", err)
	}

	entries, err := os.ReadDir(q.msgDir)
	if err != nil {
		return fmt.Errorf("reading mail queue folder: %w", err)
	}
	for _, e := range entries {
		if known[e.Name()] {
			continue
		}
		q.log.Info("mail queue orphan removed", "file", e.Name())
		if err := os.Remove(filepath.Join(q.msgDir, e.Name())); err != nil {
			return fmt.Errorf("removing unacknowledged queue file: %w", err)
		}
	}
	return nil
}

// Enqueue signs a message for the sender's domain, stores it durably and
// schedules its delivery to env.To. It returns the message's queue id.
// header is the message's header section and body the rest, so that
// header followed by body is the message. Enqueue reads body twice, for the
// DKIM signatures and for the queue file, each time from its start
// (io.SeekStart), so that only header is held in memory.
func (q *Queue) Enqueue(ctx context.Context, env Envelope, header []byte, body io.ReadSeeker) (int64, error) {
	if len(env.To) == 0 {
		return 0, errors.New("enqueueing message: no recipients")
	}
	var signatures []byte
	if q.opts.Signer != nil && env.From != "" {
		domain := env.From[strings.LastIndexByte(env.From, '@')+1:]
		msg, err := messageReader(header, body)
		if err != nil {
			return 0, fmt.Errorf("enqueueing message: %w", err)
		}
		signatures, err = q.opts.Signer.SignatureFields(domain, msg)
		if err != nil {
			return 0, fmt.Errorf("enqueueing message: %w", err)
		}
	}

	msg, err := messageReader(append(signatures, header...), body)
	if err != nil {
		return 0, fmt.Errorf("enqueueing message: %w", err)
	}
	name, size, err := writeMessageFile(q.msgDir, msg)
	if err != nil {
		return 0, fmt.Errorf("enqueueing message: %w", err)
	}
	id, err := q.insert(ctx, env, name, size)
	if err != nil {
		os.Remove(filepath.Join(q.msgDir, name))
		return 0, fmt.Errorf("enqueueing message: %w", err)
	}
	q.Kick()
	return id, nil
}

// messageReader returns header followed by body from its start.
func messageReader(header []byte, body io.ReadSeeker) (io.Reader, error) {
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewinding message body: %w", err)
	}
	return io.MultiReader(bytes.NewReader(header), body), nil
}

func (q *Queue) insert(ctx context.Context, env Envelope, file string, size int64) (int64, error) {
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	now := q.opts.Now().Unix()
	res, err := tx.ExecContext(ctx, `INSERT INTO mailqueue_messages (login, sender, file, size, created) VALUES (?, ?, ?, ?, ?)`,
		env.Login, env.From, file, size, now)
	if err != nil {
		return 0, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	for _, rcpt := range dedupe(env.To) {
		_, err := tx.ExecContext(ctx, `INSERT INTO mailqueue_recipients (message_id, rcpt, next_attempt) VALUES (?, ?, ?)`, id, rcpt, now)
		if err != nil {
			return 0, err
		}
	}
	return id, tx.Commit()
}

func dedupe(addrs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range addrs {
		if !seen[strings.ToLower(a)] {
			seen[strings.ToLower(a)] = true
			out = append(out, a)
		}
	}
	return out
}

// writeMessageFile copies msg to a new file in dir so that it survives a
// power cut once this returns: temporary file, fsync, rename, fsync of the
// folder. It returns the file's name and size.
func writeMessageFile(dir string, msg io.Reader) (string, int64, error) {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", 0, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	size, err := io.Copy(f, msg)
	if err != nil {
		f.Close()
		return "", 0, err
	}

	if err := f.Sync(); err != nil {
		f.Close()
		return "", 0, err
	}
	if err := f.Close(); err != nil {
		return "", 0, err
	}
	name := strings.TrimPrefix(filepath.Base(tmp), ".tmp-") + ".eml"
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return "", 0, err
	}

	d, err := os.Open(dir)
	if err != nil {
		return "", 0, err
	}
	defer d.Close()
	return name, size, d.Sync()
}

// SetSmarthost sends outgoing mail through sh from the next attempt on, or
// directly to the recipients' MX hosts when sh is nil, as after a change in
// the settings.
func (q *Queue) SetSmarthost(sh *control.SmarthostSettings) error {
	if err := validateSmarthost(sh); err != nil {
		return fmt.Errorf("setting smarthost: %w", err)
	}
	q.mu.Lock()
	q.smarthost = copySmarthost(sh)
	q.mu.Unlock()
	q.log.Info("mail queue smarthost set", "smarthost", sh != nil)
	q.Kick()
	return nil
}

func (q *Queue) currentSmarthost() *control.SmarthostSettings {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.smarthost
}

func copySmarthost(sh *control.SmarthostSettings) *control.SmarthostSettings {
	if sh == nil {
		return nil
	}
	c := *sh
	return &c
}

// Kick starts a delivery pass now instead of at the next due time.
func (q *Queue) Kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
