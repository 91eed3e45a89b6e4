package logging

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"unicode/utf8"
)

// MaxRingLineBytes is the longest line that a Ring keeps. Longer lines are
// cut and end in "…".
const MaxRingLineBytes = 512

// Ring keeps the most recent log lines of a program in memory, so that its
// status page can show them. It is safe for concurrent use.
type Ring struct {
	mu    sync.Mutex
	lines []string // a circular buffer once it has reached its size
	next  int      // index of the next line once the buffer is full
	size  int
}

// NewRing returns a ring that keeps the last size lines. A size below 1
// keeps one line.
func NewRing(size int) *Ring {
	size = max(size, 1)
	return &Ring{lines: make([]string, 0, size), size: size}
}

// Lines returns a copy of the kept lines, oldest first.
func (r *Ring) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.lines))
	out = append(out, r.lines[r.next:]...)
	return append(out, r.lines[:r.next]...)
}

func (r *Ring) add(line string) {
	line = truncateLine(strings.TrimRight(line, "\n"))
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) < r.size {
		r.lines = append(r.lines, line)
		return
	}
	r.lines[r.next] = line
	r.next = (r.next + 1) % r.size
}

func truncateLine(line string) string {
	if len(line) <= MaxRingLineBytes {
		return line
	}
	cut := MaxRingLineBytes - len("…")
	for cut > 0 && !utf8.RuneStart(line[cut]) {
		cut--
	}
	return line[:cut] + "…"
}

// ringWriter adds each write as one line. slog's TextHandler writes once
// per record.
type ringWriter struct{ ring *Ring }

func (w ringWriter) Write(p []byte) (int, error) {
	w.ring.add(string(p))
	return len(p), nil
}

// Handler returns a handler that passes every record to next and also keeps
// it in r as a text line (slog.TextHandler format). Before a record enters
// r, the value of every attribute whose key names a secret (see
// SecretKey) becomes "(hidden)". The records that next receives stay as
// they are. The handler logs what next enables.
func (r *Ring) Handler(next slog.Handler) slog.Handler {
	text := slog.NewTextHandler(ringWriter{r}, &slog.HandlerOptions{
		// The level check happens in Enabled, with next's level.
		Level:       slog.Level(-1 << 10),
		ReplaceAttr: hideSecret,
	})
	return &ringHandler{next: next, text: text}
}

type ringHandler struct {
	next slog.Handler
	text slog.Handler
}

func (h *ringHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *ringHandler) Handle(ctx context.Context, record slog.Record) error {
	// A failure to format the ring's copy loses one line of a status page
	// and is not worth failing the real log for. ringWriter never fails.
	_ = h.text.Handle(ctx, record)
	return h.next.Handle(ctx, record)
}

func (h *ringHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &ringHandler{next: h.next.WithAttrs(attrs), text: h.text.WithAttrs(attrs)}
}

func (h *ringHandler) WithGroup(name string) slog.Handler {
	return &ringHandler{next: h.next.WithGroup(name), text: h.text.WithGroup(name)}
}

// hideSecret is a slog.HandlerOptions.ReplaceAttr function that hides the
// value of an attribute whose key names a secret.
func hideSecret(groups []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindGroup && SecretKey(a.Key) {
		return slog.String(a.Key, "(hidden)")
	}
	return a
}

// secretWords are key parts that name a secret. A key matches when one of
// its parts, split at '_', '-' and '.', is one of them, or when it
// contains "password", "passwd", "secret" or "token" anywhere.
var secretWords = map[string]bool{
	"key": true, "pass": true, "pw": true, "pwd": true, "otp": true, "totp": true,
	"cookie": true, "authorization": true, "auth": true, "csrf": true, "credential": true,
	"credentials": true, "session": true, "apikey": true,
}

// SecretKey reports whether an attribute key names a secret, such as
// "password", "dns_token", "api_key" or "Authorization". It looks at the key
// only: a secret inside a message or under an innocent key is not found.
func SecretKey(key string) bool {
	key = strings.ToLower(key)
	for _, word := range []string{"password", "passwd", "secret", "token"} {
		if strings.Contains(key, word) {
			return true
		}
	}
	for part := range strings.FieldsFuncSeq(key, func(r rune) bool { return r == '_' || r == '-' || r == '.' }) {
		if secretWords[part] {
			return true
		}
	}
	return false
}
