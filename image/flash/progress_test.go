package flash

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// fakeClock returns the time that the test sets in current.
type fakeClock struct {
	current time.Time
}

func (c *fakeClock) now() time.Time { return c.current }

func newTestProgress(out *bytes.Buffer, terminal bool) (*progress, *fakeClock) {
	clock := &fakeClock{current: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	p := &progress{out: out, terminal: terminal, action: "writing", total: 64 << 20, now: clock.now}
	p.start = clock.now()
	return p, clock
}

func TestProgressRateLimit(t *testing.T) {
	var out bytes.Buffer
	p, clock := newTestProgress(&out, false)

	for i := range 10 {
		p.update(int64(i) << 20)
		clock.current = clock.current.Add(100 * time.Millisecond)
	}
	// Updates at 0, 100, ... 900 ms print at 0, 300 and 600 and 900 ms.
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines for 10 updates in 1 s, want 4:\n%s", len(lines), out.String())
	}
	p.finish(64 << 20)
	last := strings.TrimSuffix(out.String(), "\n")
	last = last[strings.LastIndex(last, "\n")+1:]
	if want := "writing 64.0 MiB of 64.0 MiB (100%), 64.0 MiB/s"; last != want {
		t.Errorf("final line = %q, want %q", last, want)
	}
}

func TestProgressTerminal(t *testing.T) {
	var out bytes.Buffer
	p, clock := newTestProgress(&out, true)

	p.update(0)
	clock.current = clock.current.Add(2 * time.Second)
	p.update(32 << 20)
	p.finish(32 << 20)

	want := "\rwriting 0 B of 64.0 MiB (0%)\x1b[K" +
		"\rwriting 32.0 MiB of 64.0 MiB (50%), 16.0 MiB/s\x1b[K" +
		"\rwriting 32.0 MiB of 64.0 MiB (50%), 16.0 MiB/s\x1b[K\n"
	if out.String() != want {
		t.Errorf("terminal output = %q, want %q", out.String(), want)
	}
}

func TestFormatBytes(t *testing.T) {
	tests := map[int64]string{
		0:             "0 B",
		1023:          "1023 B",
		1024:          "1.0 KiB",
		1536:          "1.5 KiB",
		64 << 20:      "64.0 MiB",
		31914983424:   "29.7 GiB",
		1 << 62:       "4.0 EiB",
		(1 << 63) - 1: "8.0 EiB",
	}
	for n, want := range tests {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
