package qemu

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func newTestConsole() *console {
	return newConsole(io.Discard, slog.New(slog.DiscardHandler))
}

func TestConsoleFindAcrossWrites(t *testing.T) {
	c := newTestConsole()
	want := []byte("Linux version")

	found, from, changed := c.find(want, 0)
	if found {
		t.Fatal("found text in an empty console")
	}
	for _, chunk := range []string{"[ 0.0] Lin", "ux ver", "sion 7.1\n"} {
		c.Write([]byte(chunk))
		select {
		case <-changed:
		default:
			t.Fatalf("writing %q did not close the changed channel", chunk)
		}
		found, from, changed = c.find(want, from)
	}
	if !found {
		t.Errorf("find %q after writes split inside it: got not found, want found", want)
	}
}

func TestConsoleHistoryLimit(t *testing.T) {
	c := newTestConsole()
	c.Write([]byte("early line\n"))
	chunk := strings.Repeat("x", 1<<20)
	for range 9 {
		c.Write([]byte(chunk))
	}
	c.Write([]byte("\nlate line\n"))

	if n := len(c.output()); n > maxConsoleHistory {
		t.Errorf("history is %d bytes, want at most %d", n, maxConsoleHistory)
	}
	if found, _, _ := c.find([]byte("late line"), 0); !found {
		t.Error("late line: got not found, want found")
	}
	if got := c.lastLine(); got != "late line" {
		t.Errorf("lastLine() = %q, want %q", got, "late line")
	}
}

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

// TestConsoleOuterWriterFails guards against a broken Config.Console ending
// the copying of QEMU's output, which would blind WaitConsole.
func TestConsoleOuterWriterFails(t *testing.T) {
	c := newConsole(failingWriter{}, slog.New(slog.DiscardHandler))
	for _, text := range []string{"first\n", "second\n"} {
		n, err := c.Write([]byte(text))
		if n != len(text) || err != nil {
			t.Errorf("Write(%q) = %d, %v, want %d, nil", text, n, err, len(text))
		}
	}
	if found, _, _ := c.find([]byte("second"), 0); !found {
		t.Error("second: got not found, want found")
	}
}

func TestWaitConsoleContext(t *testing.T) {
	vm := &VM{console: newTestConsole(), done: make(chan struct{})}
	vm.console.Write([]byte("booting\n"))

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := vm.WaitConsole(ctx, "never printed")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitConsole: got %v, want an error wrapping context.DeadlineExceeded", err)
	}
	if err != nil && !strings.Contains(err.Error(), "booting") {
		t.Errorf("WaitConsole error %q: want the last console line %q in it", err, "booting")
	}

	go func() {
		time.Sleep(10 * time.Millisecond)
		vm.console.Write([]byte("login: ready\n"))
	}()
	if err := vm.WaitConsole(t.Context(), "ready"); err != nil {
		t.Errorf("WaitConsole for text printed later: %v", err)
	}
	if err := vm.WaitConsole(t.Context(), "booting"); err != nil {
		t.Errorf("WaitConsole for text printed before the call: %v", err)
	}
}
