package dav

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/webui"
	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/sqlitedb"
)

var cheapArgon2 = accounts.Argon2Params{Memory: 64, Time: 1, Threads: 1}

// testServer is a Handler behind webui.BasicAuth on plain HTTP at
// 127.0.0.1, with users whose app passwords cover the DAV scope.
type testServer struct {
	URL       string
	passwords map[string]string // login name to app password
	db        *sql.DB
	handler   *Handler
}

func newTestServer(t testing.TB, logins ...string) *testServer {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	// Warnings and errors always reach the test log, so that a 500 in a
	// test or benchmark shows its cause.
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: level}))

	store, err := accounts.Open(ctx, filepath.Join(dir, "accounts.db"), accounts.Options{Logger: logger, Argon2: cheapArgon2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	db, err := sqlitedb.Open(ctx, filepath.Join(dir, "dav.db"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	ts := &testServer{passwords: map[string]string{}, db: db}
	for i, login := range logins {
		nu := accounts.NewUser{Name: login, Password: "correct horse battery staple " + login, Language: accounts.LanguageGerman}
		create := store.CreateMember
		if i == 0 {
			create = store.CreateOwner
		}
		u, err := create(ctx, nu)
		if err != nil {
			t.Fatal(err)
		}
		secret, _, err := store.CreateAppPassword(ctx, u.ID, "test", accounts.ScopeDAV)
		if err != nil {
			t.Fatal(err)
		}
		ts.passwords[login] = secret
	}

	h, err := New(ctx, Options{DB: db, MaxObjectSize: 1 << 20, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ts.handler = h
	auth := webui.BasicAuth(webui.BasicAuthOptions{Accounts: store, Scope: accounts.ScopeDAV, Protocol: "dav", Logger: logger}, h)
	// No ServeMux in front, so that paths with ".." reach the handler
	// uncleaned, as they would behind a proxy.
	srv := httptest.NewServer(auth)
	t.Cleanup(srv.Close)
	ts.URL = srv.URL
	return ts
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// response is what do returns: status, headers and body.
type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request as login and returns the response.
func (ts *testServer) do(t testing.TB, login, method, path, body string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(login, ts.passwords[login])
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// wantStatus fails the test unless r has the status want.
func wantStatus(t testing.TB, step string, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: got status %d, want %d; body: %s", step, r.status, want, r.body)
	}
}

const testEvent = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Heimwolke//Test//EN\r\n" +
	"BEGIN:VEVENT\r\nUID:%s\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:%s\r\nDTEND:%s\r\nSUMMARY:%s\r\nEND:VEVENT\r\n" +
	"END:VCALENDAR\r\n"
