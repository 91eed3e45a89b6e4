package webui

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGokrazy serves POST /reboot on a Unix socket the way gokrazy's
// powerHandler does: it checks the method and, like a gokrazy that is
// stopping the programs, holds the request until release is closed.
type fakeGokrazy struct {
	socket  string
	release chan struct{}

	mu       sync.Mutex
	requests []string // "METHOD PATH?QUERY FORM"
}

func startFakeGokrazy(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, g *fakeGokrazy)) *fakeGokrazy {
	t.Helper()
	g := &fakeGokrazy{socket: filepath.Join(t.TempDir(), "gokrazy-http.sock"), release: make(chan struct{})}
	ln, err := net.Listen("unix", g.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		g.mu.Lock()
		g.requests = append(g.requests, r.Method+" "+r.URL.RequestURI()+" "+r.PostForm.Encode())
		g.mu.Unlock()
		handle(w, r, g)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		g.finish()
		srv.Close()
	})
	return g
}

// finish lets held requests reply, as gokrazy does once every program has
// stopped.
func (g *fakeGokrazy) finish() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.release:
	default:
		close(g.release)
	}
}

func (g *fakeGokrazy) seen() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.requests...)
}

// stoppingPrograms is gokrazy without async=true: the reply comes after
// every program has stopped, which here is never during the test.
func stoppingPrograms(w http.ResponseWriter, r *http.Request, g *fakeGokrazy) {
	if r.Method != http.MethodPost {
		http.Error(w, "expected a POST request", http.StatusBadRequest)
		return
	}
	select {
	case <-g.release:
	case <-r.Context().Done():
	}
}

func TestGokrazyRebooterStartsReboot(t *testing.T) {
	g := startFakeGokrazy(t, stoppingPrograms)
	logs := &lockedBuffer{}
	rebooter := &GokrazyRebooter{SocketPath: g.socket, Wait: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if !rebooter.Available() {
		t.Fatal("Available with gokrazy's socket: got false, want true")
	}

	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	err := rebooter.Reboot(ctx)
	// The request must survive the end of the page request that started
	// it.
	cancel()
	if err != nil {
		t.Fatalf("Reboot: %v", err)
	}
	if elapsed := time.Since(start); elapsed < 200*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("Reboot returned after %v, want after the 200 ms wait", elapsed)
	}
	time.Sleep(100 * time.Millisecond)
	if got, want := g.seen(), []string{"POST /reboot "}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("gokrazy saw %q, want %q (no async=true)", got, want)
	}
	if strings.Contains(logs.String(), "reboot request failed") {
		t.Errorf("log after the page request ended: %s", logs.String())
	}

	// Normally heimwolke ends before gokrazy replies. If it does not, the
	// late reply is logged.
	g.finish()
	for range 500 {
		if strings.Contains(logs.String(), "gokrazy accepted the reboot") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("log lacks the late reply 5 s after it came; log:\n%s", logs.String())
}

// lockedBuffer is a strings.Builder for a logger in another goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestGokrazyRebooterRejected(t *testing.T) {
	g := startFakeGokrazy(t, func(w http.ResponseWriter, r *http.Request, g *fakeGokrazy) {
		http.Error(w, "httpPassword not set and request from unexpected address", http.StatusInternalServerError)
	})
	rebooter := &GokrazyRebooter{SocketPath: g.socket, Wait: 5 * time.Second}
	start := time.Now()
	err := rebooter.Reboot(context.Background())
	if err == nil || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "unexpected address") {
		t.Errorf("Reboot against a rejecting gokrazy: got %v, want an error with status 500 and gokrazy's message", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Reboot took %v, want it to return as soon as gokrazy rejects", elapsed)
	}
}

func TestGokrazyRebooterWithoutGokrazy(t *testing.T) {
	missing := &GokrazyRebooter{SocketPath: filepath.Join(t.TempDir(), "gokrazy-http.sock")}
	if missing.Available() {
		t.Error("Available without a socket: got true, want false")
	}
	if err := missing.Reboot(context.Background()); err == nil {
		t.Error("Reboot without a socket: got nil, want an error")
	}

	file := filepath.Join(t.TempDir(), "gokrazy-http.sock")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if (&GokrazyRebooter{SocketPath: file}).Available() {
		t.Error("Available with a regular file: got true, want false")
	}
}

// TestRebootThroughGokrazySocket runs the admin page's reboot with the
// default Rebooter pointed at a fake gokrazy.
func TestRebootThroughGokrazySocket(t *testing.T) {
	g := startFakeGokrazy(t, stoppingPrograms)
	env := newAdminEnv(t, func(o *Options) {
		o.Rebooter = &GokrazyRebooter{SocketPath: g.socket, Wait: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	})
	env.owner.get("/admin")
	wantStatus(t, env.owner.post("/admin/reboot", form()), http.StatusOK)
	if got := g.seen(); len(got) != 0 {
		t.Fatalf("gokrazy saw %q before the confirmation, want nothing", got)
	}
	res := env.owner.post("/admin/reboot", form("confirm", "yes"))
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "Die Box startet neu")
	if got := g.seen(); len(got) != 1 || !strings.HasPrefix(got[0], "POST /reboot") {
		t.Errorf("gokrazy saw %q, want one POST /reboot", got)
	}
}
