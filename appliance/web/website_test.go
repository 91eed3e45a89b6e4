package web

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/appliance/website"
)

// labelled returns a handler whose body is label and the request path.
func labelled(label string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(label + " " + r.URL.Path))
	})
}

func TestWebsiteRoutingBeforeAndAfterSetup(t *testing.T) {
	complete := false
	h := New(Options{
		Version:       "v",
		DataDir:       t.TempDir(),
		UI:            labelled("ui"),
		Website:       labelled("website"),
		SetupComplete: func() bool { return complete },
	})

	// Before the setup, the wizard gets every path.
	for _, path := range []string{"/", "/index.html", "/blog/", "/admin/website", "/setup/owner"} {
		if _, body := get(t, h, path, ""); body != "ui "+path {
			t.Errorf("before setup, GET %s: body %q, want %q", path, body, "ui "+path)
		}
	}

	complete = true
	tests := []struct{ path, handler string }{
		{"/", "website"},
		{"/index.html", "website"},
		{"/blog/", "website"},
		{"/blog/post.html", "website"},
		{"/administration.html", "website"},
		{"/setup-guide/", "website"},
		{"/logins.html", "website"},
		{"/statics/a.css", "website"},
		{"/Admin", "website"},
		{"/setup", "ui"},
		{"/setup/owner", "ui"},
		{"/login", "ui"},
		{"/login/totp", "ui"},
		{"/logout", "ui"},
		{"/logout/everywhere", "ui"},
		{"/account", "ui"},
		{"/account/devices/apple", "ui"},
		{"/admin", "ui"},
		{"/admin/", "ui"},
		{"/admin/website", "ui"},
		{"/static/ui.css", "ui"},
	}
	for _, tt := range tests {
		if _, body := get(t, h, tt.path, ""); body != tt.handler+" "+tt.path {
			t.Errorf("after setup, GET %s: body %q, want %q", tt.path, body, tt.handler+" "+tt.path)
		}
	}

	resp, body := get(t, h, "/healthz", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"status":"ok"`) {
		t.Errorf("GET /healthz: status %d body %q, want the health report", resp.StatusCode, body)
	}

	// The mux cleans the path before routing, so ".." cannot carry a
	// request from the interface's prefix to the website or back.
	for path, location := range map[string]string{"/admin/../secret": "/secret", "/x/../admin/people": "/admin/people", "//admin": "/admin"} {
		resp, body := get(t, h, path, "")
		if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != location {
			t.Errorf("GET %s: status %d to %q body %q, want 307 to %s", path, resp.StatusCode, resp.Header.Get("Location"), body, location)
		}
	}
}

func TestWebsiteRoutingNeedsBothOptions(t *testing.T) {
	for name, opts := range map[string]Options{
		"no website":         {UI: labelled("ui"), SetupComplete: func() bool { return true }},
		"no setup state":     {UI: labelled("ui"), Website: labelled("website")},
		"setup not complete": {UI: labelled("ui"), Website: labelled("website"), SetupComplete: func() bool { return false }},
	} {
		opts.DataDir = t.TempDir()
		h := New(opts)
		if _, body := get(t, h, "/", ""); body != "ui /" {
			t.Errorf("%s: GET / body %q, want the web interface", name, body)
		}
	}
}

// TestWebsiteDefaultPageThroughFrontDoor serves a real website.Site
// without published files behind the handler.
func TestWebsiteDefaultPageThroughFrontDoor(t *testing.T) {
	site, err := website.New(website.Options{Dir: filepath.Join(t.TempDir(), "www"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := New(Options{Version: "v", DataDir: t.TempDir(), UI: labelled("ui"), Website: site, SetupComplete: func() bool { return true }})
	resp, body := get(t, h, "/", "de")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Hier entsteht eine Website") {
		t.Errorf("GET /: status %d, want 200 with the German default page; body:\n%s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Frame-Options"); got != "SAMEORIGIN" {
		t.Errorf("X-Frame-Options = %q, want SAMEORIGIN", got)
	}
	resp, _ = get(t, h, "/missing.html", "en")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /missing.html: status %d, want 404", resp.StatusCode)
	}
}

// TestHTTPSRedirectForTrustedHosts checks that plain HTTP moves to HTTPS
// for the names that the public certificate covers, on the website and
// the web interface alike, and stays for the box's other names.
func TestHTTPSRedirectForTrustedHosts(t *testing.T) {
	complete := false
	h := New(Options{
		Version:       "v",
		DataDir:       t.TempDir(),
		UI:            labelled("ui"),
		Website:       labelled("website"),
		SetupComplete: func() bool { return complete },
		HTTPSHost:     func(host string) bool { return host == "example.com" || host == "2001:db8::1" },
	})
	do := func(method, host, target string, overTLS bool) *http.Response {
		t.Helper()
		req := httptest.NewRequest(method, target, strings.NewReader("a=1"))
		req.Host = host
		req.TLS = nil
		if overTLS {
			req.TLS = &tls.ConnectionState{}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Result()
	}

	redirects := []struct{ method, host, target, location string }{
		{http.MethodGet, "example.com", "/setup/owner", "https://example.com/setup/owner"},
		{http.MethodGet, "EXAMPLE.com:80", "/login?next=%2Fadmin", "https://example.com/login?next=%2Fadmin"},
		{http.MethodPost, "example.com", "/login", "https://example.com/login"},
		{http.MethodGet, "[2001:db8::1]:80", "/", "https://[2001:db8::1]/"},
	}
	check := func(stage string) {
		t.Helper()
		for _, tt := range redirects {
			res := do(tt.method, tt.host, tt.target, false)
			if res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != tt.location {
				t.Errorf("%s: %s http://%s%s: status %d to %q, want 308 to %s", stage, tt.method, tt.host, tt.target, res.StatusCode, res.Header.Get("Location"), tt.location)
			}
		}
		stays := []struct{ host, target string }{
			{"heimwolke.local", "/login"},
			{"192.168.178.20", "/"},
			{"example.com", "/healthz"},
			{"example.com", "/ca/"},
			{"example.com", "/ca"},
		}
		for _, tt := range stays {
			if res := do(http.MethodGet, tt.host, tt.target, false); res.StatusCode != http.StatusOK {
				t.Errorf("%s: GET http://%s%s: status %d, want 200 without a redirect", stage, tt.host, tt.target, res.StatusCode)
			}
		}
		res := do(http.MethodGet, "example.com", "/login", true)
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: GET https://example.com/login: status %d, want 200", stage, res.StatusCode)
		}
		if got := res.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
			t.Errorf("%s: GET https://example.com/login: HSTS %q, want max-age=31536000", stage, got)
		}
		if got := do(http.MethodGet, "heimwolke.local", "/login", true).Header.Get("Strict-Transport-Security"); got != "" {
			t.Errorf("%s: GET https://heimwolke.local/login: HSTS %q, want none", stage, got)
		}
	}
	// make run serves HTTPS on 8443, so its redirects name the port.
	withPort := New(Options{Version: "v", DataDir: t.TempDir(), UI: labelled("ui"), HTTPSHost: func(string) bool { return true }, HTTPSPort: "8443"})
	req := httptest.NewRequest(http.MethodGet, "/login", nil)
	req.Host = "example.com:8080"
	rec := httptest.NewRecorder()
	withPort.ServeHTTP(rec, req)
	if got := rec.Result().Header.Get("Location"); got != "https://example.com:8443/login" {
		t.Errorf("redirect with HTTPSPort 8443: Location %q, want https://example.com:8443/login", got)
	}

	check("before setup")
	complete = true
	redirects = append(redirects, struct{ method, host, target, location string }{http.MethodGet, "example.com", "/blog/post.html?x=1", "https://example.com/blog/post.html?x=1"})
	check("after setup")
}
