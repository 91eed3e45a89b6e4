package website

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// newPublishedSite returns a site whose folder holds a small website, and
// a file secret.txt next to the folder that must never be served.
func newPublishedSite(t *testing.T, opts Options) *Site {
	t.Helper()
	parent := t.TempDir()
	opts.Dir = filepath.Join(parent, "www")
	writeFiles(t, parent, "secret.txt", "the secret next door")
	writeFiles(t, opts.Dir,
		"index.html", "<h1>Familie Müller</h1>",
		"style.css", "body { color: green }",
		"app.js", "console.log('hi')",
		"logo.svg", "<svg xmlns='http://www.w3.org/2000/svg'/>",
		"favicon.ico", "\x00\x00\x01\x00",
		"fonts/text.woff2", "wOF2",
		"notes.txt", "0123456789abcdefghij",
		"data.unknownext", "<script>alert(1)</script>",
		"blog/index.html", "<h1>Blog</h1>",
		"blog/post.html", "<p>Post</p>",
		"empty/", "",
		".htaccess", "Deny from all",
		".git/config", "[core]",
		"blog/.draft.html", "draft",
	)
	return newTestSite(t, opts)
}

func TestServeContentTypes(t *testing.T) {
	s := newPublishedSite(t, Options{})
	tests := []struct{ path, contentType, body string }{
		{"/", "text/html; charset=utf-8", "<h1>Familie Müller</h1>"},
		{"/index.html", "text/html; charset=utf-8", "<h1>Familie Müller</h1>"},
		{"/style.css", "text/css; charset=utf-8", "body { color: green }"},
		{"/app.js", "text/javascript; charset=utf-8", "console.log('hi')"},
		{"/logo.svg", "image/svg+xml", "<svg xmlns='http://www.w3.org/2000/svg'/>"},
		{"/favicon.ico", "image/vnd.microsoft.icon", "\x00\x00\x01\x00"},
		{"/fonts/text.woff2", "font/woff2", "wOF2"},
		{"/notes.txt", "text/plain; charset=utf-8", "0123456789abcdefghij"},
		// Content is not sniffed: this would be text/html otherwise.
		{"/data.unknownext", "application/octet-stream", "<script>alert(1)</script>"},
		{"/blog/", "text/html; charset=utf-8", "<h1>Blog</h1>"},
		{"/blog/post.html", "text/html; charset=utf-8", "<p>Post</p>"},
	}
	for _, tt := range tests {
		res := get(t, s, tt.path)
		wantStatus(t, res, http.StatusOK)
		wantHeader(t, res, "Content-Type", tt.contentType)
		wantHeader(t, res, "Cache-Control", "no-cache")
		if got := body(t, res); got != tt.body {
			t.Errorf("GET %s: body %q, want %q", tt.path, got, tt.body)
		}
	}
}

func TestServeFolderWithoutSlashRedirects(t *testing.T) {
	s := newPublishedSite(t, Options{})
	res := get(t, s, "/blog?page=2")
	wantStatus(t, res, http.StatusMovedPermanently)
	wantHeader(t, res, "Location", "blog/?page=2")

	res = get(t, s, "/blog/post.html/")
	wantStatus(t, res, http.StatusNotFound)
}

func TestServeNoFolderListing(t *testing.T) {
	s := newPublishedSite(t, Options{})
	res := get(t, s, "/empty/")
	wantStatus(t, res, http.StatusNotFound)
	if b := body(t, res); strings.Contains(b, "<a href") && !strings.Contains(b, `id="home"`) {
		t.Errorf("body looks like a listing:\n%s", b)
	}

	// An index.html that is a folder is no start page.
	writeFiles(t, s.Dir(), "odd/index.html/", "")
	res = get(t, s, "/odd/")
	wantStatus(t, res, http.StatusNotFound)
}

func TestServeRange(t *testing.T) {
	s := newPublishedSite(t, Options{})
	res := serve(t, s, request{target: "/notes.txt", header: map[string]string{"Range": "bytes=10-14"}})
	wantStatus(t, res, http.StatusPartialContent)
	wantHeader(t, res, "Content-Range", "bytes 10-14/20")
	if got := body(t, res); got != "abcde" {
		t.Errorf("body %q, want %q", got, "abcde")
	}

	res = serve(t, s, request{target: "/notes.txt", header: map[string]string{"Range": "bytes=100-"}})
	wantStatus(t, res, http.StatusRequestedRangeNotSatisfiable)
}

func TestServeConditionalRequests(t *testing.T) {
	s := newPublishedSite(t, Options{})
	res := get(t, s, "/style.css")
	wantStatus(t, res, http.StatusOK)
	etag := res.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 5 {
		t.Fatalf("ETag = %q, want a strong entity tag", etag)
	}
	lastModified := res.Header.Get("Last-Modified")
	if _, err := http.ParseTime(lastModified); err != nil {
		t.Fatalf("Last-Modified = %q: %v", lastModified, err)
	}

	res = serve(t, s, request{target: "/style.css", header: map[string]string{"If-None-Match": etag}})
	wantStatus(t, res, http.StatusNotModified)
	wantHeader(t, res, "ETag", etag)

	res = serve(t, s, request{target: "/style.css", header: map[string]string{"If-None-Match": `"other"`}})
	wantStatus(t, res, http.StatusOK)

	res = serve(t, s, request{target: "/style.css", header: map[string]string{"If-Modified-Since": lastModified}})
	wantStatus(t, res, http.StatusNotModified)

	// A changed file gets a new tag.
	path := filepath.Join(s.Dir(), "style.css")
	if err := os.WriteFile(path, []byte("body { color: red }"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	res = serve(t, s, request{target: "/style.css", header: map[string]string{"If-None-Match": etag}})
	wantStatus(t, res, http.StatusOK)
	if got := res.Header.Get("ETag"); got == etag {
		t.Errorf("ETag after change = %q, want a new one", got)
	}
}

// TestServeRejectsTraversal guards against requests that try to read
// secret.txt, which sits next to the site's folder.
func TestServeRejectsTraversal(t *testing.T) {
	s := newPublishedSite(t, Options{})
	targets := []string{
		"/../secret.txt",
		"/blog/../../secret.txt",
		"/%2e%2e/secret.txt",
		"/%2E%2E/secret.txt",
		"/blog/%2e%2e/%2e%2e/secret.txt",
		"/%2e%2e%2fsecret.txt",
		"/..%2fsecret.txt",
		"/..%5csecret.txt",
		"/blog%5c..%5c..%5csecret.txt",
		"/%5c..%5csecret.txt",
		"/index.html%00.txt",
		"/%00",
		"/./index.html",
		"/blog/./post.html",
		"/%ff.html",
		"/a%0d%0aSet-Cookie:%20x=1",
	}
	for _, target := range targets {
		res := get(t, s, target)
		if res.StatusCode != http.StatusBadRequest && res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 400 or 404", target, res.StatusCode)
		}
		if b := body(t, res); strings.Contains(b, "secret next door") {
			t.Errorf("GET %s: served the file outside the site's folder", target)
		}
	}
}

func TestServeHidesDotfiles(t *testing.T) {
	s := newPublishedSite(t, Options{})
	for _, target := range []string{"/.htaccess", "/.git/config", "/.git/", "/blog/.draft.html", "/%2ehtaccess"} {
		res := get(t, s, target)
		wantStatus(t, res, http.StatusNotFound)
		if b := body(t, res); strings.Contains(b, "Deny") || strings.Contains(b, "[core]") || strings.Contains(b, "draft") {
			t.Errorf("GET %s: served a dotfile's content", target)
		}
	}
}

func TestServeSymlinks(t *testing.T) {
	s := newPublishedSite(t, Options{})
	links := map[string]string{
		"leak.txt":      "../secret.txt",
		"absolute.txt":  filepath.Join(filepath.Dir(s.Dir()), "secret.txt"),
		"etc":           "/etc",
		"inside.html":   "index.html",
		"blog-link":     "blog",
		"parent-folder": "..",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(s.Dir(), name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, target := range []string{"/leak.txt", "/absolute.txt", "/etc/passwd", "/etc/", "/parent-folder/secret.txt"} {
		res := get(t, s, target)
		wantStatus(t, res, http.StatusNotFound)
		if b := body(t, res); strings.Contains(b, "secret next door") || strings.Contains(b, "root:") {
			t.Errorf("GET %s: followed a link out of the site's folder", target)
		}
	}

	// Links that stay inside the folder work.
	res := get(t, s, "/inside.html")
	wantStatus(t, res, http.StatusOK)
	res = get(t, s, "/blog-link/post.html")
	wantStatus(t, res, http.StatusOK)
}

// TestServeFIFOIsNotFound guards against a request that blocks forever on
// opening a named pipe.
func TestServeFIFOIsNotFound(t *testing.T) {
	s := newPublishedSite(t, Options{})
	if err := syscall.Mkfifo(filepath.Join(s.Dir(), "pipe.html"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan *http.Response)
	go func() { done <- get(t, s, "/pipe.html") }()
	select {
	case res := <-done:
		wantStatus(t, res, http.StatusNotFound)
	case <-time.After(5 * time.Second):
		t.Fatal("GET /pipe.html did not return within 5s")
	}
}

func TestDefaultPageLanguages(t *testing.T) {
	s := newTestSite(t, Options{})
	tests := []struct {
		target, acceptLanguage, lang, title string
	}{
		{"/", "de-DE,de;q=0.9,en;q=0.8", "de", "Hier entsteht eine Website"},
		{"/", "en-GB,en;q=0.9", "en", "A website is coming soon"},
		{"/", "fr-FR", "en", "A website is coming soon"},
		{"/?lang=de", "en", "de", "Hier entsteht eine Website"},
	}
	for _, tt := range tests {
		res := serve(t, s, request{target: tt.target, header: map[string]string{"Accept-Language": tt.acceptLanguage}})
		wantStatus(t, res, http.StatusOK)
		wantHeader(t, res, "Content-Language", tt.lang)
		wantHeader(t, res, "Vary", "Accept-Language")
		b := body(t, res)
		if !strings.Contains(b, tt.title) || !strings.Contains(b, `<html lang="`+tt.lang+`">`) {
			t.Errorf("GET %s with %q: body lacks %q in %s:\n%s", tt.target, tt.acceptLanguage, tt.title, tt.lang, b)
		}
		if !strings.Contains(b, `href="/admin/website"`) {
			t.Errorf("GET %s: default page lacks the link to publishing", tt.target)
		}
	}

	// The folder exists but has no start page yet.
	if err := os.MkdirAll(filepath.Join(s.Dir(), "img"), 0o755); err != nil {
		t.Fatal(err)
	}
	res := serve(t, s, request{target: "/", header: map[string]string{"Accept-Language": "de"}})
	wantStatus(t, res, http.StatusOK)
	if b := body(t, res); !strings.Contains(b, "Hier entsteht eine Website") {
		t.Errorf("GET / without index.html: body lacks the default page:\n%s", b)
	}

	res = get(t, s, "/other.html")
	wantStatus(t, res, http.StatusNotFound)
}

func TestNotFoundLocalized(t *testing.T) {
	s := newPublishedSite(t, Options{})
	for lang, text := range map[string]string{"de": "Seite nicht gefunden", "en": "Page not found"} {
		res := serve(t, s, request{target: "/missing.html", header: map[string]string{"Accept-Language": lang}})
		wantStatus(t, res, http.StatusNotFound)
		wantHeader(t, res, "Content-Language", lang)
		wantHeader(t, res, "Content-Type", "text/html; charset=utf-8")
		if b := body(t, res); !strings.Contains(b, text) {
			t.Errorf("404 in %s lacks %q:\n%s", lang, text, b)
		}
	}

	// The site's own 404.html wins.
	writeFiles(t, s.Dir(), "404.html", "<h1>Hier nicht</h1>")
	res := get(t, s, "/missing.html")
	wantStatus(t, res, http.StatusNotFound)
	wantHeader(t, res, "Content-Type", "text/html; charset=utf-8")
	if b := body(t, res); b != "<h1>Hier nicht</h1>" {
		t.Errorf("404 body = %q, want the site's 404.html", b)
	}
	res = serve(t, s, request{method: http.MethodHead, target: "/missing.html"})
	wantStatus(t, res, http.StatusNotFound)
	if b := body(t, res); b != "" {
		t.Errorf("HEAD 404 body = %q, want none", b)
	}
}

func TestServeMethodNotAllowed(t *testing.T) {
	s := newPublishedSite(t, Options{})
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, "PROPFIND"} {
		res := serve(t, s, request{method: method, target: "/index.html"})
		wantStatus(t, res, http.StatusMethodNotAllowed)
		wantHeader(t, res, "Allow", "GET, HEAD")
	}
	res := serve(t, s, request{method: http.MethodHead, target: "/index.html"})
	wantStatus(t, res, http.StatusOK)
	if b := body(t, res); b != "" {
		t.Errorf("HEAD body = %q, want none", b)
	}
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	published := newPublishedSite(t, Options{})
	empty := newTestSite(t, Options{})
	https := newPublishedSite(t, Options{HTTPSHost: func(string) bool { return true }})
	cases := []struct {
		name string
		site *Site
		req  request
	}{
		{"file", published, request{target: "/style.css"}},
		{"range", published, request{target: "/notes.txt", header: map[string]string{"Range": "bytes=0-1"}}},
		{"not found", published, request{target: "/missing"}},
		{"bad path", published, request{target: "/%00"}},
		{"dotfile", published, request{target: "/.htaccess"}},
		{"method", published, request{method: http.MethodPost, target: "/"}},
		{"folder redirect", published, request{target: "/blog"}},
		{"default page", empty, request{target: "/"}},
		{"plain http", https, request{target: "/"}},
		{"over https", https, request{target: "/", tls: true}},
	}
	for _, c := range cases {
		res := serve(t, c.site, c.req)
		for _, key := range []string{"X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options", "Content-Security-Policy"} {
			if res.Header.Get(key) == "" {
				t.Errorf("%s: %s missing", c.name, key)
			}
		}
		wantHeader(t, res, "X-Content-Type-Options", "nosniff")
		wantHeader(t, res, "X-Frame-Options", "SAMEORIGIN")
		wantHeader(t, res, "Referrer-Policy", "strict-origin-when-cross-origin")
	}
}

func TestHSTSOnlyForTrustedHosts(t *testing.T) {
	s := newPublishedSite(t, Options{HTTPSHost: func(host string) bool { return host == "example.com" }})

	// Plain HTTP is served here; the front door redirects it.
	res := serve(t, s, request{host: "example.com", target: "/blog/post.html?x=1"})
	wantStatus(t, res, http.StatusOK)
	wantHeader(t, res, "Strict-Transport-Security", "")

	// heimwolke.local has no certificate that browsers accept, so nothing
	// pins browsers to HTTPS there.
	res = serve(t, s, request{host: "heimwolke.local", target: "/", tls: true})
	wantStatus(t, res, http.StatusOK)
	wantHeader(t, res, "Strict-Transport-Security", "")
	if csp := res.Header.Get("Content-Security-Policy"); strings.Contains(csp, "upgrade-insecure-requests") {
		t.Errorf("CSP for heimwolke.local = %q, want no upgrade-insecure-requests", csp)
	}

	for _, host := range []string{"example.com", "Example.COM:443", "example.com."} {
		res = serve(t, s, request{host: host, target: "/style.css", tls: true})
		wantStatus(t, res, http.StatusOK)
		wantHeader(t, res, "Strict-Transport-Security", "max-age=31536000")
		if csp := res.Header.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "; upgrade-insecure-requests") {
			t.Errorf("CSP over HTTPS for %s = %q, want upgrade-insecure-requests", host, csp)
		}
	}
	res = serve(t, s, request{host: "example.com", target: "/missing", tls: true})
	wantStatus(t, res, http.StatusNotFound)
	wantHeader(t, res, "Strict-Transport-Security", "max-age=31536000")
}
