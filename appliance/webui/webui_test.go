package webui

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/authlimit"
)

// Addresses the tests connect from. 203.0.113.0/24 is TEST-NET-3 (RFC
// 5737), which stands for the internet here.
const (
	lanAddr      = "192.168.1.20:50000"
	otherLANAddr = "192.168.1.21:50000"
	internetAddr = "203.0.113.5:50000"
)

// cheapArgon2 keeps the tests fast; the cost does not change what they
// check.
var cheapArgon2 = accounts.Argon2Params{Memory: 64, Time: 1, Threads: 1}

// testEnv is a Handler on its own database in a temporary folder.
type testEnv struct {
	h        *Handler
	accounts *accounts.Store
	setup    *SetupState
	dbPath   string
	agent    *testAgent // the control API server that the wizard sends to
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "heimwolke.db")
	logger := slog.New(slog.DiscardHandler)
	// The throttle's clock is frozen, so that a wait never runs out while
	// a slow machine runs a brute-force test.
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
	h, err := New(Options{Accounts: store, Setup: setup, Limiter: limiter, Logger: logger, Version: "v1.2.3-test", AgentSocket: agent.socket})
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{h: h, accounts: store, setup: setup, dbPath: dbPath, agent: agent}
}

// browser is a client with a cookie jar that sends requests straight to a
// handler, from a chosen source address.
type browser struct {
	t              *testing.T
	h              http.Handler
	remoteAddr     string
	tls            bool
	acceptLanguage string
	cookies        map[string]*http.Cookie

	// last is the body of the last response, where csrf finds the token.
	last string
}

func newBrowser(t *testing.T, h http.Handler, remoteAddr string) *browser {
	return &browser{t: t, h: h, remoteAddr: remoteAddr, cookies: map[string]*http.Cookie{}}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, body io.Reader) response {
	b.t.Helper()
	req := httptest.NewRequest(method, path, body)
	req.RemoteAddr = b.remoteAddr
	if b.tls {
		req.TLS = &tls.ConnectionState{}
	}
	if b.acceptLanguage != "" {
		req.Header.Set("Accept-Language", b.acceptLanguage)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, c := range b.cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}

	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	res := rec.Result()
	for _, c := range res.Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	out, _ := io.ReadAll(res.Body)
	b.last = string(out)
	return response{status: res.StatusCode, header: res.Header, body: string(out)}
}

func (b *browser) get(path string) response {
	b.t.Helper()
	return b.do(http.MethodGet, path, nil)
}

// post sends form with the CSRF token of the last page, unless form has
// one already.
func (b *browser) post(path string, form url.Values) response {
	b.t.Helper()
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf())
	}
	return b.do(http.MethodPost, path, strings.NewReader(form.Encode()))
}

// submit loads page and posts form to action with its CSRF token.
func (b *browser) submit(page, action string, form url.Values) response {
	b.t.Helper()
	if res := b.get(page); res.status != http.StatusOK {
		b.t.Fatalf("GET %s: status %d, want 200", page, res.status)
	}
	return b.post(action, form)
}

var csrfPattern = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) csrf() string {
	m := csrfPattern.FindStringSubmatch(b.last)
	if m == nil {
		return ""
	}
	return m[1]
}

// wantRedirect fails unless res is a 303 to location.
func wantRedirect(t *testing.T, res response, location string) {
	t.Helper()
	if res.status != http.StatusSeeOther || res.header.Get("Location") != location {
		t.Fatalf("got status %d to %q, want 303 to %q; body:\n%s", res.status, res.header.Get("Location"), location, res.body)
	}
}

func wantStatus(t *testing.T, res response, status int) {
	t.Helper()
	if res.status != status {
		t.Fatalf("got status %d, want %d; body:\n%s", res.status, status, res.body)
	}
}

func wantBody(t *testing.T, res response, texts ...string) {
	t.Helper()
	for _, text := range texts {
		if !strings.Contains(res.body, text) {
			t.Errorf("body lacks %q; body:\n%s", text, res.body)
		}
	}
}

func wantNotInBody(t *testing.T, res response, texts ...string) {
	t.Helper()
	for _, text := range texts {
		if strings.Contains(res.body, text) {
			t.Errorf("body contains %q, want it absent; body:\n%s", text, res.body)
		}
	}
}

// form builds url.Values from name and value pairs.
func form(pairs ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		v.Add(pairs[i], pairs[i+1])
	}
	return v
}

const (
	ownerPassword  = "korrekt pferd batterie"
	memberPassword = "heftklammer im regal"
)

// completeSetup runs the wizard in b with the owner "anna" and the member
// "ben", and returns after the owner is logged in.
func completeSetup(t *testing.T, b *browser) {
	t.Helper()
	walkWizard(t, b)
	applyAndFinish(t, b)
}

// setupDone returns a test environment whose setup is complete, with the
// owner "anna" and the member "ben".
func setupDone(t *testing.T) *testEnv {
	t.Helper()
	env := newTestEnv(t)
	completeSetup(t, newBrowser(t, env.h, lanAddr))
	return env
}

// logIn logs b in and fails the test unless that works.
func logIn(t *testing.T, b *browser, name, password string) {
	t.Helper()
	res := b.submit("/login", "/login", form("login_name", name, "login_password", password))
	wantRedirect(t, res, "/account")
}
