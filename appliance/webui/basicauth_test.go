package webui

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// davStub stands for a DAV handler: it echoes the authenticated user.
var davStub = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	u, ok := AuthenticatedUser(r.Context())
	if !ok {
		http.Error(w, "no user in context", http.StatusInternalServerError)
		return
	}
	w.Write([]byte("hello " + u.Name))
})

func basicRequest(t *testing.T, h http.Handler, remoteAddr, name, password string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("PROPFIND", "/dav/", nil)
	req.RemoteAddr = remoteAddr
	if name != "" {
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(name+":"+password)))
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func newAppPassword(t *testing.T, env *testEnv, name string, scope accounts.Scope) string {
	t.Helper()
	ctx := context.Background()
	u, err := env.accounts.UserByName(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err := env.accounts.CreateAppPassword(ctx, u.ID, "test", scope)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func TestBasicAuthWithAppPassword(t *testing.T) {
	env := setupDone(t)
	davSecret := newAppPassword(t, env, "anna", accounts.ScopeDAV)
	mailSecret := newAppPassword(t, env, "anna", accounts.ScopeMail)
	h := BasicAuth(BasicAuthOptions{Accounts: env.accounts, Scope: accounts.ScopeDAV, Protocol: "dav"}, davStub)

	tests := []struct {
		name, user, password string
		want                 int
	}{
		{"app password", "anna", davSecret, http.StatusOK},
		{"app password, other case and spaces", "Anna", "  " + davSecret + " ", http.StatusOK},
		{"no credentials", "", "", http.StatusUnauthorized},
		{"main password", "anna", ownerPassword, http.StatusUnauthorized},
		{"app password for mail only", "anna", mailSecret, http.StatusUnauthorized},
		{"another user's name", "ben", davSecret, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		rec := basicRequest(t, h, lanAddr, tt.user, tt.password)
		if rec.Code != tt.want {
			t.Errorf("%s: got status %d, want %d", tt.name, rec.Code, tt.want)
			continue
		}
		if tt.want == http.StatusOK {
			if got := rec.Body.String(); got != "hello anna" {
				t.Errorf("%s: body %q, want %q", tt.name, got, "hello anna")
			}
			continue
		}
		if got, want := rec.Header().Get("WWW-Authenticate"), `Basic realm="Heimwolke", charset="UTF-8"`; got != want {
			t.Errorf("%s: WWW-Authenticate %q, want %q", tt.name, got, want)
		}
	}
}

// TestBasicAuthBruteForce sends 100 wrong app passwords from the internet
// in a row: the first ones get 401, the rest 429 with Retry-After, and the
// right app password from the LAN still works.
func TestBasicAuthBruteForce(t *testing.T) {
	env := setupDone(t)
	secret := newAppPassword(t, env, "anna", accounts.ScopeDAV)
	h := BasicAuth(BasicAuthOptions{Accounts: env.accounts, Scope: accounts.ScopeDAV, Protocol: "dav"}, davStub)

	var unauthorized, throttled int
	for i := range 100 {
		guess := "aaaa-bbbb-cccc-dddd-eeee-ffff-" + strconv.Itoa(1000+i)
		rec := basicRequest(t, h, internetAddr, "anna", guess)
		switch rec.Code {
		case http.StatusUnauthorized:
			unauthorized++
			if throttled > 0 {
				t.Fatalf("attempt %d: checked again after being throttled", i)
			}
		case http.StatusTooManyRequests:
			throttled++
			if retry, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || retry < 1 {
				t.Fatalf("attempt %d: Retry-After %q, want a positive number of seconds", i, rec.Header().Get("Retry-After"))
			}
		default:
			t.Fatalf("attempt %d: status %d, want 401 or 429", i, rec.Code)
		}
	}
	if unauthorized == 0 || unauthorized > 10 || throttled < 90 {
		t.Errorf("got %d unauthorized and %d throttled attempts, want 1 to 10 unauthorized and the rest throttled", unauthorized, throttled)
	}

	if rec := basicRequest(t, h, internetAddr, "anna", secret); rec.Code != http.StatusTooManyRequests {
		t.Errorf("right app password from the throttled source: got %d, want 429", rec.Code)
	}
	if rec := basicRequest(t, h, lanAddr, "anna", secret); rec.Code != http.StatusOK {
		t.Errorf("right app password from the LAN: got %d, want 200", rec.Code)
	}
}
