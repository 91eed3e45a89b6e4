package website

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPublishZipServesSite(t *testing.T) {
	s := newTestSite(t, Options{})
	archive := makeZip(t,
		file("index.html", "<h1>Neu</h1>"),
		file("css/site.css", "h1 {}"),
		zipEntrySpec{name: "img/", mode: fs.ModeDir | 0o755},
		file(".well-hidden", "hidden"),
	)
	if err := publish(s, archive); err != nil {
		t.Fatal(err)
	}
	wantTree(t, s.Dir(), "index.html", "<h1>Neu</h1>", "css/site.css", "h1 {}", ".well-hidden", "hidden")
	if info, err := os.Stat(filepath.Join(s.Dir(), "img")); err != nil || !info.IsDir() {
		t.Errorf("empty folder img: %v, want it created", err)
	}
	res := get(t, s, "/")
	wantStatus(t, res, http.StatusOK)
	if b := body(t, res); b != "<h1>Neu</h1>" {
		t.Errorf("GET / = %q after publish", b)
	}
	wantNoLeftovers(t, s)
}

func TestPublishZipReplacesWholeSite(t *testing.T) {
	s := newTestSite(t, Options{})
	if err := publish(s, makeZip(t, file("index.html", "v1"), file("old.html", "old"))); err != nil {
		t.Fatal(err)
	}
	if err := publish(s, makeZip(t, file("index.html", "v2"))); err != nil {
		t.Fatal(err)
	}
	wantTree(t, s.Dir(), "index.html", "v2")
	wantNoLeftovers(t, s)
}

func TestPublishZipTopFolder(t *testing.T) {
	tests := []struct {
		name    string
		entries []zipEntrySpec
		want    []string
	}{
		{
			name: "folder entry and files",
			entries: []zipEntrySpec{
				{name: "meine-seite/", mode: fs.ModeDir | 0o755},
				file("meine-seite/index.html", "top"),
				file("meine-seite/blog/index.html", "blog"),
			},
			want: []string{"index.html", "top", "blog/index.html", "blog"},
		},
		{
			name: "files only, with macOS metadata",
			entries: []zipEntrySpec{
				file("site/index.html", "top"),
				file("__MACOSX/site/._index.html", "fork"),
				file("site/.DS_Store", "finder"),
			},
			want: []string{"index.html", "top"},
		},
		{
			name: "Windows separators",
			entries: []zipEntrySpec{
				file(`site\`, ""),
				file(`site\css\`, ""),
				file(`site\index.html`, "top"),
				file(`site\css\a.css`, "css"),
			},
			want: []string{"index.html", "top", "css/a.css", "css"},
		},
		{
			name: "file beside the folder keeps the folder",
			entries: []zipEntrySpec{
				file("site/index.html", "inner"),
				file("index.html", "outer"),
			},
			want: []string{"site/index.html", "inner", "index.html", "outer"},
		},
		{
			name:    "a single file stays",
			entries: []zipEntrySpec{file("index.html", "only")},
			want:    []string{"index.html", "only"},
		},
		{
			name:    "only one level is stripped",
			entries: []zipEntrySpec{file("a/b/index.html", "deep")},
			want:    []string{"b/index.html", "deep"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSite(t, Options{})
			if err := publish(s, makeZip(t, tt.entries...)); err != nil {
				t.Fatal(err)
			}
			wantTree(t, s.Dir(), tt.want...)
		})
	}
}

// rawEntry returns an entry whose header declares sizes and CRC of the
// test's choice, stored without compression.
func rawEntry(name, body string, uncompressed uint64) zipEntrySpec {
	return zipEntrySpec{name: name, body: body, raw: true, header: zip.FileHeader{
		Method:             zip.Store,
		CRC32:              crc32.ChecksumIEEE([]byte(body)),
		CompressedSize64:   uint64(len(body)),
		UncompressedSize64: uncompressed,
	}}
}

// zeros returns n zero bytes as a string, which deflate shrinks about
// 1000:1.
func zeros(n int) string { return string(make([]byte, n)) }

func manyFiles(n int, prefix string) []zipEntrySpec {
	entries := make([]zipEntrySpec, n)
	for i := range entries {
		entries[i] = zipEntrySpec{name: fmt.Sprintf("%s%d.html", prefix, i), raw: true, header: zip.FileHeader{Method: zip.Store}}
	}
	return entries
}

func TestPublishZipRejects(t *testing.T) {
	manyFolders := make([]zipEntrySpec, MaxFolders+1)
	for i := range manyFolders {
		manyFolders[i] = zipEntrySpec{name: fmt.Sprintf("d%d/", i), mode: fs.ModeDir | 0o755}
	}
	// Files of 1 MiB each are below the per-file ratio check; together
	// they exceed MaxTotalBytes. Their headers declare the size, which
	// planning rejects before reading any data.
	var tooLarge []zipEntrySpec
	for i := 0; i <= MaxTotalBytes/ratioMinBytes; i++ {
		tooLarge = append(tooLarge, rawEntry(fmt.Sprintf("big%d.bin", i), "x", ratioMinBytes))
	}
	encrypted := zipEntrySpec{name: "secret.html", body: "xxxxxxxxxxxx", raw: true, header: zip.FileHeader{Method: zip.Store, Flags: 0x1, CompressedSize64: 12, UncompressedSize64: 12}}
	lzma := zipEntrySpec{name: "packed.html", body: "xx", raw: true, header: zip.FileHeader{Method: 14, CompressedSize64: 2, UncompressedSize64: 2}}

	tests := []struct {
		name    string
		archive []byte
		reason  Reason
		entry   string
	}{
		{"not a zip", []byte("this is not a zip archive at all"), ReasonNotZip, ""},
		{"empty", makeZip(t, zipEntrySpec{name: "site/", mode: fs.ModeDir | 0o755}), ReasonEmpty, ""},
		{"absolute", makeZip(t, file("index.html", "x"), file("/etc/cron.d/evil", "x")), ReasonAbsolutePath, "/etc/cron.d/evil"},
		{"drive letter", makeZip(t, file(`C:\evil.html`, "x")), ReasonAbsolutePath, `C:\evil.html`},
		{"dot dot", makeZip(t, file("../evil.html", "x")), ReasonParentFolder, "../evil.html"},
		{"dot dot inside", makeZip(t, file("a/../../evil.html", "x")), ReasonParentFolder, "a/../../evil.html"},
		{"dot dot backslash", makeZip(t, file(`..\evil.html`, "x")), ReasonParentFolder, `..\evil.html`},
		{"not UTF-8", makeZip(t, file("\xfcber.html", "x")), ReasonInvalidName, "\xfcber.html"},
		{"NUL", makeZip(t, file("index.html\x00.txt", "x")), ReasonInvalidName, "index.html\x00.txt"},
		{"control character", makeZip(t, file("a\nb.html", "x")), ReasonInvalidName, "a\nb.html"},
		{"long name", makeZip(t, file(strings.Repeat("a", 256)+".html", "x")), ReasonInvalidName, strings.Repeat("a", 256) + ".html"},
		{"long path", makeZip(t, file(strings.Repeat("a/", MaxNameBytes/2)+"x.html", "x")), ReasonInvalidName, strings.Repeat("a/", MaxNameBytes/2) + "x.html"},
		{"symlink", makeZip(t, file("index.html", "x"), zipEntrySpec{name: "passwd", body: "/etc/passwd", mode: fs.ModeSymlink | 0o777}), ReasonSymlink, "passwd"},
		{"named pipe", makeZip(t, zipEntrySpec{name: "fifo", mode: fs.ModeNamedPipe | 0o644}), ReasonSpecialFile, "fifo"},
		{"device", makeZip(t, zipEntrySpec{name: "sda", mode: fs.ModeDevice | 0o644}), ReasonSpecialFile, "sda"},
		{"encrypted", makeZip(t, encrypted), ReasonEncrypted, "secret.html"},
		{"LZMA", makeZip(t, lzma), ReasonUnsupportedMethod, "packed.html"},
		{"same file twice", makeZip(t, file("index.html", "a"), file("index.html", "b")), ReasonDuplicate, "index.html"},
		{"same file after cleaning", makeZip(t, file("a/index.html", "a"), file("a//./index.html", "b")), ReasonDuplicate, "a//./index.html"},
		{"file and folder", makeZip(t, file("blog", "a"), file("blog/index.html", "b")), ReasonDuplicate, "blog/index.html"},
		{"folder and file", makeZip(t, file("blog/index.html", "b"), file("blog", "a")), ReasonDuplicate, "blog"},
		{"too many files", makeZip(t, manyFiles(MaxFiles+1, "f")...), ReasonTooManyFiles, ""},
		{"too many folders", makeZip(t, append(manyFolders, file("index.html", "x"))...), ReasonTooManyFolders, ""},
		{"too large", makeZip(t, tooLarge...), ReasonTooLarge, ""},
		{"bomb file", makeZip(t, file("index.html", "x"), file("zeros.bin", zeros(4<<20))), ReasonCompressionRatio, "zeros.bin"},
		{"bomb archive", makeZip(t, file("a.bin", zeros(900<<10)), file("b.bin", zeros(900<<10)), file("c.bin", zeros(900<<10))), ReasonCompressionRatio, ""},
	}

	s := newTestSite(t, Options{})
	if err := publish(s, makeZip(t, file("index.html", "the old site"))); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		err := publish(s, tt.archive)
		var zerr *ZipError
		if !errors.As(err, &zerr) {
			t.Errorf("%s: got error %v, want a *ZipError", tt.name, err)
			continue
		}
		if zerr.Reason != tt.reason || zerr.Name != tt.entry {
			t.Errorf("%s: got reason %q for %q, want %q for %q (%v)", tt.name, zerr.Reason, zerr.Name, tt.reason, tt.entry, err)
		}
		if !strings.HasPrefix(err.Error(), "website: zip ") {
			t.Errorf("%s: message %q, want it to start with \"website: zip \"", tt.name, err)
		}
	}
	wantTree(t, s.Dir(), "index.html", "the old site")
	wantNoLeftovers(t, s)
}

func TestZipErrorMessages(t *testing.T) {
	tests := []struct {
		err  *ZipError
		want string
	}{
		{&ZipError{Reason: ReasonSymlink, Name: "a/link"}, `website: zip entry "a/link" rejected: symbolic link`},
		{&ZipError{Reason: ReasonTooManyFiles}, "website: zip archive rejected: more than 10000 files"},
		{&ZipError{Reason: ReasonCorrupt, Name: "x", Err: zip.ErrChecksum}, `website: zip entry "x" rejected: data is damaged (checksum or size mismatch): zip: checksum error`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	for reason := range reasonText {
		if reasonText[reason] == "" {
			t.Errorf("reason %q has no text", reason)
		}
	}
}

func TestPublishZipCorruptData(t *testing.T) {
	s := newTestSite(t, Options{})
	if err := publish(s, makeZip(t, file("index.html", "the old site"))); err != nil {
		t.Fatal(err)
	}
	// A stored entry with a CRC-32 that does not match its data.
	bad := rawEntry("page.html", "hello, world", 12)
	bad.header.CRC32 ^= 1
	err := publish(s, makeZip(t, file("index.html", "new"), bad))
	var zerr *ZipError
	if !errors.As(err, &zerr) || zerr.Reason != ReasonCorrupt || zerr.Name != "page.html" {
		t.Fatalf("got %v, want ReasonCorrupt for page.html", err)
	}
	if !errors.Is(err, zip.ErrChecksum) {
		t.Errorf("got %v, want it to wrap zip.ErrChecksum", err)
	}

	// Data shorter than the declared size.
	short := rawEntry("page.html", "hello", 12)
	short.header.CRC32 = crc32.ChecksumIEEE([]byte("hello"))
	err = publish(s, makeZip(t, short))
	if !errors.As(err, &zerr) || zerr.Reason != ReasonCorrupt {
		t.Fatalf("short entry: got %v, want ReasonCorrupt", err)
	}

	wantTree(t, s.Dir(), "index.html", "the old site")
	wantNoLeftovers(t, s)
}

// failingReader is an upload whose reads of the 16 bytes from offset fail,
// like a disk that fails in the middle of unpacking.
type failingReader struct {
	r      io.ReaderAt
	offset int64
}

var errDiskFailed = errors.New("simulated read failure")

func (f *failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.offset && off < f.offset+16 {
		return 0, errDiskFailed
	}
	return f.r.ReadAt(p, off)
}

// TestPublishInterruptedKeepsOldSite guards against a failure in the middle
// of unpacking leaving a half site in place.
func TestPublishInterruptedKeepsOldSite(t *testing.T) {
	s := newTestSite(t, Options{})
	if err := publish(s, makeZip(t, file("index.html", "the old site"), file("about.html", "old about"))); err != nil {
		t.Fatal(err)
	}

	// b.html is hex of random bytes, which deflate cannot shrink to less
	// than the 26 bytes the failure needs.
	random := make([]byte, 2048)
	rand.Read(random)
	b := hex.EncodeToString(random)
	archive := makeZip(t, file("index.html", "new"), file("a.html", "a"), file("b.html", b), file("c.html", "c"))
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		t.Fatal(err)
	}
	// Fail while reading the third file's data, after two are unpacked.
	offset, err := zr.File[2].DataOffset()
	if err != nil {
		t.Fatal(err)
	}
	r := &failingReader{r: bytes.NewReader(archive), offset: offset + 10}
	err = s.PublishZip(r, int64(len(archive)))
	if !errors.Is(err, errDiskFailed) {
		t.Fatalf("got %v, want the read failure", err)
	}
	var zerr *ZipError
	if errors.As(err, &zerr) {
		t.Errorf("got %v, a *ZipError; a failed read is not the archive's fault", err)
	}
	wantTree(t, s.Dir(), "index.html", "the old site", "about.html", "old about")
	wantNoLeftovers(t, s)

	// The next publish works.
	if err := publish(s, archive); err != nil {
		t.Fatal(err)
	}
	wantTree(t, s.Dir(), "index.html", "new", "a.html", "a", "b.html", b, "c.html", "c")
}

func TestPublishWithoutFolderExchange(t *testing.T) {
	s := newTestSite(t, Options{})
	calls := 0
	s.exchange = func(a, b string) error {
		calls++
		return unix.EINVAL
	}
	for _, version := range []string{"v1", "v2", "v3"} {
		if err := publish(s, makeZip(t, file("index.html", version), file(version+".html", version))); err != nil {
			t.Fatal(err)
		}
		wantTree(t, s.Dir(), "index.html", version, version+".html", version)
		wantNoLeftovers(t, s)
	}
	if calls != 2 {
		t.Errorf("exchange called %d times, want 2 (not for the first publish)", calls)
	}
}

// TestRecoverAfterCrash guards against a power cut during a publish
// leaving the box without its site, or with a staging folder that fills
// the disk.
func TestRecoverAfterCrash(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "www")
	// The crash came between renaming the old site away and the new one
	// in, during the fallback of two renames.
	writeFiles(t, parent,
		".www.old-1a2b/index.html", "the old site",
		".www.new-3c4d/index.html", "half a new site",
		".www.upload-5e6f.zip", "PK",
		"other/keep.txt", "not ours",
	)
	s := newTestSite(t, Options{Dir: dir})
	wantTree(t, s.Dir(), "index.html", "the old site")
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "other www" {
		t.Errorf("folder contains %q after recovery, want %q", got, "other www")
	}

	// With the site in place, an old copy is a leftover of a publish that
	// finished.
	writeFiles(t, parent, ".www.old-7a8b/index.html", "older")
	s = newTestSite(t, Options{Dir: dir})
	wantTree(t, s.Dir(), "index.html", "the old site")
	wantNoLeftovers(t, s)
}

func TestNewUploadFileOnSameFileSystem(t *testing.T) {
	s := newTestSite(t, Options{})
	f, err := s.NewUploadFile()
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if got := filepath.Dir(f.Name()); got != filepath.Dir(s.Dir()) {
		t.Errorf("upload file in %s, want it next to the site's folder in %s", got, filepath.Dir(s.Dir()))
	}
	if !strings.HasPrefix(filepath.Base(f.Name()), ".www.upload-") {
		t.Errorf("upload file %s, want the prefix .www.upload- that recovery removes", f.Name())
	}
}

func TestNewRejectsBadFolder(t *testing.T) {
	for _, dir := range []string{"", "/"} {
		if _, err := New(Options{Dir: dir}); err == nil {
			t.Errorf("New(Dir: %q) succeeded, want an error", dir)
		}
	}
}
