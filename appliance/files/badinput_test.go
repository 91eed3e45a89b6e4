package files

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const propSet = `<?xml version="1.0" encoding="utf-8"?>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:test"><D:set><D:prop><Z:farbe>blau</Z:farbe></D:prop></D:set></D:propertyupdate>`

const propGet = `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:Z="urn:test"><D:prop><Z:farbe/></D:prop></D:propfind>`

// billionLaughs expands to 10^9 "lol" in a parser that expands entities.
const billionLaughs = `<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:test"><D:set><D:prop><Z:farbe>&lol9;</Z:farbe></D:prop></D:set></D:propertyupdate>`

// TestBadXMLLeavesPropertiesAlone sends broken and hostile XML bodies and
// checks the status and that the stored property keeps its value.
func TestBadXMLLeavesPropertiesAlone(t *testing.T) {
	env := newTestEnv(t, Options{MaxXMLBytes: 64 << 10})
	file := env.homeURL("max") + "brief.txt"
	if status, _ := env.do(t, "max", "PUT", file, "hallo", nil); status != http.StatusCreated {
		t.Fatalf("PUT: got %d, want 201", status)
	}
	if status, _ := env.do(t, "max", "PROPPATCH", file, propSet, nil); status != http.StatusMultiStatus {
		t.Fatalf("PROPPATCH: got %d, want 207", status)
	}

	huge := strings.Replace(propSet, "blau", strings.Repeat("x", 100<<10), 1)
	tests := []struct {
		name, method, body string
		want               int
	}{
		{"malformed PROPPATCH", "PROPPATCH", strings.Replace(propSet, "</D:set>", "", 1), http.StatusBadRequest},
		{"entity expansion in PROPPATCH", "PROPPATCH", billionLaughs, http.StatusBadRequest},
		{"entity expansion in PROPFIND", "PROPFIND", billionLaughs, http.StatusBadRequest},
		{"entity expansion in LOCK", "LOCK", billionLaughs, http.StatusBadRequest},
		{"huge PROPPATCH", "PROPPATCH", huge, http.StatusRequestEntityTooLarge},
		{"undeclared namespace prefix", "PROPPATCH", strings.Replace(propSet, `xmlns:Z="urn:test"`, `xmlns:Z=""`, 1), http.StatusBadRequest},
		{"quota property is protected", "PROPPATCH", strings.Replace(propSet, "Z:farbe", "D:quota-used-bytes", 2), http.StatusMultiStatus},
	}
	for _, tt := range tests {
		status, body := env.do(t, "max", tt.method, file, tt.body, map[string]string{"Depth": "0"})
		if status != tt.want {
			t.Errorf("%s: got status %d, want %d (%s)", tt.name, status, tt.want, body)
		}
		_, props := env.do(t, "max", "PROPFIND", file, propGet, map[string]string{"Depth": "0"})
		if !strings.Contains(props, ">blau</") {
			t.Errorf("%s: property changed, PROPFIND returned %s", tt.name, props)
		}
	}
}

func TestPropfindInfiniteDepthRejected(t *testing.T) {
	env := newTestEnv(t, Options{})
	for _, depth := range []string{"infinity", ""} {
		status, body := env.do(t, "max", "PROPFIND", env.homeURL("max"), "", map[string]string{"Depth": depth})
		if status != http.StatusForbidden {
			t.Errorf("Depth %q: got status %d, want 403", depth, status)
		}
		if !strings.Contains(body, "propfind-finite-depth") {
			t.Errorf("Depth %q: body %q lacks the propfind-finite-depth precondition", depth, body)
		}
	}
	if status, _ := env.do(t, "max", "PROPFIND", env.homeURL("max"), "", map[string]string{"Depth": "1"}); status != http.StatusMultiStatus {
		t.Errorf("Depth 1: got status %d, want 207", status)
	}
}

// rawRequest sends target as the request target, exactly as given, and
// returns the status.
func (env *testEnv) rawRequest(t *testing.T, user, method, target string, header map[string]string, body string) int {
	t.Helper()
	u, _ := url.Parse(env.url)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, _ := http.NewRequest(method, env.url, strings.NewReader(body))
	req.URL.Opaque = target
	req.SetBasicAuth(user, env.secrets[user])
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestPathTraversalStaysInHome tries to reach olga's home from max's with
// dot segments, encoded dots and slashes, backslashes, a symbolic link
// and Destination headers. None may read or change olga's file.
func TestPathTraversalStaysInHome(t *testing.T) {
	env := newTestEnv(t, Options{})
	if status, _ := env.do(t, "olga", "PUT", env.homeURL("olga")+"geheim.txt", "geheim", nil); status != http.StatusCreated {
		t.Fatalf("PUT as olga: got %d, want 201", status)
	}
	olgaFile := filepath.Join(env.dataDir, "home", "olga", "geheim.txt")
	maxHome := filepath.Join(env.dataDir, "home", "max")
	if err := os.MkdirAll(maxHome, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(env.dataDir, "home", "olga"), filepath.Join(maxHome, "link")); err != nil {
		t.Fatal(err)
	}

	targets := []string{
		"/dav/files/max/../olga/geheim.txt",
		"/dav/files/max/%2e%2e/olga/geheim.txt",
		"/dav/files/max/%2E%2E/%2E%2E/files/olga/geheim.txt",
		"/dav/files/max/x%2f..%2f..%2folga%2fgeheim.txt",
		"/dav/files/max/..%5c..%5colga%5cgeheim.txt",
		"/dav/files/max/link/geheim.txt",
		"/dav/files/olga/geheim.txt",
		"/dav/website/index.html",
	}
	for _, target := range targets {
		for _, method := range []string{"GET", "PUT", "DELETE"} {
			status := env.rawRequest(t, "max", method, target, nil, "überschrieben")
			if status < 400 {
				t.Errorf("%s %s: got status %d, want 4xx", method, target, status)
			}
		}
	}

	if status, _ := env.do(t, "max", "PUT", env.homeURL("max")+"mein.txt", "meins", nil); status != http.StatusCreated {
		t.Fatalf("PUT as max: got %d, want 201", status)
	}
	destinations := map[string]int{
		env.homeURL("olga") + "gestohlen.txt":        http.StatusBadGateway,
		env.homeURL("max") + "../olga/gestohlen.txt": http.StatusBadRequest,
		env.homeURL("max") + "%2e%2e/olga/x.txt":     http.StatusBadRequest,
		env.homeURL("max") + "link/gestohlen.txt":    http.StatusForbidden,
	}
	for dest, want := range destinations {
		for _, method := range []string{"COPY", "MOVE"} {
			status := env.rawRequest(t, "max", method, "/dav/files/max/mein.txt", map[string]string{"Destination": dest}, "")
			if status != want {
				t.Errorf("%s to %s: got status %d, want %d", method, dest, status, want)
			}
		}
	}

	data, err := os.ReadFile(olgaFile)
	if err != nil || string(data) != "geheim" {
		t.Errorf("olga's file: got %q (%v), want %q", data, err, "geheim")
	}
	entries, _ := os.ReadDir(filepath.Dir(olgaFile))
	if len(entries) != 1 {
		t.Errorf("olga's home: got %d entries, want 1", len(entries))
	}
}

func TestQuotaInsufficientStorage(t *testing.T) {
	env := newTestEnv(t, Options{QuotaBytes: 1000})
	home := env.homeURL("max")
	if status, _ := env.do(t, "max", "PUT", home+"a.bin", strings.Repeat("a", 600), nil); status != http.StatusCreated {
		t.Fatalf("first PUT: got %d, want 201", status)
	}
	if status, _ := env.do(t, "max", "PUT", home+"b.bin", strings.Repeat("b", 600), nil); status != http.StatusInsufficientStorage {
		t.Errorf("PUT over quota: got %d, want 507", status)
	}

	// Without Content-Length the quota stops the upload as it is written.
	req, _ := http.NewRequest("PUT", home+"c.bin", strings.NewReader(strings.Repeat("c", 2<<20)))
	req.ContentLength = -1
	req.SetBasicAuth("max", env.secrets["max"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInsufficientStorage {
		t.Errorf("chunked PUT over quota: got %d, want 507", resp.StatusCode)
	}

	entries, _ := os.ReadDir(filepath.Join(env.dataDir, "home", "max"))
	if len(entries) != 1 || entries[0].Name() != "a.bin" {
		t.Errorf("home after rejected uploads: got %v, want only a.bin", entries)
	}

	// Replacing a file counts only the difference.
	if status, _ := env.do(t, "max", "PUT", home+"a.bin", strings.Repeat("A", 900), nil); status != http.StatusCreated && status != http.StatusNoContent {
		t.Errorf("replacing PUT within quota: got %d, want 201 or 204", status)
	}

	quota := `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>`
	_, body := env.do(t, "max", "PROPFIND", home, quota, map[string]string{"Depth": "0"})
	for _, want := range []string{"quota-used-bytes>900<", "quota-available-bytes>100<"} {
		if !strings.Contains(body, want) {
			t.Errorf("PROPFIND quota: body lacks %q: %s", want, body)
		}
	}
}

// TestCutOffUploadKeepsOldContent guards against storing the first part
// of an upload whose connection broke.
func TestCutOffUploadKeepsOldContent(t *testing.T) {
	env := newTestEnv(t, Options{})
	if status, _ := env.do(t, "max", "PUT", env.homeURL("max")+"a.txt", "alt", nil); status != http.StatusCreated {
		t.Fatalf("PUT: got %d, want 201", status)
	}
	u, _ := url.Parse(env.url)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT /dav/files/max/a.txt HTTP/1.1\r\nHost: %s\r\nContent-Length: 100000\r\n", u.Host)
	req, _ := http.NewRequest("PUT", env.url, nil)
	req.SetBasicAuth("max", env.secrets["max"])
	fmt.Fprintf(conn, "Authorization: %s\r\n\r\nneu neu neu", req.Header.Get("Authorization"))
	conn.Close()

	// The server notices the cut when it reads; a GET after it must
	// still see the old content and no temporary file.
	status, body := env.do(t, "max", "GET", env.homeURL("max")+"a.txt", "", nil)
	if status != http.StatusOK || body != "alt" {
		t.Errorf("GET after cut-off upload: got %d %q, want 200 %q", status, body, "alt")
	}
	waitForNoTempFiles(t, filepath.Join(env.dataDir, "home", "max"))
}

func waitForNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	for range 100 {
		entries, _ := os.ReadDir(dir)
		temp := false
		for _, e := range entries {
			temp = temp || strings.HasPrefix(e.Name(), tempPrefix)
		}
		if !temp {
			return
		}
		sleep()
	}
	t.Errorf("temporary upload file left in %s", dir)
}

// TestNamesRoundTrip stores names with spaces, umlauts in NFD, '%', '#'
// and '?', and finds them again by their NFC spelling and in listings.
func TestNamesRoundTrip(t *testing.T) {
	env := newTestEnv(t, Options{})
	home := env.homeURL("max")
	names := map[string]string{ // as sent: as found
		"Gru\u0308\u00dfe an U\u0308li.txt": "Grüße an Üli.txt",
		"100% sicher.txt":                   "100% sicher.txt",
		"Nr. #5.txt":                        "Nr. #5.txt",
		"was?.txt":                          "was?.txt",
	}
	for sent, found := range names {
		if status, _ := env.do(t, "max", "PUT", home+url.PathEscape(sent), "inhalt "+found, nil); status != http.StatusCreated {
			t.Errorf("PUT %q: got %d, want 201", sent, status)
		}
		status, body := env.do(t, "max", "GET", home+url.PathEscape(found), "", nil)
		if status != http.StatusOK || body != "inhalt "+found {
			t.Errorf("GET %q: got %d %q, want 200 %q", found, status, body, "inhalt "+found)
		}
		if _, err := os.Stat(filepath.Join(env.dataDir, "home", "max", found)); err != nil {
			t.Errorf("file on disk for %q: %v", sent, err)
		}
	}
	_, listing := env.do(t, "max", "PROPFIND", home, "", map[string]string{"Depth": "1"})
	for _, found := range names {
		href := "<D:href>" + (&url.URL{Path: HomePrefix + "max/" + found}).EscapedPath() + "</D:href>"
		if !strings.Contains(listing, href) {
			t.Errorf("listing lacks %s", href)
		}
	}
}

func TestPutOnFolderNotAllowed(t *testing.T) {
	env := newTestEnv(t, Options{})
	home := env.homeURL("max")
	if status, _ := env.do(t, "max", "MKCOL", home+"Ordner/", "", nil); status != http.StatusCreated {
		t.Fatalf("MKCOL: got %d, want 201", status)
	}
	if status, _ := env.do(t, "max", "PUT", home+"Ordner", "daten", nil); status != http.StatusMethodNotAllowed {
		t.Errorf("PUT on a folder: got %d, want 405", status)
	}
	if status, _ := env.do(t, "max", "PUT", home+tempPrefix+"x", "daten", nil); status != http.StatusForbidden {
		t.Errorf("PUT of a reserved name: got %d, want 403", status)
	}
	fi, err := os.Stat(filepath.Join(env.dataDir, "home", "max", "Ordner"))
	if err != nil || !fi.IsDir() {
		t.Errorf("folder after PUT: got %v, %v, want a folder", fi, err)
	}
}
