package files

import (
	"net/http"
	"strings"
	"testing"
)

func TestGetRanges(t *testing.T) {
	env := newTestEnv(t, Options{})
	file := env.homeURL("max") + "zahlen.txt"
	if status, _ := env.do(t, "max", "PUT", file, "0123456789", nil); status != http.StatusCreated {
		t.Fatalf("PUT: got %d, want 201", status)
	}
	tests := []struct {
		rangeHeader string
		status      int
		body        string
	}{
		{"bytes=2-4", http.StatusPartialContent, "234"},
		{"bytes=-3", http.StatusPartialContent, "789"},
		{"bytes=8-", http.StatusPartialContent, "89"},
		{"bytes=20-30", http.StatusRequestedRangeNotSatisfiable, ""},
	}
	for _, tt := range tests {
		status, body := env.do(t, "max", "GET", file, "", map[string]string{"Range": tt.rangeHeader})
		if status != tt.status {
			t.Errorf("Range %s: got status %d, want %d", tt.rangeHeader, status, tt.status)
		}
		if tt.body != "" && body != tt.body {
			t.Errorf("Range %s: got body %q, want %q", tt.rangeHeader, body, tt.body)
		}
	}
}

// TestMemberFolders checks which folders a member and the owner reach.
func TestMemberFolders(t *testing.T) {
	env := newTestEnv(t, Options{})
	tests := []struct {
		user, path string
		want       int
	}{
		{"max", HomePrefix + "max/", http.StatusMultiStatus},
		{"max", SharedPrefix, http.StatusMultiStatus},
		{"max", HomePrefix + "olga/", http.StatusForbidden},
		{"max", WebsitePrefix, http.StatusForbidden},
		{"olga", WebsitePrefix, http.StatusMultiStatus},
		{"olga", HomePrefix + "max/", http.StatusForbidden},
		{"max", HomePrefix, http.StatusNotFound},
		{"max", "/dav/other/", http.StatusNotFound},
	}
	for _, tt := range tests {
		status, _ := env.do(t, tt.user, "PROPFIND", env.url+tt.path, "", map[string]string{"Depth": "0"})
		if status != tt.want {
			t.Errorf("%s PROPFIND %s: got %d, want %d", tt.user, tt.path, status, tt.want)
		}
	}

	// A file that max puts in the shared folder is olga's to read.
	if status, _ := env.do(t, "max", "PUT", env.url+SharedPrefix+"liste.txt", "Eier", nil); status != http.StatusCreated {
		t.Fatalf("PUT to shared: got %d, want 201", status)
	}
	if status, body := env.do(t, "olga", "GET", env.url+SharedPrefix+"liste.txt", "", nil); status != http.StatusOK || !strings.Contains(body, "Eier") {
		t.Errorf("GET from shared as olga: got %d %q, want 200 %q", status, body, "Eier")
	}
}
