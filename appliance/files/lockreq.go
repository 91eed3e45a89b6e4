package files

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/webdav"
)

// Lock timeouts (RFC 4918 section 10.7). Clients refresh before the
// timeout ends, and a request for Infinite gets maxLockTimeout.
const (
	defaultLockTimeout = 1 * time.Hour
	maxLockTimeout     = 24 * time.Hour
)

// etag returns the entity tag of rel in the webdav package's form, or ""
// when rel does not exist.
func (fsys *rootFS) etag(rel string) string {
	fi, err := fsys.root.Stat(rel)
	if err != nil {
		return ""
	}
	return fmt.Sprintf(`"%x%x"`, fi.ModTime().UnixNano(), fi.Size())
}

// applyIf evaluates the If header (RFC 4918 section 10.4) with its entity
// tags and "Not" conditions, which the webdav package ignores, and leaves
// it only the lists that hold and submit lock tokens, for its lock check.
// It returns 412 when no list holds.
func applyIf(r *http.Request, fsys *rootFS, locks *lockSystem, f folder, name string) (int, error) {
	hdr := r.Header.Get("If")
	if hdr == "" {
		return 0, nil
	}
	lists, err := parseIf(hdr)
	if err != nil {
		return reject(http.StatusBadRequest, "%v", err)
	}

	now := time.Now()
	var holding []ifList
	tokenless := false
	for _, l := range lists {
		target := name
		if l.resource != "" {
			u, err := url.Parse(l.resource)
			if err != nil {
				continue
			}
			p, err := cleanURLPath(u)
			if err != nil || (p != f.prefix && !strings.HasPrefix(p, f.prefix+"/")) {
				continue
			}
			target = strings.TrimPrefix(p, f.prefix)
		}
		st := resourceState{etag: fsys.etag(relPath(target)), tokens: locks.tokensFor(now, target)}
		if !l.allHold(st) {
			continue
		}
		tokens := l.lockTokens()
		if len(tokens) == 0 {
			tokenless = true
			continue
		}
		holding = append(holding, ifList{resource: l.resource, conditions: tokens})
	}

	switch {
	case len(holding) > 0:
		r.Header.Set("If", formatIf(holding))
	case tokenless:
		// The header holds without submitting a lock, so the change must
		// pass the check for requests without an If header.
		r.Header.Del("If")
	default:
		return reject(http.StatusPreconditionFailed, "no list of the If header holds")
	}
	return 0, nil
}

func (l ifList) allHold(st resourceState) bool {
	for _, c := range l.conditions {
		if !c.holds(st) {
			return false
		}
	}
	return true
}

// lockInfo is the body of a LOCK request (RFC 4918 section 14.11).
type lockInfo struct {
	XMLName   xml.Name  `xml:"DAV: lockinfo"`
	Exclusive *struct{} `xml:"DAV: lockscope>exclusive"`
	Shared    *struct{} `xml:"DAV: lockscope>shared"`
	Write     *struct{} `xml:"DAV: locktype>write"`
	Owner     struct {
		InnerXML string `xml:",innerxml"`
	} `xml:"DAV: owner"`
}

// serveLock handles LOCK (RFC 4918 section 9.10): a new exclusive or
// shared lock, or with an empty body the refresh of a lock.
func (h *Handler) serveLock(w http.ResponseWriter, r *http.Request, fsys *rootFS, locks *lockSystem, f folder, name string) {
	timeout := parseLockTimeout(r.Header.Get("Timeout"))
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "reading request body failed", http.StatusBadRequest)
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		h.refreshLock(w, r, locks, f, name, timeout)
		return
	}

	var li lockInfo
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

	l, err := locks.create(time.Now(), webdav.LockDetails{
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
			locks.Unlock(time.Now(), l.token)
			h.log.Debug("lock: creating empty resource failed", "folder", f.key, "err", err)
			http.Error(w, http.StatusText(status), status)
			return
		}
	}
	w.Header().Set("Lock-Token", "<"+l.token+">")
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
func (h *Handler) refreshLock(w http.ResponseWriter, r *http.Request, locks *lockSystem, f folder, name string, timeout time.Duration) {
	lists, err := parseIf(r.Header.Get("If"))
	if err != nil || len(lists) != 1 || len(lists[0].lockTokens()) != 1 {
		http.Error(w, "a lock refresh needs an If header with one lock token", http.StatusBadRequest)
		return
	}
	token := lists[0].lockTokens()[0].token
	l, err := locks.refresh(time.Now(), token, timeout)
	if err != nil || !l.covers(lockName(name)) {
		http.Error(w, "no such lock on this resource", http.StatusPreconditionFailed)
		return
	}
	writeLockDiscovery(w, http.StatusOK, l, f.prefix)
}

// serveUnlock handles UNLOCK (RFC 4918 section 9.11).
func (h *Handler) serveUnlock(w http.ResponseWriter, r *http.Request, locks *lockSystem, name string) {
	token := strings.TrimSpace(r.Header.Get("Lock-Token"))
	if len(token) < 2 || token[0] != '<' || token[len(token)-1] != '>' {
		http.Error(w, "missing or invalid Lock-Token header", http.StatusBadRequest)
		return
	}
	token = token[1 : len(token)-1]
	now := time.Now()
	for _, t := range locks.tokensFor(now, name) {
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

// parseLockTimeout takes the first timeout that it understands from the
// Timeout header (RFC 4918 section 10.7).
func parseLockTimeout(hdr string) time.Duration {
	for _, t := range strings.Split(hdr, ",") {
		t = strings.TrimSpace(t)
		if t == "Infinite" {
			return maxLockTimeout
		}
		if s, ok := strings.CutPrefix(t, "Second-"); ok {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
				return min(time.Duration(n)*time.Second, maxLockTimeout)
			}
		}
	}
	return defaultLockTimeout
}

func writeLockedError(w http.ResponseWriter, precondition string) {
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(webdav.StatusLocked)
	io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><D:error xmlns:D="DAV:"><D:`+precondition+`/></D:error>`)
}

// writeLockDiscovery sends the lockdiscovery property of the lock
// (RFC 4918 section 9.10.1).
func writeLockDiscovery(w http.ResponseWriter, status int, l *activeLock, prefix string) {
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?>`+"\n"+
		`<D:prop xmlns:D="DAV:"><D:lockdiscovery>`+l.activeLockXML(prefix)+`</D:lockdiscovery></D:prop>`)
}

// activeLockXML returns the activelock element of l (RFC 4918 section
// 14.1) with the D: prefix for DAV:.
func (l *activeLock) activeLockXML(prefix string) string {
	scope, depth := "exclusive", "infinity"
	if l.shared {
		scope = "shared"
	}
	if l.zeroDepth {
		depth = "0"
	}
	href := (&url.URL{Path: prefix + l.root}).EscapedPath()
	var b strings.Builder
	b.WriteString(`<D:activelock>`)
	b.WriteString(`<D:locktype><D:write/></D:locktype>`)
	b.WriteString(`<D:lockscope><D:` + scope + `/></D:lockscope>`)
	b.WriteString(`<D:depth>` + depth + `</D:depth>`)
	if l.ownerXML != "" {
		b.WriteString(`<D:owner>` + l.ownerXML + `</D:owner>`)
	}
	fmt.Fprintf(&b, `<D:timeout>Second-%d</D:timeout>`, int64(l.duration/time.Second))
	b.WriteString(`<D:locktoken><D:href>` + html.EscapeString(l.token) + `</D:href></D:locktoken>`)
	b.WriteString(`<D:lockroot><D:href>` + html.EscapeString(href) + `</D:href></D:lockroot>`)
	b.WriteString(`</D:activelock>`)
	return b.String()
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
	for _, l := range fsys.locks.locksFor(time.Now(), name) {
		b.WriteString(l.activeLockXML(fsys.prefix))
	}
	props[lockDiscovery] = webdav.Property{XMLName: lockDiscovery, InnerXML: []byte(b.String())}
}
