package website

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// curl runs curl with args and returns its output: the response headers
// (-D -) followed by the body.
func curl(t *testing.T, args ...string) string {
	t.Helper()
	bin := testpeer.Require(t, "curl", "curl")
	args = append([]string{"--silent", "--show-error", "--max-time", "10", "--noproxy", "*", "-D", "-"}, args...)
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, exitErr.Stderr)
		}
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(out), "\r\n", "\n")
}

func wantInOutput(t *testing.T, out string, texts ...string) {
	t.Helper()
	for _, text := range texts {
		if !strings.Contains(out, text) {
			t.Errorf("curl output lacks %q:\n%s", text, out)
		}
	}
}

// headerValue returns the value of header key in curl's output.
func headerValue(out, key string) string {
	for _, line := range strings.Split(out, "\n") {
		name, value, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(name, key) {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

// TestServeWithCurl checks the site over a real HTTP connection, with curl
// as the independent client: types, ranges, revalidation and traversal.
func TestServeWithCurl(t *testing.T) {
	s := newPublishedSite(t, Options{})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)

	out := curl(t, srv.URL+"/")
	wantInOutput(t, out, "HTTP/1.1 200 OK", "Content-Type: text/html; charset=utf-8", "X-Content-Type-Options: nosniff", "<h1>Familie Müller</h1>")
	etag := headerValue(out, "ETag")
	if etag == "" {
		t.Fatalf("no ETag in:\n%s", out)
	}

	out = curl(t, "-H", "If-None-Match: "+etag, srv.URL+"/")
	wantInOutput(t, out, "HTTP/1.1 304 Not Modified")
	if strings.Contains(out, "Familie") {
		t.Errorf("304 response carries a body:\n%s", out)
	}

	out = curl(t, "--range", "3-7", srv.URL+"/notes.txt")
	wantInOutput(t, out, "HTTP/1.1 206 Partial Content", "Content-Range: bytes 3-7/20", "Content-Length: 5", "\n\n34567")

	// If-Range with the current tag gives the range, with an old one the
	// whole file.
	out = curl(t, "--range", "0-1", "-H", "If-Range: "+headerValue(curl(t, srv.URL+"/notes.txt"), "ETag"), srv.URL+"/notes.txt")
	wantInOutput(t, out, "HTTP/1.1 206 Partial Content")
	out = curl(t, "--range", "0-1", "-H", `If-Range: "stale"`, srv.URL+"/notes.txt")
	wantInOutput(t, out, "HTTP/1.1 200 OK", "0123456789abcdefghij")

	out = curl(t, "--head", srv.URL+"/style.css")
	wantInOutput(t, out, "HTTP/1.1 200 OK", "Content-Type: text/css; charset=utf-8", "Content-Length: 21")

	// --path-as-is sends the dot segments unchanged.
	for _, path := range []string{"/../secret.txt", "/blog/../../secret.txt", "/%2e%2e/secret.txt", "/..%5csecret.txt", "/.git/config"} {
		out = curl(t, "--path-as-is", srv.URL+path)
		if strings.Contains(out, "secret next door") || strings.Contains(out, "[core]") {
			t.Errorf("GET %s served a file it must not:\n%s", path, out)
		}
		if !strings.HasPrefix(out, "HTTP/1.1 400") && !strings.HasPrefix(out, "HTTP/1.1 404") {
			t.Errorf("GET %s: want 400 or 404, got:\n%s", path, out)
		}
	}
}

// TestPublishZipFromZipTool publishes archives that Info-ZIP's zip
// writes, the tool that Linux users pack their sites with.
func TestPublishZipFromZipTool(t *testing.T) {
	zipBin := testpeer.Require(t, "zip", "zip")
	work := t.TempDir()
	writeFiles(t, work,
		"meine-seite/index.html", "<h1>Hallo</h1>",
		"meine-seite/über-uns.html", "Über uns",
		"meine-seite/bilder/logo.svg", "<svg/>",
		"secret.txt", "outside",
	)
	run := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command(zipBin, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("zip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	s := newTestSite(t, Options{})
	publishFile := func(name string) error {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(work, name))
		if err != nil {
			t.Fatal(err)
		}
		return s.PublishZip(bytes.NewReader(b), int64(len(b)))
	}

	// The folder itself, zipped from outside: its contents become the site.
	run(work, "-r", "-q", "folder.zip", "meine-seite")
	if err := publishFile("folder.zip"); err != nil {
		t.Fatal(err)
	}
	wantTree(t, s.Dir(), "index.html", "<h1>Hallo</h1>", "über-uns.html", "Über uns", "bilder/logo.svg", "<svg/>")
	res := get(t, s, "/%C3%BCber-uns.html")
	wantStatus(t, res, http.StatusOK)

	// A link stored as a link (-y) is rejected.
	if err := os.Symlink("../../secret.txt", filepath.Join(work, "meine-seite", "bilder", "leak.txt")); err != nil {
		t.Fatal(err)
	}
	run(work, "-r", "-q", "-y", "links.zip", "meine-seite")
	err := publishFile("links.zip")
	var zerr *ZipError
	if !errors.As(err, &zerr) || zerr.Reason != ReasonSymlink || zerr.Name != "meine-seite/bilder/leak.txt" {
		t.Fatalf("archive with a symlink: got %v, want ReasonSymlink for meine-seite/bilder/leak.txt", err)
	}
	wantTree(t, s.Dir(), "index.html", "<h1>Hallo</h1>", "über-uns.html", "Über uns", "bilder/logo.svg", "<svg/>")

	// zip stores a path given as ../secret.txt with its "..".
	run(filepath.Join(work, "meine-seite"), "-q", "../traversal.zip", "../secret.txt")
	err = publishFile("traversal.zip")
	if !errors.As(err, &zerr) || zerr.Reason != ReasonParentFolder || zerr.Name != "../secret.txt" {
		t.Fatalf("archive with ../secret.txt: got %v, want ReasonParentFolder for ../secret.txt", err)
	}
	wantTree(t, s.Dir(), "index.html", "<h1>Hallo</h1>", "über-uns.html", "Über uns", "bilder/logo.svg", "<svg/>")
	wantNoLeftovers(t, s)
}
