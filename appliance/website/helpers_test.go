package website

import (
	"archive/zip"
	"bytes"
	"crypto/tls"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newTestSite returns a site whose folder is www in a temporary folder,
// not yet created.
func newTestSite(t *testing.T, opts Options) *Site {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = filepath.Join(t.TempDir(), "www")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeFiles creates files below dir from name and content pairs; a name
// ending in "/" is an empty folder.
func writeFiles(t *testing.T, dir string, pairs ...string) {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		name := filepath.Join(dir, filepath.FromSlash(pairs[i]))
		if strings.HasSuffix(pairs[i], "/") {
			if err := os.MkdirAll(name, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(pairs[i+1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// request is a request to a handler, built by tests.
type request struct {
	method string
	target string // written as is into the request line
	tls    bool
	host   string
	header map[string]string
}

func serve(t *testing.T, h http.Handler, req request) *http.Response {
	t.Helper()
	if req.method == "" {
		req.method = http.MethodGet
	}
	r := httptest.NewRequest(req.method, "http://example.com/", nil)
	// Set the path as the server would parse it from the request line,
	// without the normalizing that NewRequest's URL parsing may do.
	u, err := url.ParseRequestURI(req.target)
	if err != nil {
		t.Fatalf("parsing %q: %v", req.target, err)
	}
	r.URL = u
	r.RequestURI = req.target
	if req.host != "" {
		r.Host = req.host
	}
	if req.tls {
		r.TLS = &tls.ConnectionState{}
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	res := rec.Result()
	res.Request = r
	return res
}

func get(t *testing.T, h http.Handler, target string) *http.Response {
	t.Helper()
	return serve(t, h, request{target: target})
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func wantStatus(t *testing.T, res *http.Response, status int) {
	t.Helper()
	if res.StatusCode != status {
		t.Fatalf("%s %s: got status %d, want %d", res.Request.Method, res.Request.RequestURI, res.StatusCode, status)
	}
}

func wantHeader(t *testing.T, res *http.Response, key, value string) {
	t.Helper()
	if got := res.Header.Get(key); got != value {
		t.Errorf("%s %s: %s = %q, want %q", res.Request.Method, res.Request.RequestURI, key, got, value)
	}
}

// zipEntrySpec is one entry of a zip archive that a test builds.
type zipEntrySpec struct {
	name string
	body string
	mode fs.FileMode // 0 means a regular file with 0644
	// raw writes body as the entry's compressed data with the header
	// as given, so tests can declare sizes, methods and flags freely.
	raw    bool
	header zip.FileHeader
}

func file(name, body string) zipEntrySpec { return zipEntrySpec{name: name, body: body} }

// makeZip builds an archive with Go's archive/zip writer.
func makeZip(t *testing.T, entries ...zipEntrySpec) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		var w io.Writer
		var err error
		switch {
		case e.raw:
			fh := e.header
			fh.Name = e.name
			w, err = zw.CreateRaw(&fh)
		default:
			fh := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
			mode := e.mode
			if mode == 0 {
				mode = 0o644
			}
			fh.SetMode(mode)
			w, err = zw.CreateHeader(fh)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func publish(s *Site, archive []byte) error {
	return s.PublishZip(bytes.NewReader(archive), int64(len(archive)))
}

// wantTree fails unless dir holds exactly the files in name and content
// pairs, ignoring folders.
func wantTree(t *testing.T, dir string, pairs ...string) {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		want[pairs[i]] = pairs[i+1]
	}
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		got[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range want {
		if got[name] != content {
			t.Errorf("%s: got %q, want %q", name, got[name], content)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s exists, want it absent", name)
		}
	}
}

// wantNoLeftovers fails if a staging folder or upload file is left next
// to the site's folder.
func wantNoLeftovers(t *testing.T, s *Site) {
	t.Helper()
	entries, err := os.ReadDir(s.parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "."+s.base+".") {
			t.Errorf("leftover %s next to the site's folder", e.Name())
		}
	}
}
