// Package controlapi is heimwolke-agent's side of the control API (package
// control): it reports the agent's status, stores the settings that the setup
// wizard sends, and handles update requests. The DNS and certificate work
// is done by the Jobs that it hands the settings to.
package controlapi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/heimwolke/heimwolke/packages/control"
)

// SettingsFile is the name of the settings file in Options.StateDir.
const SettingsFile = "settings.json"

// CodeNotImplemented is the control.Error code of a request for work that
// this version of the agent cannot do yet. It comes with 501 Not
// Implemented (RFC 9110 section 15.6.2).
const CodeNotImplemented = "not_implemented"

// Options configures an Agent.
type Options struct {
	// StateDir is the folder of the agent's persistent state, created with
	// mode 0700 when the first settings arrive. Required. On the box it is
	// /perm/heimwolke/agent.
	StateDir string

	// Version is the agent's version, as the status reports it.
	Version string

	// Logger receives the loading of settings and its errors, never the
	// DNS token. Nil means slog.Default().
	Logger *slog.Logger

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time

	// Jobs does the work that the settings ask for. Nil means none: the
	// agent only stores the settings.
	Jobs Jobs
}

// Jobs runs the agent's work for the settings, such as engine.Engine.
type Jobs interface {
	// Apply replaces the running work with the work of s; nil s means no
	// settings yet.
	Apply(s *control.Settings)
	// PublishRecords sets the DNS records that heimwolke's services need.
	PublishRecords(r control.ServiceRecords)
	// Fill adds the work's state to a status.
	Fill(st *control.Status)
}

// Agent implements control.Handler, control.SettingsHandler,
// control.SettingsReader, control.RecordsHandler and control.UpdateHandler. It is safe for concurrent use.
type Agent struct {
	stateDir string
	version  string
	log      *slog.Logger
	now      func() time.Time
	started  time.Time
	jobs     Jobs

	mu       sync.Mutex
	settings *control.Settings // nil until the wizard sends settings
}

// New returns an agent and loads the settings that an earlier run saved.
// Missing settings are normal before the setup. Unreadable or invalid ones
// are logged and ignored, so that the agent still serves its status, and the
// next settings from the wizard replace the file.
func New(opts Options) (*Agent, error) {
	if opts.StateDir == "" {
		return nil, errors.New("controlapi: Options.StateDir is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Agent{
		stateDir: opts.StateDir,
		version:  opts.Version,
		log:      opts.Logger,
		now:      opts.Now,
		started:  opts.Now(),
		jobs:     opts.Jobs,
	}
	a.loadSettings()
	if a.jobs != nil {
		a.jobs.Apply(a.settings)
	}
	return a, nil
}

func (a *Agent) settingsPath() string { return filepath.Join(a.stateDir, SettingsFile) }

func (a *Agent) loadSettings() {
	path := a.settingsPath()
	s, err := control.LoadSettings(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		a.log.Info("no settings yet; waiting for the setup wizard", "path", path)
	case err != nil:
		a.log.Error("ignoring the stored settings; the setup wizard must send them again", "path", path, "err", err)
	default:
		a.settings = &s
		a.log.Info("settings loaded", "path", path, "settings", s)
	}
}

// Settings returns the current settings, and false before the wizard sent
// any.
func (a *Agent) Settings() (control.Settings, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.settings == nil {
		return control.Settings{}, false
	}
	return *a.settings, true
}

// GetSettings returns the current settings for heimwolke's services, or
// control.ErrNoSettings before the wizard sent any.
func (a *Agent) GetSettings(ctx context.Context) (control.Settings, error) {
	s, ok := a.Settings()
	if !ok {
		return control.Settings{}, control.ErrNoSettings
	}
	return s, nil
}

// Status reports the agent's version and uptime, and the state of its
// jobs. Update stays nil because the agent does not install updates yet.
func (a *Agent) Status(ctx context.Context) (control.Status, error) {
	uptime := a.now().Sub(a.started)
	st := control.Status{
		Program:       "heimwolke-agent",
		Version:       a.version,
		StartedAt:     a.started,
		UptimeSeconds: int64(uptime / time.Second),
	}
	if a.jobs != nil {
		a.jobs.Fill(&st)
	}
	return st, nil
}

// PutSettings validates s and saves it to settings.json in the state
// folder, so that a power cut leaves either the old or the new file. The
// server has validated s already; the check here guards other callers.
func (a *Agent) PutSettings(ctx context.Context, s control.Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()

	if err := os.MkdirAll(a.stateDir, 0o700); err != nil {
		return fmt.Errorf("creating agent state folder: %w", err)
	}
	if err := control.SaveSettings(a.settingsPath(), s); err != nil {
		return err
	}
	a.settings = &s
	if a.jobs != nil {
		a.jobs.Apply(&s)
	}
	return nil
}

// PutRecords hands the services' DNS records to the jobs, which publish
// and check them. Without jobs it rejects them with 501.
func (a *Agent) PutRecords(ctx context.Context, r control.ServiceRecords) error {
	if a.jobs == nil {
		return &control.Error{StatusCode: http.StatusNotImplemented, Code: CodeNotImplemented, Message: "this agent publishes no DNS records"}
	}
	a.jobs.PublishRecords(r)
	return nil
}

// Update rejects the request with 501 Not Implemented, because this
// version of the agent cannot install updates.
func (a *Agent) Update(ctx context.Context) error {
	return &control.Error{
		StatusCode: http.StatusNotImplemented,
		Code:       CodeNotImplemented,
		Message:    "over-the-air updates are not available in heimwolke-agent " + a.version + " yet; install a newer image by hand",
	}
}

// Serve serves the control API on socketPath until ctx is canceled; see
// control.Server.Serve.
func (a *Agent) Serve(ctx context.Context, socketPath string) error {
	return control.NewServer(a, a.log).Serve(ctx, socketPath)
}
