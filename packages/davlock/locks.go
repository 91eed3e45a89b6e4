// Package davlock keeps WebDAV write locks in memory (RFC 4918 sections 6
// and 7) and parses the If header (RFC 4918 section 10.4). The file
// storage and the CalDAV/CardDAV handlers share it.
package davlock

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

// System keeps the write locks of one resource tree in memory: exclusive
// and shared (RFC 4918 section 6 and 7), of depth 0 or infinity. It is a
// webdav.LockSystem, so that the webdav package checks the submitted lock
// tokens before it changes a resource. Callers handle LOCK themselves
// through CreateLock, because the webdav package rejects shared locks.
//
// TODO: locks live in memory, so a restart loses them and clients must
// lock again.
type System struct {
	mu    sync.Mutex
	locks map[string]*Lock // by token
}

// Lock is one active lock.
type Lock struct {
	Token     string
	Root      string // a cleaned name in the tree, such as "/a/b"
	ZeroDepth bool
	Shared    bool
	OwnerXML  string
	Duration  time.Duration // negative means no timeout
	Expires   time.Time
}

// New returns a System without locks.
func New() *System {
	return &System{locks: make(map[string]*Lock)}
}

// Name cleans a resource name the way the System compares names: rooted
// at "/", without a trailing slash, and in Unicode NFC.
func Name(name string) string { return path.Clean("/" + norm.NFC.String(name)) }

// Covers reports whether l applies to name, a result of Name.
func (l *Lock) Covers(name string) bool {
	if name == l.Root {
		return true
	}
	return !l.ZeroDepth && (l.Root == "/" || strings.HasPrefix(name, l.Root+"/"))
}

// conflicts reports whether a new lock on root of the given depth and
// scope cannot coexist with l. Shared locks coexist with each other.
func (l *Lock) conflicts(root string, zeroDepth, shared bool) bool {
	if shared && l.Shared {
		return false
	}
	if l.Covers(root) {
		return true
	}
	// The new lock's depth reaches l's root.
	return !zeroDepth && (root == "/" || strings.HasPrefix(l.Root, root+"/"))
}

func (ls *System) expire(now time.Time) {
	for token, l := range ls.locks {
		if l.Duration >= 0 && now.After(l.Expires) {
			delete(ls.locks, token)
		}
	}
}

// TokensFor returns the tokens of the locks that apply to name.
func (ls *System) TokensFor(now time.Time, name string) []string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expire(now)
	name = Name(name)
	var tokens []string
	for _, l := range ls.locks {
		if l.Covers(name) {
			tokens = append(tokens, l.Token)
		}
	}
	return tokens
}

// LocksFor returns copies of the locks that apply to name.
func (ls *System) LocksFor(now time.Time, name string) []Lock {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expire(now)
	name = Name(name)
	var locks []Lock
	for _, l := range ls.locks {
		if l.Covers(name) {
			locks = append(locks, *l)
		}
	}
	return locks
}

// LocksBelow returns copies of the locks whose root lies inside the
// collection name, without name itself.
func (ls *System) LocksBelow(now time.Time, name string) []Lock {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expire(now)
	name = Name(name)
	var locks []Lock
	for _, l := range ls.locks {
		if l.Root != name && (name == "/" || strings.HasPrefix(l.Root, name+"/")) {
			locks = append(locks, *l)
		}
	}
	return locks
}

// Confirm succeeds when, for each named resource that a lock applies to,
// the conditions submit one of those locks' tokens.
func (ls *System) Confirm(now time.Time, name0, name1 string, conditions ...webdav.Condition) (func(), error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expire(now)
	for _, name := range []string{name0, name1} {
		if name != "" && !ls.submitted(Name(name), conditions) {
			return nil, webdav.ErrConfirmationFailed
		}
	}
	return func() {}, nil
}

func (ls *System) submitted(name string, conditions []webdav.Condition) bool {
	for _, c := range conditions {
		if c.Not || c.Token == "" {
			continue
		}
		if l, ok := ls.locks[c.Token]; ok && l.Covers(name) {
			return true
		}
	}
	return false
}

// Create makes an exclusive lock. The webdav package calls it for the
// short locks that guard a change sent without an If header.
func (ls *System) Create(now time.Time, details webdav.LockDetails) (string, error) {
	l, err := ls.CreateLock(now, details, false)
	if err != nil {
		return "", err
	}
	return l.Token, nil
}

// CreateLock makes an exclusive or shared lock and returns it, or
// webdav.ErrLocked when it conflicts with a lock that exists.
func (ls *System) CreateLock(now time.Time, details webdav.LockDetails, shared bool) (*Lock, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expire(now)
	root := Name(details.Root)
	for _, l := range ls.locks {
		if l.conflicts(root, details.ZeroDepth, shared) {
			return nil, webdav.ErrLocked
		}
	}
	l := &Lock{
		Token:     newToken(),
		Root:      root,
		ZeroDepth: details.ZeroDepth,
		Shared:    shared,
		OwnerXML:  details.OwnerXML,
		Duration:  details.Duration,
		Expires:   now.Add(details.Duration),
	}
	ls.locks[l.Token] = l
	return l, nil
}

// newToken returns a UUID URN (RFC 4918 section 6.5, RFC 9562).
func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func (ls *System) Refresh(now time.Time, token string, duration time.Duration) (webdav.LockDetails, error) {
	l, err := ls.RefreshLock(now, token, duration)
	if err != nil {
		return webdav.LockDetails{}, err
	}
	return l.details(), nil
}

// RefreshLock resets the timeout of the lock with token and returns a
// copy of it, or webdav.ErrNoSuchLock.
func (ls *System) RefreshLock(now time.Time, token string, duration time.Duration) (*Lock, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expire(now)
	l, ok := ls.locks[token]
	if !ok {
		return nil, webdav.ErrNoSuchLock
	}
	l.Duration = duration
	l.Expires = now.Add(duration)
	copied := *l
	return &copied, nil
}

func (ls *System) Unlock(now time.Time, token string) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expire(now)
	if _, ok := ls.locks[token]; !ok {
		return webdav.ErrNoSuchLock
	}
	delete(ls.locks, token)
	return nil
}

func (l *Lock) details() webdav.LockDetails {
	return webdav.LockDetails{Root: l.Root, Duration: l.Duration, OwnerXML: l.OwnerXML, ZeroDepth: l.ZeroDepth}
}
