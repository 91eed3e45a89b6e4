package files

import (
	"context"
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

// testEnv is a WebDAV server on loopback with an owner "olga" and a
// member "max", each with an app password for DAV.
type testEnv struct {
	url      string
	dataDir  string
	website  string
	handler  *Handler
	accounts *accounts.Store
	owner    *accounts.User
	member   *accounts.User
	secrets  map[string]string // login name to app password
}

func newTestEnv(t *testing.T, opts Options) *testEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	store, err := accounts.Open(ctx, filepath.Join(dir, "accounts.db"), accounts.Options{
		Logger: logger,
		Argon2: accounts.Argon2Params{Memory: 64, Time: 1, Threads: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	db, err := sqlitedb.Open(ctx, filepath.Join(dir, "files.db"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	env := &testEnv{dataDir: filepath.Join(dir, "files"), website: filepath.Join(dir, "www"), accounts: store, secrets: map[string]string{}}
	env.owner = createUser(t, store, "olga", true)
	env.member = createUser(t, store, "max", false)
	for _, u := range []*accounts.User{env.owner, env.member} {
		secret, _, err := store.CreateAppPassword(ctx, u.ID, "test", accounts.ScopeDAV)
		if err != nil {
			t.Fatal(err)
		}
		env.secrets[u.Name] = secret
	}

	opts.DataDir, opts.WebsiteDir, opts.DB = env.dataDir, env.website, db
	if opts.Logger == nil {
		opts.Logger = logger
	}
	env.handler, err = New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	auth := webui.BasicAuth(webui.BasicAuthOptions{Accounts: store, Scope: accounts.ScopeDAV, Protocol: "webdav", Logger: logger}, env.handler)
	srv := httptest.NewServer(auth)
	t.Cleanup(srv.Close)
	env.url = srv.URL
	return env
}

func createUser(t *testing.T, store *accounts.Store, name string, owner bool) *accounts.User {
	t.Helper()
	nu := accounts.NewUser{Name: name, Password: "correct horse battery " + name, Language: accounts.LanguageGerman}
	create := store.CreateMember
	if owner {
		create = store.CreateOwner
	}
	u, err := create(context.Background(), nu)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// homeURL returns the URL of user's home folder with a trailing slash.
func (env *testEnv) homeURL(user string) string { return env.url + HomePrefix + user + "/" }

// do sends a request as user and returns the status and body.
func (env *testEnv) do(t *testing.T, user, method, url string, body string, header map[string]string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, env.secrets[user])
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(data)
}

func sleep() { time.Sleep(20 * time.Millisecond) }
