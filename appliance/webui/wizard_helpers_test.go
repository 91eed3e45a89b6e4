package webui

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/authlimit"
	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// testAgent is a control API handler like heimwolke-agent's, served by a
// real control.Server on a Unix socket. It records the settings it receives
// and reports the status that a test sets.
type testAgent struct {
	socket string

	mu       sync.Mutex
	settings []control.Settings
	status   control.Status
	// putErr, when set, is what PutSettings returns.
	putErr error
	// served, when set, is what GetSettings returns in place of the
	// settings received last.
	served *control.Settings
}

func (a *testAgent) Status(ctx context.Context) (control.Status, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.status
	s.Program = "heimwolke-agent"
	return s, nil
}

func (a *testAgent) PutSettings(ctx context.Context, s control.Settings) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.putErr != nil {
		return a.putErr
	}
	a.settings = append(a.settings, s)
	return nil
}

// GetSettings returns the settings received last, as the agent serves
// them to heimwolke, or control.ErrNoSettings before the first.
func (a *testAgent) GetSettings(ctx context.Context) (control.Settings, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.served != nil {
		return *a.served, nil
	}
	if len(a.settings) == 0 {
		return control.Settings{}, control.ErrNoSettings
	}
	return a.settings[len(a.settings)-1], nil
}

// serveSettings makes GetSettings return s from now on.
func (a *testAgent) serveSettings(s control.Settings) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.served = &s
}

// received returns the settings received so far.
func (a *testAgent) received() []control.Settings {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]control.Settings(nil), a.settings...)
}

func (a *testAgent) setStatus(s control.Status) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status = s
}

func (a *testAgent) rejectWith(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.putErr = err
}

// startTestAgent serves a testAgent on socket until the test ends.
func startTestAgent(t *testing.T, socket string) *testAgent {
	t.Helper()
	a := &testAgent{socket: socket}
	stop := serveTestAgent(t, a)
	t.Cleanup(stop)
	return a
}

// serveTestAgent serves a on its socket and returns the function that
// stops it, which also removes the socket file.
func serveTestAgent(t *testing.T, a *testAgent) (stop func()) {
	t.Helper()
	srv := control.NewServer(a, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, a.socket) }()

	for range 200 {
		if conn, err := net.Dial("unix", a.socket); err == nil {
			conn.Close()
			return func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("test agent stopped with %v", err)
				}
			}
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("test agent on %s: %v", a.socket, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	t.Fatalf("test agent socket %s not accepting connections after 2 s", a.socket)
	return nil
}

// wizardEnv is a testEnv with options of its own and a log buffer.
type wizardEnv struct {
	*testEnv
	logs *syncBuffer
}

type syncBuffer = testpeer.Buffer

// newWizardEnv builds a handler whose agent runs on a socket in a
// temporary folder and whose log goes to a buffer at debug level.
// configure may change the options before the handler is made.
func newWizardEnv(t *testing.T, configure func(*Options)) *wizardEnv {
	t.Helper()
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "heimwolke.db")
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	start := time.Now()
	limiter := authlimit.New(authlimit.Config{Now: func() time.Time { return start }})

	store, err := accounts.Open(ctx, dbPath, accounts.Options{Logger: logger, Limiter: limiter, Argon2: cheapArgon2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	setup, err := OpenSetupState(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { setup.Close() })

	agent := startTestAgent(t, filepath.Join(t.TempDir(), "agent.sock"))
	opts := Options{Accounts: store, Setup: setup, Limiter: limiter, Logger: logger, Version: "v1.2.3-test", AgentSocket: agent.socket}
	if configure != nil {
		configure(&opts)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &wizardEnv{
		testEnv: &testEnv{h: h, accounts: store, setup: setup, dbPath: dbPath, agent: agent},
		logs:    logs,
	}
}

// Secrets that walkWizard enters.
const (
	hetznerToken  = "hZ8kQ2mV7xN4pR9sT1uW3yA6bC5dE0fG2hJ4kL6mN8pQ0rS2tU4vW6xY8zA0bC2d"
	smarthostPass = "relay secret 7431"
)

// walkWizard fills in every step of the wizard in German, up to the
// summary: the owner "anna", the member "ben", the domain
// familie-mueller.de at Hetzner DNS, port mapping, a smarthost, every
// service and stable updates at 4 a.m.
func walkWizard(t *testing.T, b *browser) {
	t.Helper()
	wantRedirect(t, b.submit("/setup/language", "/setup/language", form("lang", "de")), "/setup/owner")
	wantRedirect(t, b.submit("/setup/owner", "/setup/owner", form(
		"name", "anna", "display_name", "Anna Müller", "password", ownerPassword, "password2", ownerPassword)), "/setup/members")
	wantRedirect(t, b.submit("/setup/members", "/setup/members", form(
		"action", "add", "name", "ben", "display_name", "Ben", "password", memberPassword, "password2", memberPassword, "language", "en")), "/setup/members")
	wantRedirect(t, b.submit("/setup/members", "/setup/members", form("action", "next")), "/setup/domain")
	walkLaterSteps(t, b)
}

// walkLaterSteps fills in the steps from domain to updates, as walkWizard
// describes, and ends on the way to the summary.
func walkLaterSteps(t *testing.T, b *browser) {
	t.Helper()
	wantRedirect(t, b.submit("/setup/domain", "/setup/domain", form(
		"domain", "familie-mueller.de", "domain_mode", "hetzner", "hetzner_token", hetznerToken)), "/setup/router")
	wantRedirect(t, b.submit("/setup/router", "/setup/router", form("port_mapping", "on")), "/setup/mail")
	wantRedirect(t, b.submit("/setup/mail", "/setup/mail", form(
		"mail_mode", "smarthost", "smarthost_host", "smtp.example.net", "smarthost_port", "587", "smarthost_tls", "starttls",
		"smarthost_user", "anna@example.net", "smarthost_password", smarthostPass)), "/setup/services")
	wantRedirect(t, b.submit("/setup/services", "/setup/services", form(
		"service_website", "on", "service_mail", "on", "service_calendar_contacts", "on", "service_files", "on", "service_chat", "on")), "/setup/updates")
	wantRedirect(t, b.submit("/setup/updates", "/setup/updates", form("channel", "stable", "hour", "4")), "/setup/summary")
}

// applyAndFinish presses the summary's button and then "finish" on the
// progress page, and returns after the owner is logged in. Some handlers
// have an agent that does not take settings, as in the admin dashboard's
// tests of a missing or failing agent. For them the helper presses "try
// again" with a test agent in its place and then puts the handler's agent
// back.
func applyAndFinish(t *testing.T, b *browser) {
	t.Helper()
	h, ok := b.h.(*Handler)
	if !ok {
		t.Fatalf("browser talks to a %T, want *Handler", b.h)
	}
	wantRedirect(t, b.submit("/setup/summary", "/setup/apply", form()), "/setup/progress")
	if !progressOf(t, b).CanFinish {
		stand := startTestAgent(t, filepath.Join(t.TempDir(), "stand-in.sock"))
		own := h.wizard.agent
		h.wizard.agent = control.NewClient(stand.socket)
		defer func() { h.wizard.agent = own }()
		wantRedirect(t, b.submit("/setup/progress", "/setup/apply", form()), "/setup/progress")
	}
	wantRedirect(t, b.submit("/setup/progress", "/setup/finish", form()), "/account?notice=setup_done")
}

// progressOf returns the progress report that /setup/progress.json serves
// to b.
func progressOf(t *testing.T, b *browser) progressReport {
	t.Helper()
	res := b.get("/setup/progress.json")
	wantStatus(t, res, http.StatusOK)
	var report progressReport
	if err := json.Unmarshal([]byte(res.body), &report); err != nil {
		t.Fatalf("decoding /setup/progress.json: %v; body:\n%s", err, res.body)
	}
	return report
}
