package webui

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/control"
)

// TestApplyAgentDown checks the page when no agent listens on the control
// socket: it shows the reason and the next action, a retry works once the
// agent is back, and every entry is still there.
func TestApplyAgentDown(t *testing.T) {
	for _, lang := range []string{"de", "en"} {
		t.Run(lang, func(t *testing.T) {
			socket := filepath.Join(t.TempDir(), "agent.sock")
			env := newWizardEnv(t, func(o *Options) { o.AgentSocket = socket })
			b := newBrowser(t, env.h, lanAddr)
			walkWizard(t, b)
			wantRedirect(t, b.submit("/setup/language", "/setup/language", form("lang", lang)), "/setup/owner")

			wantRedirect(t, b.submit("/setup/summary", "/setup/apply", form()), "/setup/progress")
			res := b.get("/setup/progress")
			wantStatus(t, res, http.StatusOK)
			wantBody(t, res, env.message(lang, "setup.progress.agent.down"), `id="retry"`,
				`class="card done" id="progress-accounts"`,
				`class="card failed" id="progress-settings"`, `class="card blocked" id="progress-dns"`)
			wantNotInBody(t, res, `id="finish"`)
			if res.header.Get("Refresh") != "" {
				t.Errorf("Refresh header %q on a page that waits for the household, want none", res.header.Get("Refresh"))
			}
			report := progressOf(t, b)
			if report.CanFinish || !report.CanRetry {
				t.Errorf("report: can finish %v, can retry %v; want false, true", report.CanFinish, report.CanRetry)
			}
			if env.setup.Complete() {
				t.Fatal("setup complete without the agent")
			}
			if _, err := env.accounts.UserByName(context.Background(), "ben"); err != nil {
				t.Errorf("member after the first apply: %v", err)
			}

			// Every entry is kept, and the accounts are not created twice.
			wantBody(t, b.get("/setup/domain"), `value="familie-mueller.de"`, `id="hetzner_token-saved"`)
			wantBody(t, b.get("/setup/owner"), `id="accounts-locked"`)
			wantBody(t, b.get("/setup/summary"), "smtp.example.net:587", "Ben (ben)")

			agent := startTestAgent(t, socket)
			wantRedirect(t, b.submit("/setup/progress", "/setup/apply", form()), "/setup/progress")
			if !progressOf(t, b).CanFinish {
				t.Fatal("cannot finish after the agent took the settings")
			}
			if got := agent.received(); len(got) != 1 || got[0].DNS.Token != hetznerToken || got[0].Language != lang {
				t.Errorf("agent received %+v, want one document with the kept token in %s", got, lang)
			}
			wantRedirect(t, b.submit("/setup/progress", "/setup/finish", form()), "/account?notice=setup_done")
			if !env.setup.Complete() {
				t.Error("setup not complete after finish")
			}
		})
	}
}

// TestApplyAgentErrors checks the message for each way the agent can turn
// the settings down.
func TestApplyAgentErrors(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		key     string
		detail  string
		fixPath string
	}{
		{"invalid field", &control.ValidationError{Problems: []control.Problem{{Field: "mail.smarthost.host", Message: "host not found in DNS"}}},
			"setup.progress.agent.invalid", "mail.smarthost.host: host not found in DNS", "/setup/mail"},
		{"busy", control.ErrBusy, "setup.progress.agent.busy", "", ""},
		{"internal", errors.New("disk full"), "setup.progress.agent.failed", "internal error; see the program&#39;s log", ""},
		{"other version", &control.Error{StatusCode: http.StatusBadRequest, Code: control.CodeUnsupportedSchema, Message: "schema 2"},
			"setup.progress.agent.version", "schema 2", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			env.agent.rejectWith(tt.err)
			b := newBrowser(t, env.h, lanAddr)
			walkWizard(t, b)
			wantRedirect(t, b.submit("/setup/summary", "/setup/apply", form()), "/setup/progress")
			res := b.get("/setup/progress")
			wantBody(t, res, env.message("de", tt.key), `class="card failed" id="progress-settings"`)
			wantNotInBody(t, res, "disk full", `id="finish"`)
			if tt.detail != "" {
				wantBody(t, res, `<code id="progress-settings-detail">`+tt.detail+`</code>`)
			}
			if tt.fixPath != "" {
				wantBody(t, res, `<a href="`+tt.fixPath+`" id="fix-settings">`)
			}
			if env.setup.Complete() {
				t.Error("setup complete although the agent turned the settings down")
			}
		})
	}
}

func TestApplyNeedsCSRFAndLAN(t *testing.T) {
	env := newTestEnv(t)
	b := newBrowser(t, env.h, lanAddr)
	walkWizard(t, b)
	b.get("/setup/summary")
	wantStatus(t, b.post("/setup/apply", form("csrf", "forged")), http.StatusForbidden)
	wantStatus(t, newBrowser(t, env.h, internetAddr).get("/setup/progress"), http.StatusForbidden)
	if got := len(env.agent.received()); got != 0 {
		t.Errorf("agent received %d settings after forged and outside requests, want 0", got)
	}
}

// TestFinishNeedsApply guards against finishing a setup whose settings
// never reached the agent.
func TestFinishNeedsApply(t *testing.T) {
	env := newTestEnv(t)
	env.agent.rejectWith(control.ErrBusy)
	b := newBrowser(t, env.h, lanAddr)
	walkWizard(t, b)
	b.get("/setup/summary")
	wantRedirect(t, b.post("/setup/finish", form()), "/setup/progress")
	wantRedirect(t, b.submit("/setup/summary", "/setup/apply", form()), "/setup/progress")
	wantRedirect(t, b.submit("/setup/progress", "/setup/finish", form()), "/setup/progress")
	if env.setup.Complete() {
		t.Error("setup complete before the agent took the settings")
	}
}

// TestSecretsNeverLogged runs the whole wizard with debug logging and a
// failed first apply, and looks for every secret in the log.
func TestSecretsNeverLogged(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "agent.sock")
	env := newWizardEnv(t, func(o *Options) { o.AgentSocket = socket })
	b := newBrowser(t, env.h, lanAddr)
	walkWizard(t, b)
	wantRedirect(t, b.submit("/setup/summary", "/setup/apply", form()), "/setup/progress")
	startTestAgent(t, socket)
	wantRedirect(t, b.submit("/setup/progress", "/setup/apply", form()), "/setup/progress")
	wantRedirect(t, b.submit("/setup/progress", "/setup/finish", form()), "/account?notice=setup_done")

	logs := env.logs.String()
	for _, secret := range []string{hetznerToken, smarthostPass, ownerPassword, memberPassword} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains the secret %q:\n%s", secret, logs)
		}
	}
	for _, event := range []string{"sending setup settings to the agent failed", "setup settings sent to the agent", "setup completed"} {
		if !strings.Contains(logs, event) {
			t.Errorf("log lacks %q:\n%s", event, logs)
		}
	}
}
