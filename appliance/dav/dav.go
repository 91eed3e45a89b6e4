// Package dav serves the household's calendars (CalDAV, RFC 4791) and
// address books (CardDAV, RFC 6352) from SQLite, with the sync-collection
// report (RFC 6578), MKCALENDAR, extended MKCOL (RFC 5689) and PROPPATCH.
//
// From github.com/emersion/go-webdav v0.6.0 the package takes the
// calendar filter model (caldav.CompFilter) and the calendar object checks
// (caldav.ValidateCalendarObject), and it parses with go-ical and
// go-vcard. The library's Handler types are not used: they re-encode
// objects on GET, expect the principal and home set at fixed path depths,
// and reject PROPPATCH, MKCALENDAR and sync-collection. Its
// filter matching ignores recurrence overrides and collations. So this
// package has its own handler, time-range evaluation and vCard matching.
// Write locks (RFC 4918 class 2) come from packages/davlock. It does not
// serve WebDAV file storage or scheduling (RFC 6638).
package dav

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/heimwolke/heimwolke/appliance/webui"
	"github.com/heimwolke/heimwolke/packages/davlock"
)

// Options configures a Handler.
type Options struct {
	// DB is the box's database, opened with sqlitedb.Open. Required.
	DB *sql.DB

	// MaxObjectSize is the largest calendar object or vCard that PUT
	// accepts, in bytes. Zero means 10 MiB, enough for a vCard with a
	// large inline photo.
	MaxObjectSize int64

	// Logger receives errors and collection changes. Nil means
	// slog.Default().
	Logger *slog.Logger
}

const defaultMaxObjectSize = 10 << 20

// maxXMLBodySize limits PROPFIND, PROPPATCH, REPORT and MKCOL bodies. A
// calendar-multiget for 10,000 hrefs of 60 bytes is about 0.8 MiB.
const maxXMLBodySize = 4 << 20

// Prefix is the path under which the Handler serves all collections.
const Prefix = "/dav/"

// Handler serves CalDAV and CardDAV under Prefix and the RFC 6764
// redirects at /.well-known/caldav and /.well-known/carddav. It reads the
// user from webui.AuthenticatedUser, so it must sit behind webui.BasicAuth
// with accounts.ScopeDAV.
type Handler struct {
	store   *store
	locks   *davlock.System
	maxSize int64
	log     *slog.Logger
}

// New migrates the "dav" schema in opts.DB and returns a Handler.
func New(ctx context.Context, opts Options) (*Handler, error) {
	if opts.DB == nil {
		return nil, errors.New("creating dav handler: Options.DB is nil, pass the database from sqlitedb.Open")
	}
	if opts.MaxObjectSize < 0 {
		return nil, fmt.Errorf("creating dav handler: MaxObjectSize is %d, want 0 for the default or a positive number of bytes", opts.MaxObjectSize)
	}
	if opts.MaxObjectSize == 0 {
		opts.MaxObjectSize = defaultMaxObjectSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s, err := openStore(ctx, opts.DB)
	if err != nil {
		return nil, fmt.Errorf("creating dav handler: %w", err)
	}
	return &Handler{store: s, locks: davlock.New(), maxSize: opts.MaxObjectSize, log: opts.Logger}, nil
}

// DeleteUser removes the calendars, task lists and address books of the
// user with the login name, with their objects, properties and change
// logs, and the write locks taken through that user's homes. The
// household's collections and their objects stay. A new user of the same
// name starts with fresh default collections, whose new sync IDs make the
// old sync tokens invalid. Call it when the user is deleted from the
// accounts store.
func (h *Handler) DeleteUser(ctx context.Context, login string) error {
	locks := h.releaseUserLocks(login)
	if err := h.store.deleteUser(ctx, login); err != nil {
		return fmt.Errorf("deleting calendars and address books of %q: %w", login, err)
	}
	h.log.Info("dav user data deleted", "user", login, "locks", locks)
	return nil
}

// releaseUserLocks removes the locks on login's homes and everything in
// them, including the household's collections as they appear there. It
// returns how many it removed.
func (h *Handler) releaseUserLocks(login string) int {
	now := time.Now()
	released := 0
	for _, kind := range []string{"calendars", "addressbooks"} {
		home := lockName(Prefix + kind + "/" + login)
		locks := h.locks.LocksBelow(now, home)
		for _, l := range h.locks.LocksFor(now, home) {
			if l.Root == home {
				locks = append(locks, l)
			}
		}
		for _, l := range locks {
			if h.locks.Unlock(now, l.Token) == nil {
				released++
			}
		}
	}
	return released
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// RFC 6764 section 5: the well-known URIs redirect to the context path,
	// where PROPFIND returns current-user-principal.
	if r.URL.Path == "/.well-known/caldav" || r.URL.Path == "/.well-known/carddav" {
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		return
	}

	user, ok := webui.AuthenticatedUser(r.Context())
	if !ok {
		h.log.Error("dav request without authenticated user: mount the handler behind webui.BasicAuth", "path", r.URL.Path)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}

	t, err := parseTarget(r.URL.EscapedPath(), user.Name)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := h.store.ensureHome(r.Context(), user.Name, string(user.Language)); err != nil {
		h.internalError(w, r, "creating default collections", err)
		return
	}

	req := &request{h: h, w: w, r: r, login: user.Name, displayName: user.DisplayName, target: t}
	req.serve()
}

// request carries one request through the method handlers.
type request struct {
	h           *Handler
	w           http.ResponseWriter
	r           *http.Request
	login       string
	displayName string
	target      target
}

func (q *request) ctx() context.Context { return q.r.Context() }

func (q *request) serve() {
	var err error
	switch q.r.Method {
	case http.MethodPut, http.MethodDelete, "PROPPATCH", "MKCOL", "MKCALENDAR":
		err = q.checkLocks()
	}
	if err != nil {
		q.fail(err)
		return
	}
	switch q.r.Method {
	case http.MethodOptions:
		q.serveOptions()
	case "PROPFIND":
		err = q.propfind()
	case "PROPPATCH":
		err = q.proppatch()
	case "REPORT":
		err = q.report()
	case "MKCALENDAR":
		err = q.mkcol(kindCalendar)
	case "MKCOL":
		err = q.mkcol(0)
	case http.MethodGet, http.MethodHead:
		err = q.get()
	case http.MethodPut:
		err = q.put()
	case http.MethodDelete:
		err = q.delete()
	case "LOCK":
		err = q.lock()
	case "UNLOCK":
		err = q.unlock()
	default:
		q.w.Header().Set("Allow", allowedMethods)
		err = httpErrorf(http.StatusMethodNotAllowed, "method %s is not supported here", q.r.Method)
	}
	if err != nil {
		q.fail(err)
	}
}

// fail sends err: an *httpError with its status, a busy database as 503,
// a collection deleted during the request as 404, and anything else as a
// logged 500.
func (q *request) fail(err error) {
	if isBusy(err) {
		// Another writer held the database for longer than the busy
		// timeout. The change was not made, and the client may retry.
		q.h.log.Warn("dav request failed: database busy", "user", q.login, "method", q.r.Method, "path", q.r.URL.Path, "err", err)
		q.w.Header().Set("Retry-After", "1")
		http.Error(q.w, "the server is busy, retry in a second", http.StatusServiceUnavailable)
		return
	}
	if isForeignKeyViolation(err) {
		// Every foreign key of the DAV tables points at dav_collections,
		// so the collection was deleted while this request ran, as when
		// DeleteUser removes its owner. Nothing was written.
		q.h.log.Warn("dav request failed: collection deleted during the request", "user", q.login, "method", q.r.Method, "path", q.r.URL.Path, "err", err)
		http.Error(q.w, "the collection was deleted while this request ran", http.StatusNotFound)
		return
	}
	var he *httpError
	if !errors.As(err, &he) {
		q.h.internalError(q.w, q.r, "dav request failed", err)
		return
	}
	q.h.log.Debug("dav request rejected", "user", q.login, "method", q.r.Method, "path", q.r.URL.Path, "status", he.code, "reason", he.msg)
	writeError(q.w, err)
}

const allowedMethods = "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, REPORT, MKCOL, MKCALENDAR, LOCK, UNLOCK"

// serveOptions advertises the DAV compliance classes: 1 (RFC 4918), 2
// (locking, RFC 4918 section 18.2), 3 (RFC 4918 section 18.3), calendar-access (RFC 4791 section 5.1),
// addressbook (RFC 6352 section 6.1) and extended-mkcol (RFC 5689).
func (q *request) serveOptions() {
	q.w.Header().Set("DAV", "1, 2, 3, calendar-access, addressbook, extended-mkcol")
	q.w.Header().Set("Allow", allowedMethods)
	q.w.Header().Set("Content-Length", "0")
	q.w.WriteHeader(http.StatusOK)
}

// isBusy reports whether err is SQLite's SQLITE_BUSY (code 5, also in its
// extended forms), which modernc.org/sqlite reports through Code.
func isBusy(err error) bool {
	var coded interface{ Code() int }
	return errors.As(err, &coded) && coded.Code()&0xff == 5
}

// isForeignKeyViolation reports whether err is SQLite's extended result
// code SQLITE_CONSTRAINT_FOREIGNKEY (787).
func isForeignKeyViolation(err error) bool {
	var coded interface{ Code() int }
	return errors.As(err, &coded) && coded.Code() == 787
}

// internalError logs err with the event name msg and sends a 500 without
// details.
func (h *Handler) internalError(w http.ResponseWriter, r *http.Request, msg string, err error) {
	h.log.Error(msg, "method", r.Method, "path", r.URL.Path, "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

// href joins escaped path segments under Prefix. A trailing "" segment
// gives the trailing slash of a collection.
func href(segments ...string) string {
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(Prefix, "/"))
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}
