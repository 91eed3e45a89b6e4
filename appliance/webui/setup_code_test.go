package webui

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/setupcode"
)

const testSetupCode = "K7QM-2XPA-9RTF"

// codeEnv returns an environment whose boot partition holds content as
// setup-code.txt; nil content means no such file.
func codeEnv(t *testing.T, content []byte) *wizardEnv {
	t.Helper()
	path := filepath.Join(t.TempDir(), "setup-code.txt")
	if content != nil {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return newWizardEnv(t, func(o *Options) { o.SetupCodeFile = path })
}

func TestSetupCodeRequired(t *testing.T) {
	env := codeEnv(t, []byte("\ufeff"+testSetupCode+"\r\n"))
	b := newBrowser(t, env.h, lanAddr)
	wantRedirect(t, b.get("/"), "/setup")
	for _, path := range []string{"/setup", "/setup/language", "/setup/owner", "/setup/members", "/setup/domain",
		"/setup/summary", "/setup/progress", "/setup/progress.json"} {
		wantRedirect(t, b.get(path), "/setup/code")
	}
	res := b.get("/setup/code")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "Step 1 of 10", `id="setup_code"`)
	for _, path := range []string{"/setup/language", "/setup/owner", "/setup/apply", "/setup/finish"} {
		b.get("/setup/code")
		wantRedirect(t, b.post(path, form("lang", "de", "name", "mallory", "password", ownerPassword, "password2", ownerPassword)), "/setup/code")
	}
	if _, err := env.accounts.UserByName(t.Context(), "mallory"); err == nil {
		t.Error("an owner was created without the setup code")
	}

	for _, lang := range []string{"de", "en"} {
		b := newBrowser(t, env.h, otherLANAddr)
		b.acceptLanguage = lang
		res := b.submit("/setup/code", "/setup/code", form("setup_code", ""))
		wantStatus(t, res, http.StatusUnprocessableEntity)
		wantBody(t, res, env.message(lang, "validate.setup_code.empty"), `id="setup_code-error"`)
		res = b.submit("/setup/code", "/setup/code", form("setup_code", "K7QM-2XPA-9RTX"))
		wantStatus(t, res, http.StatusUnprocessableEntity)
		wantBody(t, res, env.message(lang, "validate.setup_code.wrong"), `href="#setup_code"`)
		wantNotInBody(t, res, "9RTX", "9RTF")
	}

	// The code matches without its hyphens and in lowercase.
	wantRedirect(t, b.submit("/setup/code", "/setup/code", form("setup_code", " k7qm 2xpa9rtf ")), "/setup/language")
	wantStatus(t, b.get("/setup/language"), http.StatusOK)
	wantRedirect(t, b.get("/setup/code"), "/setup/language")
	walkWizard(t, b)

	// Another browser needs the code for itself.
	other := newBrowser(t, env.h, "192.168.1.30:4000")
	wantRedirect(t, other.get("/setup/summary"), "/setup/code")

	applyAndFinish(t, b)

	logs := env.logs.String()
	if strings.Contains(logs, "9RTF") || strings.Contains(logs, "9RTX") {
		t.Errorf("log contains a setup code:\n%s", logs)
	}
	if !strings.Contains(logs, "wrong setup code") {
		t.Errorf("log lacks the wrong setup codes:\n%s", logs)
	}
}

// TestSetupCodeThrottled checks that wrong codes slow down guessing as
// wrong passwords do: after the free attempts, even the right code waits.
func TestSetupCodeThrottled(t *testing.T) {
	env := codeEnv(t, []byte(testSetupCode))
	b := newBrowser(t, env.h, lanAddr)
	b.acceptLanguage = "de"
	for i := range 5 {
		res := b.submit("/setup/code", "/setup/code", form("setup_code", "WRONG-"+string(rune('A'+i))))
		wantStatus(t, res, http.StatusUnprocessableEntity)
	}
	res := b.submit("/setup/code", "/setup/code", form("setup_code", testSetupCode))
	wantStatus(t, res, http.StatusTooManyRequests)
	wantBody(t, res, "Zu viele falsche Codes. Warte 1 Sekunde")
	if res.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	wantRedirect(t, b.get("/setup/language"), "/setup/code")
}

func TestSetupCodeNotRequired(t *testing.T) {
	tests := []struct {
		name    string
		content []byte
	}{
		{"no file", nil},
		{"empty file", []byte(" \n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := codeEnv(t, tt.content)
			b := newBrowser(t, env.h, lanAddr)
			wantRedirect(t, b.get("/setup"), "/setup/language")
			wantRedirect(t, b.get("/setup/code"), "/setup/language")
			wantBody(t, b.get("/setup/language"), "Step 1 of 9")
		})
	}
	env := newTestEnv(t)
	wantRedirect(t, newBrowser(t, env.h, lanAddr).get("/setup"), "/setup/language")
}

func TestSetupCodeFileTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "setup-code.txt")
	if err := os.WriteFile(path, []byte(strings.Repeat("A", maxSetupCodeFile+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := newTestEnv(t)
	_, err := New(Options{Accounts: env.accounts, Setup: env.setup, SetupCodeFile: path})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("New with a %d-byte code file: got %v, want an error that names the file", maxSetupCodeFile+1, err)
	}
}

func TestNormalizeSetupCode(t *testing.T) {
	tests := []struct{ in, want string }{
		{"K7QM-2XPA-9RTF", "K7QM2XPA9RTF"},
		{"\ufeffk7qm 2xpa\t9rtf\r\n", "K7QM2XPA9RTF"},
		{"ß-ü", "ßÜ"},
		{" - ", ""},
	}
	for _, tt := range tests {
		if got := setupcode.Normalize(tt.in); got != tt.want {
			t.Errorf("setupcode.Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
