package files

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"html"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// escapeSamples returns strings with markup characters, control
// characters, invalid UTF-8 and characters outside XML's Char production,
// plus random byte strings from a fixed seed.
func escapeSamples() []string {
	samples := []string{
		"", "datei.txt", "a & b", `q"u'o<t>e`, "tab\tnew\nline\rcr", "Ünïcödé", "A\u0308pfel",
		"\x00\x01\x1f\x7f", "\xff.bin", "\xed\xa0\x80", "\ufffd", "\uffff\ufffe", "😀 emoji",
		"%20 + , ; = @ $ : ~ _ - . / ? #", "\xc3", "ends in \xe2\x82",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab&<>\"'\t\n\r %?#/\x00\x7f\x80\xbf\xc3\xa4\xe2\x82\xac\xef\xbf\xbd\xf0\x9f\x98\x80\xff")
	for range 5000 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			if rng.IntN(4) == 0 {
				b[i] = byte(rng.IntN(256))
			} else {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		samples = append(samples, string(b))
	}
	return samples
}

func TestAppendEscapedTextMatchesEncodingXML(t *testing.T) {
	for _, s := range escapeSamples() {
		var want bytes.Buffer
		xml.EscapeText(&want, []byte(s))
		if got := appendEscapedText([]byte("x"), s); string(got) != "x"+want.String() {
			t.Errorf("appendEscapedText(%q): got %q, want %q", s, got[1:], want.String())
		}
	}
}

func TestAppendEscapedPathMatchesNetURL(t *testing.T) {
	// Every href starts with a folder's prefix, so the path is never
	// "*", which EscapedPath leaves alone.
	var samples []string
	for _, s := range escapeSamples() {
		samples = append(samples, "/dav/files/max/"+s)
	}
	for c := range 256 {
		samples = append(samples, "/dav/files/max/"+string([]byte{byte(c)}))
	}
	for _, s := range samples {
		want := html.EscapeString((&url.URL{Path: s}).EscapedPath())
		if got := appendEscapedPath([]byte("x"), s); string(got) != "x"+want {
			t.Errorf("appendEscapedPath(%q): got %q, want %q", s, got[1:], want)
		}
	}
}

// propfindHrefs sends PROPFIND Depth depth with allprop and returns the
// body and the hrefs of its responses.
func propfindHrefs(t *testing.T, env *testEnv, url, depth string) (string, []string) {
	t.Helper()
	status, body := env.do(t, "max", "PROPFIND", url, "", map[string]string{"Depth": depth})
	if status != http.StatusMultiStatus {
		t.Fatalf("PROPFIND %s: got %d, want 207", url, status)
	}
	var ms multistatus
	if err := xml.Unmarshal([]byte(body), &ms); err != nil {
		t.Fatalf("parsing multistatus: %v\n%s", err, body)
	}
	var hrefs []string
	for _, r := range ms.Responses {
		hrefs = append(hrefs, r.Href)
	}
	return body, hrefs
}

// TestPropfindListsLinksAndHidesUploads checks which entries of a folder
// the fast path lists: symbolic links that resolve inside the folder tree
// as their targets, nothing that leaves it or dangles, and no uploads in
// progress.
func TestPropfindListsLinksAndHidesUploads(t *testing.T) {
	env := newTestEnv(t, Options{})
	home := env.homeURL("max")
	env.do(t, "max", "MKCOL", home+"d/", "", nil)
	env.do(t, "max", "MKCOL", home+"d/sub/", "", nil)
	env.do(t, "max", "PUT", home+"d/datei.txt", "zwölf bytes", nil)
	env.do(t, "max", "PUT", home+"oben.txt", "oben", nil)
	disk := filepath.Join(env.dataDir, "home", "max", "d")
	links := map[string]string{
		"link-datei":  "datei.txt",
		"link-ordner": "sub",
		"link-hoch":   "../oben.txt",
		"link-kaputt": "fehlt",
		"link-aussen": "/etc/hostname",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(disk, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(disk, tempPrefix+"1"), []byte("halb"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(disk, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}

	body, hrefs := propfindHrefs(t, env, home+"d/", "1")
	slices.Sort(hrefs)
	want := []string{"/dav/files/max/d/", "/dav/files/max/d/datei.txt", "/dav/files/max/d/fifo",
		"/dav/files/max/d/link-datei", "/dav/files/max/d/link-hoch", "/dav/files/max/d/link-ordner/",
		"/dav/files/max/d/sub/"}
	if !slices.Equal(hrefs, want) {
		t.Errorf("hrefs: got %q, want %q", hrefs, want)
	}
	values := propValues(t, body)
	if got := values["/dav/files/max/d/link-datei DAV: getcontentlength"]; got != "HTTP/1.1 200 OK 12" {
		t.Errorf("getcontentlength of link-datei: got %q, want the target's 12 bytes", got)
	}
	if got := values["/dav/files/max/d/link-ordner/ DAV: resourcetype"]; got != "HTTP/1.1 200 OK <collection>" {
		t.Errorf("resourcetype of link-ordner: got %q, want a collection", got)
	}
}

// TestPropfindStreamedMatchesReadAhead compares the two ways the fast path
// lists a folder of more entries than one batch: read while writing, and
// read ahead because some name in the folder has a dead property with XML
// content. A file removed on disk keeps such a property without being
// listed, so both responses must be the same.
func TestPropfindStreamedMatchesReadAhead(t *testing.T) {
	env := newTestEnv(t, Options{})
	dir := env.homeURL("max") + "viele/"
	env.do(t, "max", "MKCOL", dir, "", nil)
	disk := filepath.Join(env.dataDir, "home", "max", "viele")
	for i := range 600 {
		if err := os.WriteFile(filepath.Join(disk, fmt.Sprintf("datei-%03d.txt", i)), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	folderTime := time.Date(2024, 2, 29, 13, 4, 5, 0, time.UTC)
	if err := os.Chtimes(disk, folderTime, folderTime); err != nil {
		t.Fatal(err)
	}
	streamed, hrefs := propfindHrefs(t, env, dir, "1")
	if len(hrefs) != 601 {
		t.Fatalf("streamed listing: got %d responses, want 601", len(hrefs))
	}
	if unique := len(slices.Compact(slices.Sorted(slices.Values(hrefs)))); unique != 601 {
		t.Errorf("streamed listing: got %d distinct hrefs, want 601", unique)
	}

	env.do(t, "max", "PUT", dir+"weg.txt", "x", nil)
	elementValue := strings.Replace(propSet, "blau", "<Z:rot/>", 1)
	if status, _ := env.do(t, "max", "PROPPATCH", dir+"weg.txt", elementValue, nil); status != http.StatusMultiStatus {
		t.Fatalf("PROPPATCH: got %d, want 207", status)
	}
	if err := os.Remove(filepath.Join(disk, "weg.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(disk, folderTime, folderTime); err != nil {
		t.Fatal(err)
	}
	readAhead, _ := propfindHrefs(t, env, dir, "1")
	if readAhead != streamed {
		t.Errorf("listing read ahead differs from the streamed one:\n%.2000s\nstreamed:\n%.2000s", readAhead, streamed)
	}
}

// TestPropfindDotFileAtRoot checks the href of a file whose name starts
// with a dot, at the top of the folder tree.
func TestPropfindDotFileAtRoot(t *testing.T) {
	env := newTestEnv(t, Options{})
	env.do(t, "max", "PUT", env.homeURL("max")+".versteckt", "x", nil)
	_, hrefs := propfindHrefs(t, env, env.homeURL("max")+".versteckt", "0")
	if want := []string{"/dav/files/max/.versteckt"}; !slices.Equal(hrefs, want) {
		t.Errorf("hrefs: got %q, want %q", hrefs, want)
	}
}
