package files

import (
	"context"
	"fmt"

	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/webui"
	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/sqlitedb"
)

// discardWriter is a ResponseWriter that drops the body, so that a
// profile of the handler shows no client or network work.
type discardWriter struct {
	header http.Header
	status int
	bytes  int64
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.bytes += int64(len(p))
	return len(p), nil
}

// BenchmarkPropfindHandler runs PROPFIND Depth 1 on a folder of 10,000
// files in this process, through BasicAuth and the handler but without
// HTTP, for CPU and memory profiles:
//
//	go test -run '^$' -bench PropfindHandler -cpuprofile cpu.out ./appliance/files/
//
// BenchmarkPropfind10000 measures the same request against nginx.
func BenchmarkPropfindHandler(b *testing.B) {
	bodies := map[string]string{
		"allprop": "",
		"prop":    `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/><D:getetag/></D:prop></D:propfind>`,
	}
	handler, user, secret := newBenchHandler(b)
	for _, name := range []string{"allprop", "prop"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("PROPFIND", HomePrefix+user+"/many/", strings.NewReader(bodies[name]))
				req.Header.Set("Depth", "1")
				req.SetBasicAuth(user, secret)
				w := &discardWriter{header: http.Header{}}
				handler.ServeHTTP(w, req)
				if w.status != http.StatusMultiStatus || w.bytes < 10000*100 {
					b.Fatalf("PROPFIND: got status %d and %d bytes, want 207 and more than 1 MB", w.status, w.bytes)
				}
			}
		})
	}
}

// newBenchHandler returns the handler behind BasicAuth, with a folder
// "many" of 10,000 small files in the home of the returned user.
func newBenchHandler(b *testing.B) (http.Handler, string, string) {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	logger := slog.New(slog.DiscardHandler)
	store, err := accounts.Open(ctx, filepath.Join(dir, "accounts.db"), accounts.Options{
		Logger: logger, Argon2: accounts.Argon2Params{Memory: 64, Time: 1, Threads: 1},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	user, err := store.CreateOwner(ctx, accounts.NewUser{Name: "bench", Password: "correct horse battery bench", Language: accounts.LanguageEnglish})
	if err != nil {
		b.Fatal(err)
	}
	secret, _, err := store.CreateAppPassword(ctx, user.ID, "bench", accounts.ScopeDAV)
	if err != nil {
		b.Fatal(err)
	}
	db, err := sqlitedb.Open(ctx, filepath.Join(dir, "files.db"), 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	h, err := New(ctx, Options{DataDir: filepath.Join(dir, "data"), DB: db, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}

	many := filepath.Join(dir, "data", "home", user.Name, "many")
	if err := os.MkdirAll(many, 0o700); err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		if err := os.WriteFile(filepath.Join(many, fmt.Sprintf("datei-%05d.txt", i)), []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	auth := webui.BasicAuth(webui.BasicAuthOptions{Accounts: store, Scope: accounts.ScopeDAV, Protocol: "webdav", Logger: logger}, h)
	return auth, user.Name, secret
}
