package logging

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// discard accepts every level and writes nowhere. slog.DiscardHandler would
// not do: it enables no level, so the ring would see no record.
var discard = slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug})

func TestRingKeepsLastLines(t *testing.T) {
	ring := NewRing(200)
	log := slog.New(ring.Handler(discard))
	for i := range 1000 {
		log.Info("event", "n", i)
	}

	lines := ring.Lines()
	if len(lines) != 200 {
		t.Fatalf("got %d lines, want 200", len(lines))
	}
	if !strings.Contains(lines[0], "n=800") {
		t.Errorf("oldest line %q, want n=800", lines[0])
	}
	if !strings.Contains(lines[199], "n=999") {
		t.Errorf("newest line %q, want n=999", lines[199])
	}
	for i, line := range lines {
		if strings.Contains(line, "\n") {
			t.Errorf("line %d %q contains a line break", i, line)
		}
	}
}

func TestRingBeforeFull(t *testing.T) {
	ring := NewRing(5)
	if got := ring.Lines(); len(got) != 0 {
		t.Errorf("empty ring: got %q, want no lines", got)
	}
	log := slog.New(ring.Handler(discard))
	log.Info("first")
	log.Info("second")
	got := ring.Lines()
	if len(got) != 2 || !strings.Contains(got[0], "msg=first") || !strings.Contains(got[1], "msg=second") {
		t.Errorf("got %q, want the lines first and second", got)
	}
}

func TestRingCutsLongLines(t *testing.T) {
	ring := NewRing(3)
	log := slog.New(ring.Handler(discard))
	// Multibyte letters, so that a cut in the middle of one would show.
	log.Info("long", "text", strings.Repeat("ü", 2*MaxRingLineBytes))

	line := ring.Lines()[0]
	if len(line) > MaxRingLineBytes {
		t.Errorf("line has %d bytes, want at most %d", len(line), MaxRingLineBytes)
	}
	if !strings.HasSuffix(line, "…") {
		t.Errorf("cut line %q does not end in …", line[len(line)-10:])
	}
	if !utf8.ValidString(line) {
		t.Error("cut line is not valid UTF-8")
	}
}

func TestRingHidesSecrets(t *testing.T) {
	var real bytes.Buffer
	ring := NewRing(10)
	log := slog.New(ring.Handler(slog.NewTextHandler(&real, nil)))

	log.Info("login", "user", "anna", "password", "hunter2-pass")
	log.With("dns_token", "tok-123").Info("dns update", "provider", "desec")
	log.WithGroup("request").Info("api call", "Authorization", "Bearer abc-def", "api_key", "k-456", "csrf", "c-789")
	log.Info("totp", slog.Group("setup", "totp_secret", "JBSWY3DPEHPK3PXP", "session", "sess-000"))

	text := strings.Join(ring.Lines(), "\n")
	for _, secret := range []string{"hunter2-pass", "tok-123", "abc-def", "k-456", "c-789", "JBSWY3DPEHPK3PXP", "sess-000"} {
		if strings.Contains(text, secret) {
			t.Errorf("ring contains %q; lines:\n%s", secret, text)
		}
	}
	for _, kept := range []string{"user=anna", "provider=desec", "password=(hidden)", "request.api_key=(hidden)", "setup.totp_secret=(hidden)"} {
		if !strings.Contains(text, kept) {
			t.Errorf("ring lacks %q; lines:\n%s", kept, text)
		}
	}

	// The wrapped handler is the real log and gets everything unchanged.
	if !strings.Contains(real.String(), "password=hunter2-pass") {
		t.Errorf("wrapped handler got %q, want the record unchanged", real.String())
	}
}

// loggedValue hides its secret through slog.LogValuer, as control.Settings
// does.
type loggedValue struct{ Name, Token string }

func (v loggedValue) LogValue() slog.Value {
	return slog.StringValue(v.Name + " (token hidden)")
}

func TestRingResolvesLogValuer(t *testing.T) {
	ring := NewRing(2)
	slog.New(ring.Handler(discard)).Info("settings", "settings", loggedValue{"desec", "tok-999"})
	if line := ring.Lines()[0]; strings.Contains(line, "tok-999") || !strings.Contains(line, "token hidden") {
		t.Errorf("line %q, want the LogValue and no token", line)
	}
}

func TestRingFollowsNextLevel(t *testing.T) {
	ring := NewRing(10)
	next := slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn})
	log := slog.New(ring.Handler(next))
	log.Info("quiet")
	log.Warn("loud")
	lines := ring.Lines()
	if len(lines) != 1 || !strings.Contains(lines[0], "msg=loud") {
		t.Errorf("got %q, want only the warning", lines)
	}
}

func TestSecretKey(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{"password", true},
		{"new_password", true},
		{"Passwd", true},
		{"dns.token", true},
		{"client_secret", true},
		{"api_key", true},
		{"apikey", true},
		{"Authorization", true},
		{"csrf", true},
		{"session", true},
		{"totp-code", true},
		{"user", false},
		{"source", false},
		{"keyboard", false},
		{"monkey", false},
		{"path", false},
		{"msg", false},
	}
	for _, tt := range tests {
		if got := SecretKey(tt.key); got != tt.want {
			t.Errorf("SecretKey(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
}

func TestRingConcurrent(t *testing.T) {
	ring := NewRing(50)
	log := slog.New(ring.Handler(discard))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				log.Info("event", "worker", g, "n", fmt.Sprint(i))
			}
		})
	}
	wg.Wait()
	if got := len(ring.Lines()); got != 50 {
		t.Errorf("got %d lines after 800 writes, want 50", got)
	}
}
