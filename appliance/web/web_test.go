package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path, acceptLanguage string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	if acceptLanguage != "" {
		req.Header.Set("Accept-Language", acceptLanguage)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Result(), string(body)
}

func TestFirstBootPageLanguages(t *testing.T) {
	h := New(Options{Version: "v1.2.3", DataDir: t.TempDir()})
	tests := []struct{ path, accept, wantLang, wantText string }{
		{"/", "de-DE,de;q=0.9", "de", "Willkommen bei Deiner Heimwolke"},
		{"/", "en-GB", "en", "Welcome to your Heimwolke"},
		{"/", "", "en", "Welcome to your Heimwolke"},
		{"/?lang=de", "en", "de", "Willkommen"},
	}
	for _, tt := range tests {
		resp, body := get(t, h, tt.path, tt.accept)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d, want 200", tt.path, resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Language"); got != tt.wantLang {
			t.Errorf("GET %s (Accept-Language %q): Content-Language %q, want %q", tt.path, tt.accept, got, tt.wantLang)
		}
		if !strings.Contains(body, tt.wantText) {
			t.Errorf("GET %s (Accept-Language %q): body lacks %q", tt.path, tt.accept, tt.wantText)
		}
		if !strings.Contains(body, `<span id="version">v1.2.3</span>`) {
			t.Errorf("GET %s: body lacks the version", tt.path)
		}
	}
}

func TestHealthReportsVersionAndStorage(t *testing.T) {
	h := New(Options{Version: "v9", DataDir: t.TempDir()})
	req := httptest.NewRequest("GET", "/healthz", nil)
	req.RemoteAddr = "192.168.178.20:50000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	var report Health
	if err := json.Unmarshal([]byte(body), &report); err != nil {
		t.Fatalf("decoding %q: %v", body, err)
	}
	if report.Status != "ok" || report.Version != "v9" {
		t.Errorf("status %q version %q, want ok v9", report.Status, report.Version)
	}
	if report.Storage == nil || report.Storage.TotalBytes == 0 {
		t.Errorf("storage = %+v, want a measured file system", report.Storage)
	}
}

func TestUnknownPathIsLocalized404(t *testing.T) {
	h := New(Options{Version: "v", DataDir: t.TempDir()})
	resp, body := get(t, h, "/nope", "de")
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d, want 404", resp.StatusCode)
	}
	if !strings.Contains(body, "Diese Seite gibt es nicht") {
		t.Errorf("body %q, want the German not-found message", body)
	}
}

func TestRateLimitPerAddress(t *testing.T) {
	h := New(Options{Version: "v", DataDir: t.TempDir()})
	limited := 0
	for range 200 {
		resp, _ := get(t, h, "/healthz", "")
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("200 requests at once from one address were all served, want some 429")
	}
}

func TestStatusRSS(t *testing.T) {
	path := t.TempDir() + "/status"
	if err := os.WriteFile(path, []byte("Name:\theimwolke\nVmPeak:\t  9000 kB\nVmRSS:\t    12288 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, ok := statusRSS(path)
	if !ok || got != 12288*1024 {
		t.Errorf("statusRSS = %d, %v; want %d, true", got, ok, 12288*1024)
	}
}

func TestUIServesAllButHealth(t *testing.T) {
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ui " + r.URL.Path))
	})
	h := New(Options{Version: "v", DataDir: t.TempDir(), UI: ui})
	for _, path := range []string{"/", "/setup/owner", "/nope"} {
		resp, body := get(t, h, path, "")
		if resp.StatusCode != http.StatusOK || body != "ui "+path {
			t.Errorf("GET %s: status %d body %q, want 200 %q", path, resp.StatusCode, body, "ui "+path)
		}
	}
	resp, body := get(t, h, "/healthz", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"status":"ok"`) {
		t.Errorf("GET /healthz: status %d body %q, want the health report", resp.StatusCode, body)
	}
}

func TestHealthHidesDetailsFromInternet(t *testing.T) {
	h := New(Options{Version: "v9", DataDir: t.TempDir()})
	req := httptest.NewRequest("GET", "/healthz", nil)
	req.RemoteAddr = "203.0.113.5:40000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var report Health
	if err := json.NewDecoder(rec.Result().Body).Decode(&report); err != nil {
		t.Fatal(err)
	}
	if report.Status != "ok" {
		t.Errorf("status %q, want ok", report.Status)
	}
	if report.Storage != nil || report.Processes != nil {
		t.Errorf("report for an internet address has storage %+v and processes %+v, want neither", report.Storage, report.Processes)
	}
}

func TestRateLimitMessageLocalized(t *testing.T) {
	h := New(Options{Version: "v", DataDir: t.TempDir()})
	var body string
	for range 200 {
		resp, b := get(t, h, "/healthz", "de")
		if resp.StatusCode == http.StatusTooManyRequests {
			body = b
			break
		}
	}
	if !strings.Contains(body, "Zu viele Anfragen") {
		t.Errorf("429 body %q, want the German message", body)
	}
}
