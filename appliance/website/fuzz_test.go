package website

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCleanPath checks that no request path that cleanPath accepts can
// name a dotfile or a place outside the site's folder.
func FuzzCleanPath(f *testing.F) {
	for _, seed := range []string{
		"/", "/index.html", "/blog/", "//a//b", "/../x", "/a/../../x", "/..", "/.",
		"/.git/config", "/a\\..\\b", "/a\x00b", "/\xff", "/a/./b", "relative", "",
		"/%2e%2e", "/…/x", "/a/.../b", "/ä/ö.html",
	} {
		f.Add(seed)
	}
	const root = "/srv/www"
	f.Fuzz(func(t *testing.T, urlPath string) {
		rel, err := cleanPath(urlPath)
		if err != nil {
			return
		}
		if !fs.ValidPath(rel) {
			t.Fatalf("cleanPath(%q) = %q, not a valid fs path", urlPath, rel)
		}
		if !utf8.ValidString(rel) || strings.ContainsAny(rel, "\\\x00") {
			t.Fatalf("cleanPath(%q) = %q contains a backslash, NUL or invalid UTF-8", urlPath, rel)
		}
		for _, seg := range strings.Split(rel, "/") {
			if strings.HasPrefix(seg, ".") && rel != "." {
				t.Fatalf("cleanPath(%q) = %q has the dot segment %q", urlPath, rel, seg)
			}
		}
		joined := filepath.Join(root, filepath.FromSlash(rel))
		if joined != root && !strings.HasPrefix(joined, root+"/") {
			t.Fatalf("cleanPath(%q) = %q leads to %s, outside %s", urlPath, rel, joined, root)
		}
	})
}

// FuzzEntryName checks that no zip entry name that entryName accepts
// leads out of the site's folder.
func FuzzEntryName(f *testing.F) {
	for _, seed := range []string{
		"index.html", "site/", "./a", "../a", "a/../../b", "/etc/passwd", `C:\x`, `..\x`,
		"a//b", "\xfc.html", "a\x00b", strings.Repeat("a/", 600),
	} {
		f.Add(seed)
	}
	const root = "/srv/www"
	f.Fuzz(func(t *testing.T, raw string) {
		name, err := entryName(raw)
		if err != nil {
			return
		}
		if !fs.ValidPath(name) {
			t.Fatalf("entryName(%q) = %q, not a valid fs path", raw, name)
		}
		if strings.ContainsAny(name, "\\\x00") || len(name) > MaxNameBytes {
			t.Fatalf("entryName(%q) = %q contains a backslash or NUL, or is too long", raw, name)
		}
		joined := filepath.Join(root, filepath.FromSlash(name))
		if joined != root && !strings.HasPrefix(joined, root+"/") {
			t.Fatalf("entryName(%q) = %q leads to %s, outside %s", raw, name, joined, root)
		}
	})
}
