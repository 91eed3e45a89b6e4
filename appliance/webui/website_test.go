package webui

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/website"
	"github.com/heimwolke/heimwolke/packages/accounts"
)

// websiteEnv returns a test environment after the setup, with the owner
// "anna" and the member "ben", and a website in a temporary folder. It
// creates the accounts directly, so that these tests do not depend on the
// wizard's steps.
func websiteEnv(t *testing.T) (*testEnv, *website.Site) {
	t.Helper()
	env := newTestEnv(t)
	ctx := context.Background()
	if _, err := env.accounts.CreateOwner(ctx, accounts.NewUser{Name: "anna", DisplayName: "Anna Müller", Language: accounts.LanguageGerman, Password: ownerPassword}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.accounts.CreateMember(ctx, accounts.NewUser{Name: "ben", Language: accounts.LanguageEnglish, Password: memberPassword}); err != nil {
		t.Fatal(err)
	}
	if err := env.setup.MarkComplete(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	site, err := website.New(website.Options{Dir: filepath.Join(t.TempDir(), "www"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	env.h.website = site
	return env, site
}

// zipOf returns a zip archive of name and content pairs.
func zipOf(t *testing.T, pairs ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i+1 < len(pairs); i += 2 {
		w, err := zw.Create(pairs[i])
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, pairs[i+1])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// uploadField is one part of a multipart form, in the order given.
type uploadField struct {
	name, filename string
	content        []byte
}

// upload posts a multipart form to the website page.
func (b *browser) upload(fields ...uploadField) response {
	b.t.Helper()
	return b.uploadTo("/admin/website", fields...)
}

// uploadTo posts a multipart form to path.
func (b *browser) uploadTo(path string, fields ...uploadField) response {
	b.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, f := range fields {
		var w io.Writer
		var err error
		if f.filename != "" {
			w, err = mw.CreateFormFile(f.name, f.filename)
		} else {
			w, err = mw.CreateFormField(f.name)
		}
		if err != nil {
			b.t.Fatal(err)
		}
		w.Write(f.content)
	}
	mw.Close()

	req := httptest.NewRequest(http.MethodPost, path, &body)
	req.RemoteAddr = b.remoteAddr
	if b.tls {
		req.TLS = &tls.ConnectionState{}
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	for _, c := range b.cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	res := rec.Result()
	out, _ := io.ReadAll(res.Body)
	b.last = string(out)
	return response{status: res.StatusCode, header: res.Header, body: string(out)}
}

// publishForm returns the fields that the website page's form sends for
// archive, with the CSRF token of the last page.
func (b *browser) publishForm(archive []byte) []uploadField {
	return []uploadField{
		{name: "csrf", content: []byte(b.csrf())},
		{name: "site", filename: "website.zip", content: archive},
	}
}

func TestWebsitePageOwnerOnly(t *testing.T) {
	env, site := websiteEnv(t)

	anonymous := newBrowser(t, env.h, lanAddr)
	wantRedirect(t, anonymous.get("/admin/website"), "/login")

	ben := newBrowser(t, env.h, otherLANAddr)
	logIn(t, ben, "ben", memberPassword)
	res := ben.get("/admin/website")
	wantStatus(t, res, http.StatusForbidden)
	wantNotInBody(t, res, `enctype="multipart/form-data"`)

	// A member's own valid CSRF token does not help.
	ben.get("/account")
	res = ben.upload(ben.publishForm(zipOf(t, "index.html", "Ben war hier"))...)
	wantStatus(t, res, http.StatusForbidden)
	if _, err := os.Stat(site.Dir()); err == nil {
		t.Errorf("a member's upload created %s", site.Dir())
	}

	anna := newBrowser(t, env.h, lanAddr)
	logIn(t, anna, "anna", ownerPassword)
	res = anna.get("/admin/website")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res,
		`enctype="multipart/form-data"`, `name="site" type="file"`, "Höchstens 500 MiB",
		"Höchstens 10000 Dateien und 500 MiB entpackt",
		"über Deinen Dateispeicher")
	csrfAt := strings.Index(res.body, `name="csrf"`)
	fileAt := strings.Index(res.body, `name="site"`)
	if csrfAt < 0 || fileAt < csrfAt {
		t.Errorf("the CSRF field must come before the file field (at %d and %d)", csrfAt, fileAt)
	}
}

func TestWebsiteUploadPublishes(t *testing.T) {
	env, site := websiteEnv(t)
	anna := newBrowser(t, env.h, lanAddr)
	logIn(t, anna, "anna", ownerPassword)
	anna.get("/admin/website")

	archive := zipOf(t, "meine-seite/index.html", "<h1>Willkommen</h1>", "meine-seite/css/a.css", "h1 {}")
	wantRedirect(t, anna.upload(anna.publishForm(archive)...), "/admin/website?notice=published")
	res := anna.get("/admin/website?notice=published")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "Deine Website ist veröffentlicht", `id="view-website"`)

	got, err := os.ReadFile(filepath.Join(site.Dir(), "index.html"))
	if err != nil || string(got) != "<h1>Willkommen</h1>" {
		t.Errorf("index.html = %q, %v; want the uploaded page", got, err)
	}
	if _, err := os.Stat(filepath.Join(site.Dir(), "css", "a.css")); err != nil {
		t.Errorf("css/a.css: %v", err)
	}
	wantNoUploadLeftovers(t, site)
}

func TestWebsiteUploadRejectsArchive(t *testing.T) {
	env, site := websiteEnv(t)
	anna := newBrowser(t, env.h, lanAddr)
	logIn(t, anna, "anna", ownerPassword)
	anna.get("/admin/website")
	wantRedirect(t, anna.upload(anna.publishForm(zipOf(t, "index.html", "alt"))...), "/admin/website?notice=published")

	tests := []struct {
		name    string
		archive []byte
		status  int
		message string
	}{
		{"traversal", zipOf(t, "../../etc/cron.d/x", "boom"), http.StatusUnprocessableEntity, "Der Eintrag „../../etc/cron.d/x“ zeigt mit „..“ aus der ZIP-Datei hinaus."},
		{"not a zip", []byte("kein zip"), http.StatusUnprocessableEntity, "Diese Datei ist keine ZIP-Datei"},
		{"empty file", nil, http.StatusUnprocessableEntity, "Wähle zuerst eine ZIP-Datei aus."},
		{"control character", zipOf(t, "a\x1b[31m.html", "x"), http.StatusUnprocessableEntity, "Der Name „a\uFFFD[31m.html“ ist zu lang"},
	}
	for _, tt := range tests {
		anna.get("/admin/website")
		res := anna.upload(anna.publishForm(tt.archive)...)
		if res.status != tt.status {
			t.Errorf("%s: got status %d, want %d", tt.name, res.status, tt.status)
		}
		wantBody(t, res, tt.message, `id="site-error"`, `aria-invalid="true"`)
	}

	got, err := os.ReadFile(filepath.Join(site.Dir(), "index.html"))
	if err != nil || string(got) != "alt" {
		t.Errorf("index.html = %q, %v; want the old site kept", got, err)
	}
	wantNoUploadLeftovers(t, site)
}

func TestWebsiteUploadCSRF(t *testing.T) {
	env, site := websiteEnv(t)
	anna := newBrowser(t, env.h, lanAddr)
	logIn(t, anna, "anna", ownerPassword)
	anna.get("/admin/website")
	token := anna.csrf()
	archive := zipOf(t, "index.html", "von woanders")

	tests := []struct {
		name   string
		fields []uploadField
	}{
		{"missing", []uploadField{{name: "site", filename: "a.zip", content: archive}}},
		{"wrong", []uploadField{{name: "csrf", content: []byte("AAAA")}, {name: "site", filename: "a.zip", content: archive}}},
		{"empty", []uploadField{{name: "csrf"}, {name: "site", filename: "a.zip", content: archive}}},
		{"after the file", []uploadField{{name: "site", filename: "a.zip", content: archive}, {name: "csrf", content: []byte(token)}}},
	}
	for _, tt := range tests {
		res := anna.upload(tt.fields...)
		if res.status != http.StatusForbidden {
			t.Errorf("%s token: got status %d, want 403", tt.name, res.status)
		}
		wantBody(t, res, "Dieses Formular ist abgelaufen")
	}

	// A url-encoded POST with a valid token has no file.
	anna.get("/admin/website")
	res := anna.post("/admin/website", form())
	wantStatus(t, res, http.StatusUnprocessableEntity)
	wantBody(t, res, "Wähle zuerst eine ZIP-Datei aus.")

	if _, err := os.Stat(site.Dir()); err == nil {
		t.Errorf("a rejected form created %s", site.Dir())
	}
	wantNoUploadLeftovers(t, site)
}

func TestWebsitePageWithoutPublisher(t *testing.T) {
	env, _ := websiteEnv(t)
	env.h.website = nil
	anna := newBrowser(t, env.h, lanAddr)
	logIn(t, anna, "anna", ownerPassword)
	wantStatus(t, anna.get("/admin/website"), http.StatusNotFound)
}

func TestPrintableName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"über.html", "über.html"},
		{"\xfcber.html", "\uFFFDber.html"},
		{"a\nb", "a\uFFFDb"},
		{strings.Repeat("x", 130), strings.Repeat("x", 119) + "…"},
	}
	for _, tt := range tests {
		if got := printableName(tt.in); got != tt.want {
			t.Errorf("printableName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// wantNoUploadLeftovers fails if an upload or staging copy is left next
// to the website's folder.
func wantNoUploadLeftovers(t *testing.T, site *website.Site) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(site.Dir()))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".www.") {
			t.Errorf("leftover %s next to the website's folder", e.Name())
		}
	}
}

// slowReader returns the bytes of r in chunks with a pause before each,
// like a slow Wi-Fi upload.
type slowReader struct {
	r     io.Reader
	pause time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.pause)
	return s.r.Read(p[:min(len(p), 512)])
}

// TestWebsiteUploadOutlastsServerTimeouts guards against the server's read
// and write time-outs, which suit forms, cutting off a large upload.
func TestWebsiteUploadOutlastsServerTimeouts(t *testing.T) {
	env, site := websiteEnv(t)
	srv := httptest.NewUnstartedServer(env.h)
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Config.WriteTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)

	anna := newBrowser(t, env.h, "127.0.0.1:40000")
	logIn(t, anna, "anna", ownerPassword)
	anna.get("/admin/website")

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("csrf", anna.csrf())
	fw, _ := mw.CreateFormFile("site", "site.zip")
	// Hex of random bytes, which deflate shrinks only to about half.
	random := make([]byte, 4096)
	rand.Read(random)
	fw.Write(zipOf(t, "index.html", hex.EncodeToString(random)))
	mw.Close()
	// About 9 chunks of 512 bytes with 150 ms before each: more than a
	// second, over three times the server's time-outs.
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/admin/website", &slowReader{r: &body, pause: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	for _, c := range anna.cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	start := time.Now()
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("upload after %v: %v", time.Since(start), err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("got status %d, want 303", res.StatusCode)
	}
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Errorf("upload took %v, want over a second for the test to mean anything", elapsed)
	}
	if _, err := os.Stat(filepath.Join(site.Dir(), "index.html")); err != nil {
		t.Errorf("index.html after slow upload: %v", err)
	}
}
