package files

import (
	"crypto/rand"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/webdav"
	"golang.org/x/text/unicode/norm"
)

// lockSystem keeps the write locks of one folder tree in memory: exclusive
// and shared (RFC 4918 section 6 and 7), of depth 0 or infinity. It is a
// webdav.LockSystem, so that the webdav package checks the submitted lock
// tokens before it changes a resource. Handler.serveLock handles LOCK
// itself, because the webdav package rejects shared locks.
//
// TODO: locks live in memory, so a restart forgets them and clients must
// lock again.
type lockSystem struct {
	mu    sync.Mutex
	locks map[string]*activeLock // by token
}

type activeLock struct {
	token     string
	root      string // a cleaned name below the folder, such as "/a/b"
	zeroDepth bool
	shared    bool
	ownerXML  string
	duration  time.Duration // negative means no timeout
	expires   time.Time
}

func newLockSystem() *lockSystem {
	return &lockSystem{locks: make(map[string]*activeLock)}
}

func lockName(name string) string { return path.Clean("/" + norm.NFC.String(name)) }

// covers reports whether l applies to name.
func (l *activeLock) covers(name string) bool {
	if name == l.root {
		return true
	}
	return !l.zeroDepth && (l.root == "/" || strings.HasPrefix(name, l.root+"/"))
}

// conflicts reports whether a new lock on root of the given depth and
// scope cannot coexist with l. Shared locks coexist with each other.
func (l *activeLock) conflicts(root string, zeroDepth, shared bool) bool {
	if shared && l.shared {
		return false
	}
	if l.covers(root) {
		return true
	}
	// The new lock's depth reaches l's root.
	return !zeroDepth && (root == "/" || strings.HasPrefix(l.root, root+"/"))
}

func (ls *lockSystem) expire(now time.Time) {
	for token, l := range ls.locks {
		if l.duration >= 0 && now.After(l.expires) {
			delete(ls.locks, token)
		}
	}
}

// tokensFor returns the tokens of the locks that apply to name.
func (ls *lockSystem) tokensFor(now time.Time, name string) []string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expire(now)
	name = lockName(name)
	var tokens []string
	for _, l := range ls.locks {
		if l.covers(name) {
			tokens = append(tokens, l.token)
		}
	}
	return tokens
}

// locksFor returns copies of the locks that apply to name.
func (ls *lockSystem) locksFor(now time.Time, name string) []activeLock {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expire(now)
	name = lockName(name)
	var locks []activeLock
	for _, l := range ls.locks {
		if l.covers(name) {
			locks = append(locks, *l)
		}
	}
	return locks
}

// Confirm succeeds when, for each named resource that a lock applies to,
// the conditions submit one of those locks' tokens.
func (ls *lockSystem) Confirm(now time.Time, name0, name1 string, conditions ...webdav.Condition) (func(), error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expire(now)
	for _, name := range []string{name0, name1} {
		if name != "" && !ls.submitted(lockName(name), conditions) {
			return nil, webdav.ErrConfirmationFailed
		}
	}
	return func() {}, nil
}

func (ls *lockSystem) submitted(name string, conditions []webdav.Condition) bool {
	for _, c := range conditions {
		if c.Not || c.Token == "" {
			continue
		}
		if l, ok := ls.locks[c.Token]; ok && l.covers(name) {
			return true
		}
	}
	return false
}

// Create makes an exclusive lock. The webdav package calls it for the
// short locks that guard a change sent without an If header.
func (ls *lockSystem) Create(now time.Time, details webdav.LockDetails) (string, error) {
	l, err := ls.create(now, details, false)
	if err != nil {
		return "", err
	}
	return l.token, nil
}

func (ls *lockSystem) create(now time.Time, details webdav.LockDetails, shared bool) (*activeLock, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expire(now)
	root := lockName(details.Root)
	for _, l := range ls.locks {
		if l.conflicts(root, details.ZeroDepth, shared) {
			return nil, webdav.ErrLocked
		}
	}
	l := &activeLock{
		token:     newLockToken(),
		root:      root,
		zeroDepth: details.ZeroDepth,
		shared:    shared,
		ownerXML:  details.OwnerXML,
		duration:  details.Duration,
		expires:   now.Add(details.Duration),
	}
	ls.locks[l.token] = l
	return l, nil
}

// newLockToken returns a UUID URN (RFC 4918 section 6.5, RFC 9562).
func newLockToken() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func (ls *lockSystem) Refresh(now time.Time, token string, duration time.Duration) (webdav.LockDetails, error) {
	l, err := ls.refresh(now, token, duration)
	if err != nil {
		return webdav.LockDetails{}, err
	}
	return l.details(), nil
}

func (ls *lockSystem) refresh(now time.Time, token string, duration time.Duration) (*activeLock, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expire(now)
	l, ok := ls.locks[token]
	if !ok {
		return nil, webdav.ErrNoSuchLock
	}
	l.duration = duration
	l.expires = now.Add(duration)
	copied := *l
	return &copied, nil
}

func (ls *lockSystem) Unlock(now time.Time, token string) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expire(now)
	if _, ok := ls.locks[token]; !ok {
		return webdav.ErrNoSuchLock
	}
	delete(ls.locks, token)
	return nil
}

func (l *activeLock) details() webdav.LockDetails {
	return webdav.LockDetails{Root: l.root, Duration: l.duration, OwnerXML: l.ownerXML, ZeroDepth: l.zeroDepth}
}
