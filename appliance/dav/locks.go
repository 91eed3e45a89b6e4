package dav

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/webdav"

	"github.com/heimwolke/heimwolke/packages/davlock"
)

// Lock properties and preconditions (RFC 4918 sections 15.8, 15.10, 16).
var (
	propLockDiscovery = xml.Name{Space: nsDAV, Local: "lockdiscovery"}
	propSupportedLock = xml.Name{Space: nsDAV, Local: "supportedlock"}

	condLockTokenSubmitted   = xml.Name{Space: nsDAV, Local: "lock-token-submitted"}
	condNoConflictingLock    = xml.Name{Space: nsDAV, Local: "no-conflicting-lock"}
	condLockTokenMatchesPath = xml.Name{Space: nsDAV, Local: "lock-token-matches-request-uri"}
)

// lockName returns the key of a lock: the unescaped request path, such as
// "/dav/calendars/max/privat/termin.ics", so the lockroot href is the
// path itself.
//
// NOTE: the household's shared collections appear under each member's
// home, so a lock that one member takes there does not stop another
// member who writes through their own home.
func lockName(p string) string { return davlock.Name(p) }

// lock serves LOCK (RFC 4918 section 9.10) on homes, collections and
// objects: a new exclusive or shared lock, or with an empty body a
// refresh. A lock of depth infinity on a home also covers the
// collections that MKCOL and MKCALENDAR would create in it.
func (q *request) lock() error {
	if q.target.typ != targetHome && q.target.typ != targetCollection && q.target.typ != targetObject {
		return httpErrorf(http.StatusMethodNotAllowed, "LOCK works on calendar and address book homes, their collections and members only")
	}
	timeout := davlock.ParseTimeout(q.r.Header.Get("Timeout"))
	body, err := io.ReadAll(io.LimitReader(q.r.Body, maxXMLBodySize))
	if err != nil {
		return httpErrorf(http.StatusBadRequest, "reading LOCK body failed: %v", err)
	}
	name := lockName(q.r.URL.Path)
	if len(bytes.TrimSpace(body)) == 0 {
		return q.refreshLock(name, timeout)
	}

	var info davlock.LockInfo
	if err := xml.Unmarshal(body, &info); err != nil {
		return httpErrorf(http.StatusBadRequest, "invalid lockinfo body: %v", err)
	}
	if info.Write == nil || (info.Exclusive == nil) == (info.Shared == nil) {
		return httpErrorf(http.StatusBadRequest, "lockinfo needs locktype write and one lockscope, exclusive or shared")
	}
	zeroDepth := false
	switch q.r.Header.Get("Depth") {
	case "", "infinity":
	case "0":
		zeroDepth = true
	default:
		// RFC 4918 section 9.10.3: LOCK takes Depth 0 or infinity.
		return httpErrorf(http.StatusBadRequest, "LOCK takes Depth 0 or infinity, got %q", q.r.Header.Get("Depth"))
	}

	// The collection must exist. An unmapped object URL is locked without
	// creating a resource, because an empty body is no valid calendar
	// object or vCard. The client's PUT then creates it.
	if q.target.typ != targetHome {
		_, err = q.h.store.collection(q.ctx(), q.login, q.target.kind, q.target.collection)
		if errors.Is(err, errNotFound) {
			return httpErrorf(http.StatusConflict, "no %s named %q: create it first", q.target.kind, q.target.collection)
		}
		if err != nil {
			return err
		}
	}

	l, err := q.h.locks.CreateLock(time.Now(), webdav.LockDetails{
		Root: name, Duration: timeout, OwnerXML: info.Owner.InnerXML, ZeroDepth: zeroDepth,
	}, info.Shared != nil)
	if err != nil {
		return preconditionError(http.StatusLocked, condNoConflictingLock, "%s is locked already", name)
	}
	q.h.log.Debug("dav lock created", "user", q.login, "path", name, "shared", l.Shared)
	q.w.Header().Set("Lock-Token", "<"+l.Token+">")
	q.writeLockDiscovery(l)
	return nil
}

// refreshLock resets a lock's timeout. The If header names its token
// (RFC 4918 section 9.10.2).
func (q *request) refreshLock(name string, timeout time.Duration) error {
	lists, err := davlock.ParseIf(q.r.Header.Get("If"))
	if err != nil || len(lists) != 1 || len(lists[0].LockTokens()) != 1 {
		return httpErrorf(http.StatusBadRequest, "a lock refresh needs an If header with one lock token")
	}
	token := lists[0].LockTokens()[0].Token
	l, err := q.h.locks.RefreshLock(time.Now(), token, timeout)
	if err != nil || !l.Covers(name) {
		return httpErrorf(http.StatusPreconditionFailed, "no lock %s on %s", token, name)
	}
	q.writeLockDiscovery(l)
	return nil
}

func (q *request) writeLockDiscovery(l *davlock.Lock) {
	q.w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	q.w.WriteHeader(http.StatusOK)
	io.WriteString(q.w, xml.Header+`<D:prop xmlns:D="DAV:"><D:lockdiscovery>`+l.ActiveLockXML("")+`</D:lockdiscovery></D:prop>`)
}

// unlock serves UNLOCK (RFC 4918 section 9.11).
func (q *request) unlock() error {
	token := strings.TrimSpace(q.r.Header.Get("Lock-Token"))
	if len(token) < 2 || token[0] != '<' || token[len(token)-1] != '>' {
		return httpErrorf(http.StatusBadRequest, "missing or invalid Lock-Token header %q, want <token>", token)
	}
	token = token[1 : len(token)-1]
	now := time.Now()
	name := lockName(q.r.URL.Path)
	if !slices.Contains(q.h.locks.TokensFor(now, name), token) {
		return preconditionError(http.StatusConflict, condLockTokenMatchesPath, "lock %s does not apply to %s", token, name)
	}
	q.h.locks.Unlock(now, token)
	q.h.log.Debug("dav lock removed", "user", q.login, "path", name)
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}

// checkLocks evaluates the If header (RFC 4918 section 10.4) and rejects a
// change of a locked resource with 423 unless the header submits the
// token of a lock on it (RFC 4918 section 7.4). Deleting a collection
// also needs the tokens of the locks inside it.
func (q *request) checkLocks() error {
	now := time.Now()
	submitted, err := q.submittedTokens(now)
	if err != nil {
		return err
	}
	name := lockName(q.r.URL.Path)
	locks := q.h.locks.LocksFor(now, name)
	if q.r.Method == http.MethodDelete {
		locks = append(locks, q.h.locks.LocksBelow(now, name)...)
	}
	for _, l := range locks {
		if !slices.Contains(submitted, l.Token) && !q.coveredBySubmitted(now, l, submitted) {
			return preconditionError(http.StatusLocked, condLockTokenSubmitted, "%s is locked: submit the lock token of %s in the If header", name, l.Root)
		}
	}
	return nil
}

// coveredBySubmitted reports whether a submitted token belongs to another
// lock on l's root, so that one token of several shared locks suffices.
func (q *request) coveredBySubmitted(now time.Time, l davlock.Lock, submitted []string) bool {
	for _, t := range q.h.locks.TokensFor(now, l.Root) {
		if slices.Contains(submitted, t) {
			return true
		}
	}
	return false
}

// submittedTokens returns the lock tokens of the If header's lists that
// hold, or 412 when the header has lists and none holds.
func (q *request) submittedTokens(now time.Time) ([]string, error) {
	hdr := q.r.Header.Get("If")
	if hdr == "" {
		return nil, nil
	}
	lists, err := davlock.ParseIf(hdr)
	if err != nil {
		return nil, httpErrorf(http.StatusBadRequest, "invalid If header %q", hdr)
	}
	var tokens []string
	holds := false
	for _, l := range lists {
		p, t := q.r.URL.Path, q.target
		if l.Resource != "" {
			u, err := url.Parse(l.Resource)
			if err != nil {
				continue
			}
			if t, err = parseTarget(u.EscapedPath(), q.login); err != nil {
				continue
			}
			p = u.Path
		}
		st := davlock.ResourceState{ETag: q.etagOf(t), Tokens: q.h.locks.TokensFor(now, lockName(p))}
		if !l.AllHold(st) {
			continue
		}
		holds = true
		for _, c := range l.LockTokens() {
			tokens = append(tokens, c.Token)
		}
	}
	if !holds {
		return nil, httpErrorf(http.StatusPreconditionFailed, "precondition failed: no list of the If header matches the lock tokens and entity tags of its resource")
	}
	return tokens, nil
}

// etagOf returns the quoted entity tag of an object, or "" for anything
// else, including a missing object.
func (q *request) etagOf(t target) string {
	if t.typ != targetObject {
		return ""
	}
	c, err := q.h.store.collection(q.ctx(), q.login, t.kind, t.collection)
	if err != nil {
		return ""
	}
	o, err := q.h.store.object(q.ctx(), c.id, t.object)
	if err != nil {
		return ""
	}
	return `"` + o.etag + `"`
}

// lockDiscoveryXML returns the lockdiscovery value of the resource at the
// escaped href.
func (q *request) lockDiscoveryXML(escapedHref string) string {
	p, err := url.PathUnescape(escapedHref)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, l := range q.h.locks.LocksFor(time.Now(), lockName(p)) {
		b.WriteString(l.ActiveLockXML(""))
	}
	return b.String()
}

// addLockProps adds supportedlock and lockdiscovery (RFC 4918 sections
// 15.10 and 15.8) to the properties of a home, collection or object.
func (q *request) addLockProps(r resourceProps) {
	r.values[propSupportedLock] = davlock.SupportedLockXML
	r.values[propLockDiscovery] = q.lockDiscoveryXML(r.href)
}
