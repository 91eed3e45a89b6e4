package controlapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

var quiet = slog.New(slog.DiscardHandler)

func validSettings() control.Settings {
	return control.Settings{
		SchemaVersion: control.SchemaVersion,
		Domain:        "example.org",
		Language:      "de",
		DNS:           control.DNSSettings{Provider: "desec", Hostname: "box.example.org", Token: "s3cret-token"},
		ACME:          control.ACMESettings{Email: "admin@example.org"},
		Updates:       control.UpdateSettings{Automatic: true, Channel: "stable", Hour: 4},
	}
}

// running is an Agent serving on a Unix socket in a temporary folder.
type running struct {
	agent  *Agent
	socket string
	client *control.Client
	stop   func() error
}

// start serves a new Agent on stateDir until stop is called or the test
// ends.
func start(t *testing.T, stateDir string, opts Options) *running {
	t.Helper()
	opts.StateDir = stateDir
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	agent, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	socket := filepath.Join(t.TempDir(), "control.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Serve(ctx, socket) }()

	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return 10 s after its context was canceled")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	waitForSocket(t, socket, done)
	return &running{agent: agent, socket: socket, client: control.NewClient(socket), stop: stop}
}

func waitForSocket(t *testing.T, socket string, done chan error) {
	t.Helper()
	for range 500 {
		select {
		case err := <-done:
			t.Fatalf("Serve returned early: %v", err)
		default:
		}
		if conn, err := net.Dial("unix", socket); err == nil {
			conn.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("socket %s not accepting connections after 5 s", socket)
}

func TestSettingsSurviveRestart(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "agent") // created on the first PUT
	first := start(t, stateDir, Options{Version: "1.0.0"})
	if _, ok := first.agent.Settings(); ok {
		t.Fatal("Settings before any PUT: got settings, want none")
	}

	want := validSettings()
	if err := first.client.PutSettings(context.Background(), want); err != nil {
		t.Fatalf("PutSettings: %v", err)
	}
	if got, ok := first.agent.Settings(); !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("Settings after PUT = %+v, %v; want %+v", got, ok, want)
	}
	if err := first.stop(); err != nil {
		t.Fatalf("Serve after cancel: got %v, want nil", err)
	}
	if _, err := os.Lstat(first.socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after shutdown: Lstat returned %v, want it removed", err)
	}

	info, err := os.Stat(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o700 {
		t.Errorf("state folder mode: got %o, want 700", mode)
	}
	info, err = os.Stat(filepath.Join(stateDir, SettingsFile))
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("settings file mode: got %o, want 600", mode)
	}

	second := start(t, stateDir, Options{Version: "1.0.1"})
	got, ok := second.agent.Settings()
	if !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("Settings after restart = %+v, %v; want %+v", got, ok, want)
	}
	status, err := second.client.Status(context.Background())
	if err != nil || status.Version != "1.0.1" {
		t.Errorf("Status after restart = %+v, %v; want version 1.0.1", status, err)
	}
}

func TestStatusReportsUptime(t *testing.T) {
	started := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	now := started
	a := start(t, t.TempDir(), Options{Version: "2.3.4", Now: func() time.Time { return now }})
	now = started.Add(90*time.Minute + 500*time.Millisecond)

	got, err := a.client.Status(context.Background())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	want := control.Status{Program: "heimwolke-agent", Version: "2.3.4", StartedAt: started, UptimeSeconds: 5400}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Status() = %+v, want %+v", got, want)
	}
}

func TestUpdateNotImplemented(t *testing.T) {
	a := start(t, t.TempDir(), Options{Version: "1.0.0"})
	err := a.client.Update(context.Background())
	var apiErr *control.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("Update: got %v, want *control.Error", err)
	}
	if apiErr.StatusCode != http.StatusNotImplemented || apiErr.Code != CodeNotImplemented {
		t.Errorf("Update: got %d %q, want 501 %q", apiErr.StatusCode, apiErr.Code, CodeNotImplemented)
	}
}

func TestPutSettingsRejectsInvalid(t *testing.T) {
	stateDir := t.TempDir()
	a := start(t, stateDir, Options{})
	s := validSettings()
	s.Updates.Hour = 24
	err := a.client.PutSettings(context.Background(), s)
	var apiErr *control.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("PutSettings with hour 24: got %v, want *control.Error 422", err)
	}
	if _, err := os.Stat(filepath.Join(stateDir, SettingsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("settings file after a rejected PUT: Stat returned %v, want no file", err)
	}

	// A caller that bypasses the server gets the same check.
	if err := a.agent.PutSettings(context.Background(), s); err == nil {
		t.Error("Agent.PutSettings with hour 24: got nil, want an error")
	}
}

// TestBrokenSettingsIgnored guards against an agent that stops serving its
// status because a settings file on /perm is damaged.
func TestBrokenSettingsIgnored(t *testing.T) {
	stateDir := t.TempDir()
	path := filepath.Join(stateDir, SettingsFile)
	if err := os.WriteFile(path, []byte(`{"schema_version": 1, "domain": `), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	a := start(t, stateDir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if _, ok := a.agent.Settings(); ok {
		t.Error("Settings from a truncated file: got settings, want none")
	}
	if !strings.Contains(logs.String(), "ignoring the stored settings") {
		t.Errorf("log lacks the ignored settings; log:\n%s", logs.String())
	}
	if _, err := a.client.Status(context.Background()); err != nil {
		t.Errorf("Status with broken settings: %v", err)
	}

	if err := a.client.PutSettings(context.Background(), validSettings()); err != nil {
		t.Fatalf("PutSettings over a broken file: %v", err)
	}
	if _, err := control.LoadSettings(path); err != nil {
		t.Errorf("LoadSettings after the PUT: %v", err)
	}
}

func TestSettingsLoggedWithoutToken(t *testing.T) {
	stateDir := t.TempDir()
	var logs strings.Builder
	a := start(t, stateDir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := a.client.PutSettings(context.Background(), validSettings()); err != nil {
		t.Fatal(err)
	}
	a.stop()
	start(t, stateDir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "settings loaded") {
		t.Errorf("log lacks the loaded settings; log:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "s3cret-token") {
		t.Errorf("log contains the DNS token; log:\n%s", logs.String())
	}
}

func TestNewRequiresStateDir(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without StateDir: got nil, want an error")
	}
}

// TestControlAPIWithCurl drives the agent with curl, an HTTP client that
// shares no code with package control.
func TestControlAPIWithCurl(t *testing.T) {
	curl := testpeer.Require(t, "curl", "curl")
	stateDir := t.TempDir()
	a := start(t, stateDir, Options{Version: "3.1.4"})

	body, err := json.Marshal(validSettings())
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", a.socket,
		"-X", "PUT", "-H", "Content-Type: application/json", "--data-binary", string(body),
		"http://localhost"+control.PathSettings).Output()
	if err != nil {
		t.Fatalf("curl PUT %s: %v", control.PathSettings, err)
	}
	if string(out) != "204" {
		t.Errorf("curl PUT %s: got status %s, want 204", control.PathSettings, out)
	}
	if _, err := control.LoadSettings(filepath.Join(stateDir, SettingsFile)); err != nil {
		t.Errorf("LoadSettings after curl PUT: %v", err)
	}

	out, err = exec.Command(curl, "-sS", "--fail", "--unix-socket", a.socket, "http://localhost"+control.PathStatus).Output()
	if err != nil {
		t.Fatalf("curl GET %s: %v", control.PathStatus, err)
	}
	var status map[string]any
	if err := json.Unmarshal(out, &status); err != nil {
		t.Fatalf("status %q is not JSON: %v", out, err)
	}
	if status["program"] != "heimwolke-agent" || status["version"] != "3.1.4" {
		t.Errorf("status: got %s, want program heimwolke-agent and version 3.1.4", out)
	}
	for _, key := range []string{"dns", "certificate", "update"} {
		if _, ok := status[key]; ok {
			t.Errorf("status %s has %q, want it left out until the agent does that work", out, key)
		}
	}

	out, err = exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", a.socket,
		"-X", "POST", "http://localhost"+control.PathUpdate).Output()
	if err != nil {
		t.Fatalf("curl POST %s: %v", control.PathUpdate, err)
	}
	if string(out) != "501" {
		t.Errorf("curl POST %s: got status %s, want 501", control.PathUpdate, out)
	}
}

// TestGetSettings checks that heimwolke can read the settings back over
// the socket, secrets included, and gets no_settings before the setup.
func TestGetSettings(t *testing.T) {
	r := start(t, filepath.Join(t.TempDir(), "agent"), Options{Version: "1.0.0"})
	_, err := r.client.GetSettings(context.Background())
	var cerr *control.Error
	if !errors.As(err, &cerr) || cerr.StatusCode != 404 || cerr.Code != control.CodeNoSettings {
		t.Fatalf("GetSettings before any PUT: err = %v, want 404 %s", err, control.CodeNoSettings)
	}

	want := validSettings()
	if err := r.client.PutSettings(context.Background(), want); err != nil {
		t.Fatalf("PutSettings: %v", err)
	}
	got, err := r.client.GetSettings(context.Background())
	if err != nil {
		t.Fatalf("GetSettings: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetSettings = %+v, want %+v", got, want)
	}
}
