package certs

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/dnsprovider/rfc2136"
)

func TestRetryAfterTransport(t *testing.T) {
	status := http.StatusTooManyRequests
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(status)
	}))
	defer server.Close()
	transport := &retryAfterTransport{base: http.DefaultTransport}
	client := &http.Client{Transport: transport}

	get := func() {
		t.Helper()
		resp, err := client.Get(server.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	get()
	got := transport.take()
	if wait := time.Until(got); wait < 110*time.Second || wait > 130*time.Second {
		t.Errorf("Retry-After of a 429 response: got %v from now, want about 120s", wait)
	}
	if got := transport.take(); !got.IsZero() {
		t.Errorf("second take = %v, want zero", got)
	}

	status = http.StatusOK
	get()
	if got := transport.take(); !got.IsZero() {
		t.Errorf("Retry-After of a 200 response recorded as %v, want it ignored", got)
	}
}

func TestNewConvertsInternationalNames(t *testing.T) {
	m, err := New(Config{Store: openStore(t), Names: []string{"Bücher.example", "*.bücher.example"}, DNSProvider: &rfc2136.Provider{}})
	if err != nil {
		t.Fatal(err)
	}
	states := m.State()
	want := []string{"xn--bcher-kva.example", "*.xn--bcher-kva.example"}
	for i, name := range want {
		if states[i].Name != name {
			t.Errorf("name %d = %q, want %q", i, states[i].Name, name)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, seed := range []string{"120", "0", "Fri, 02 Jan 2026 04:00:00 GMT", "", "-1", "1e9", "99999999999999999999"} {
		f.Add(seed)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, value string) {
		got, ok := parseRetryAfter(value, now)
		if !ok && !got.IsZero() {
			t.Errorf("parseRetryAfter(%q) = %v, false, want the zero time when not ok", value, got)
		}
	})
}
