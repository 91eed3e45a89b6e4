package files

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/net/webdav"

	"github.com/heimwolke/heimwolke/packages/davlock"
)

// etag returns the entity tag of rel in the webdav package's form, or ""
// when rel does not exist.
func (fsys *rootFS) etag(rel string) string {
	fi, err := fsys.root.Stat(rel)
	if err != nil {
		return ""
	}
	return entityTag(fi.ModTime(), fi.Size())
}

// applyIf evaluates the If header (RFC 4918 section 10.4) with its entity
// tags and "Not" conditions, which the webdav package ignores, and leaves
// it only the lists that hold and submit lock tokens, for its lock check.
// It returns 412 when no list holds.
func applyIf(r *http.Request, fsys *rootFS, locks *davlock.System, f folder, name string) (int, error) {
	hdr := r.Header.Get("If")
	if hdr == "" {
		return 0, nil
	}
	lists, err := davlock.ParseIf(hdr)
	if err != nil {
		return reject(http.StatusBadRequest, "%v", err)
	}

	now := time.Now()
	var holding []davlock.IfList
	tokenless := false
	for _, l := range lists {
		target := name
		if l.Resource != "" {
			u, err := url.Parse(l.Resource)
			if err != nil {
				continue
			}
			p, err := cleanURLPath(u)
			if err != nil || (p != f.prefix && !strings.HasPrefix(p, f.prefix+"/")) {
				continue
			}
			target = strings.TrimPrefix(p, f.prefix)
		}
		st := davlock.ResourceState{ETag: fsys.etag(relPath(target)), Tokens: locks.TokensFor(now, target)}
		if !l.AllHold(st) {
			continue
		}
		tokens := l.LockTokens()
		if len(tokens) == 0 {
			tokenless = true
			continue
		}
		holding = append(holding, davlock.IfList{Resource: l.Resource, Conditions: tokens})
	}

	switch {
	case len(holding) > 0:
		r.Header.Set("If", davlock.FormatIf(holding))
	case tokenless:
		// The header holds without submitting a lock, so the change must
		// pass the check for requests without an If header.
		r.Header.Del("If")
	default:
		return reject(http.StatusPreconditionFailed, "no list of the If header holds")
	}
	return 0, nil
}

// serveLock handles LOCK (RFC 4918 section 9.10): a new exclusive or
// shared lock, or with an empty body the refresh of a lock.
func (h *Handler) serveLock(w http.ResponseWriter, r *http.Request, fsys *rootFS, locks *davlock.System, f folder, name string) {
	timeout := davlock.ParseTimeout(r.Header.Get("Timeout"))
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "reading request body failed", http.StatusBadRequest)
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		h.refreshLock(w, r, locks, f, name, timeout)
		return
	}

	var li davlock.LockInfo
	if err := xml.Unmarshal(body, &li); err != nil {
		http.Error(w, "invalid lockinfo body", http.StatusBadRequest)
		return
	}
	if li.Write == nil || (li.Exclusive == nil) == (li.Shared == nil) {
		http.Error(w, "lockinfo needs locktype write and one lockscope, exclusive or shared", http.StatusBadRequest)
		return
	}
	zeroDepth := false
	switch r.Header.Get("Depth") {
	case "", "infinity":
	case "0":
		zeroDepth = true
	default:
		// RFC 4918 section 9.10.3: LOCK takes Depth 0 or infinity.
		http.Error(w, "LOCK takes Depth 0 or infinity", http.StatusBadRequest)
		return
	}

	l, err := locks.CreateLock(time.Now(), webdav.LockDetails{
		Root: name, Duration: timeout, OwnerXML: li.Owner.InnerXML, ZeroDepth: zeroDepth,
	}, li.Shared != nil)
	if err != nil {
		writeLockedError(w, "no-conflicting-lock")
		return
	}
	status := http.StatusOK
	rel := relPath(name)
	if _, err := fsys.root.Stat(rel); os.IsNotExist(err) {
		// RFC 4918 section 7.3: LOCK on an unmapped URL creates an
		// empty resource.
		status, err = createEmpty(fsys, rel)
		if err != nil {
			locks.Unlock(time.Now(), l.Token)
			h.log.Debug("lock: creating empty resource failed", "folder", f.key, "err", err)
			http.Error(w, http.StatusText(status), status)
			return
		}
	}
	w.Header().Set("Lock-Token", "<"+l.Token+">")
	writeLockDiscovery(w, status, l, f.prefix)
}

func createEmpty(fsys *rootFS, rel string) (int, error) {
	up, err := fsys.newUpload(rel)
	if os.IsNotExist(err) {
		return http.StatusConflict, err
	}
	if err != nil {
		return http.StatusInternalServerError, err
	}
	if err := up.Close(); err != nil {
		return http.StatusInternalServerError, err
	}
	return http.StatusCreated, nil
}

// refreshLock resets a lock's timeout; the If header names its token
// (RFC 4918 section 9.10.2).
func (h *Handler) refreshLock(w http.ResponseWriter, r *http.Request, locks *davlock.System, f folder, name string, timeout time.Duration) {
	lists, err := davlock.ParseIf(r.Header.Get("If"))
	if err != nil || len(lists) != 1 || len(lists[0].LockTokens()) != 1 {
		http.Error(w, "a lock refresh needs an If header with one lock token", http.StatusBadRequest)
		return
	}
	token := lists[0].LockTokens()[0].Token
	l, err := locks.RefreshLock(time.Now(), token, timeout)
	if err != nil || !l.Covers(davlock.Name(name)) {
		http.Error(w, "no such lock on this resource", http.StatusPreconditionFailed)
		return
	}
	writeLockDiscovery(w, http.StatusOK, l, f.prefix)
}

// serveUnlock handles UNLOCK (RFC 4918 section 9.11).
func (h *Handler) serveUnlock(w http.ResponseWriter, r *http.Request, locks *davlock.System, name string) {
	token := strings.TrimSpace(r.Header.Get("Lock-Token"))
	if len(token) < 2 || token[0] != '<' || token[len(token)-1] != '>' {
		http.Error(w, "missing or invalid Lock-Token header", http.StatusBadRequest)
		return
	}
	token = token[1 : len(token)-1]
	now := time.Now()
	for _, t := range locks.TokensFor(now, name) {
		if t == token {
			locks.Unlock(now, token)
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(http.StatusConflict)
	io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><D:error xmlns:D="DAV:"><D:lock-token-matches-request-uri/></D:error>`)
}

func writeLockedError(w http.ResponseWriter, precondition string) {
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(webdav.StatusLocked)
	io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><D:error xmlns:D="DAV:"><D:`+precondition+`/></D:error>`)
}

// writeLockDiscovery sends the lockdiscovery property of the lock
// (RFC 4918 section 9.10.1).
func writeLockDiscovery(w http.ResponseWriter, status int, l *davlock.Lock, prefix string) {
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?>`+"\n"+
		`<D:prop xmlns:D="DAV:"><D:lockdiscovery>`+l.ActiveLockXML(prefix)+`</D:lockdiscovery></D:prop>`)
}

// lockDiscovery is the DAV:lockdiscovery property, which the webdav
// package lists as a live property without a value.
var lockDiscovery = xml.Name{Space: "DAV:", Local: "lockdiscovery"}

// addLockProps adds the lockdiscovery property of rel, with the locks
// that apply to it (RFC 4918 section 15.8).
func (fsys *rootFS) addLockProps(props map[xml.Name]webdav.Property, rel string) {
	name := "/"
	if rel != "." {
		name += rel
	}
	var b strings.Builder
	for _, l := range fsys.locks.LocksFor(time.Now(), name) {
		b.WriteString(l.ActiveLockXML(fsys.prefix))
	}
	props[lockDiscovery] = webdav.Property{XMLName: lockDiscovery, InnerXML: []byte(b.String())}
}
