package squashfs_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/image/squashfs"
)

// testModTime has whole seconds and a minute boundary that unsquashfs's
// listing, which shows minutes, can compare too.
var testModTime = time.Date(2024, 3, 17, 9, 41, 0, 0, time.UTC)

type entryKind int

const (
	kindDir entryKind = iota
	kindFile
	kindSymlink
)

// entry is one item of a test tree, listed parents first.
type entry struct {
	path   string
	kind   entryKind
	mode   fs.FileMode // permission and setuid, setgid, sticky bits
	data   []byte
	target string
}

// randomBytes returns n incompressible bytes, the same for the same seed.
func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// textBytes returns n bytes of compressible text made of random words.
func textBytes(seed uint64, n int) []byte {
	words := []string{"heim", "wolke", "kalender", "adresse", "post", "datei", "sicher", "raspberry", "\n"}
	rng := rand.New(rand.NewPCG(seed, 7))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

// testTree returns a tree with the cases a root file system meets: an
// empty file, files of exactly one and two blocks, multi-block files with
// short tails, incompressible data, symlinks, special mode bits and UTF-8
// names. It also has a directory of 1,000 mixed entries and one whose
// listing needs an extended directory inode with an index.
func testTree() []entry {
	const block = squashfs.DefaultBlockSize
	tree := []entry{
		{path: "bin", kind: kindDir, mode: 0o755},
		{path: "bin/busybox", kind: kindFile, mode: 0o755, data: textBytes(1, 3*block+12345)},
		{path: "bin/sh", kind: kindSymlink, target: "busybox"},
		{path: "bin/su", kind: kindFile, mode: fs.ModeSetuid | 0o755, data: []byte("#!/bin/sh\n")},
		{path: "etc", kind: kindDir, mode: 0o755},
		{path: "etc/empty", kind: kindFile, mode: 0o644, data: nil},
		{path: "etc/hostname", kind: kindFile, mode: 0o644, data: []byte("heimwolke\n")},
		{path: "etc/localtime", kind: kindSymlink, target: "/usr/share/zoneinfo/Europe/Berlin"},
		{path: "etc/dangling", kind: kindSymlink, target: "../nowhere/at/all"},
		{path: "one-block", kind: kindFile, mode: 0o644, data: textBytes(2, block)},
		{path: "two-blocks-of-zeros", kind: kindFile, mode: 0o644, data: make([]byte, 2*block)},
		{path: "random", kind: kindFile, mode: 0o600, data: randomBytes(3, 2*block+777)},
		{path: "random-one-block", kind: kindFile, mode: 0o644, data: randomBytes(4, block)},
		{path: "mixed", kind: kindFile, mode: 0o644, data: slices.Concat(randomBytes(5, block/2), make([]byte, block), textBytes(6, block+1))},
		{path: "tmp", kind: kindDir, mode: fs.ModeSticky | 0o777},
		{path: "srv", kind: kindDir, mode: fs.ModeSetgid | 0o750},
		{path: "empty-dir", kind: kindDir, mode: 0o700},
		{path: "übergrößen", kind: kindDir, mode: 0o755},
		{path: "übergrößen/straße.txt", kind: kindFile, mode: 0o644, data: []byte("Grüße\n")},
		{path: "übergrößen/日本語", kind: kindFile, mode: 0o644, data: []byte("こんにちは\n")},
		{path: "übergrößen/wolke-☁️", kind: kindSymlink, target: "straße.txt"},
		{path: "many", kind: kindDir, mode: 0o755},
		{path: "long-names", kind: kindDir, mode: 0o755},
	}
	for i := range 1000 {
		name := fmt.Sprintf("many/entry-%04d", i)
		switch {
		case i%10 == 3:
			tree = append(tree, entry{path: name, kind: kindDir, mode: 0o755})
		case i%7 == 0:
			tree = append(tree, entry{path: name, kind: kindSymlink, target: fmt.Sprintf("entry-%04d", i+1)})
		default:
			tree = append(tree, entry{path: name, kind: kindFile, mode: 0o644, data: []byte(name)})
		}
	}
	// 2,000 entries of about 110 bytes make a listing of some 220 KB: more
	// than the 64 KiB a basic directory inode can describe, spread over
	// many metadata blocks.
	for i := range 2000 {
		name := fmt.Sprintf("long-names/%03d-%s", i, strings.Repeat("x", 100))
		tree = append(tree, entry{path: name, kind: kindFile, mode: 0o644, data: []byte(name[:14])})
	}
	return tree
}

// writeImage writes tree into a new image file and returns its path and
// size.
func writeImage(t testing.TB, tree []entry, opts *squashfs.Options) (string, int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "root.squashfs")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := squashfs.NewWriter(f, testModTime, opts)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	addTree(t, w, tree)
	size, err := w.Flush()
	if err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() != size {
		t.Fatalf("image file has %d bytes, but Flush returned %d", info.Size(), size)
	}
	if size%4096 != 0 {
		t.Fatalf("image size %d is not a multiple of 4096", size)
	}
	return path, size
}

func addTree(t testing.TB, w *squashfs.Writer, tree []entry) {
	t.Helper()
	for _, e := range tree {
		var err error
		switch e.kind {
		case kindDir:
			err = w.Mkdir(e.path, e.mode|fs.ModeDir)
		case kindFile:
			err = w.AddFile(e.path, e.mode, int64(len(e.data)), bytes.NewReader(e.data))
		case kindSymlink:
			err = w.Symlink(e.target, e.path)
		}
		if err != nil {
			t.Fatalf("adding %q: %v", e.path, err)
		}
	}
}

// checkTree compares the directory at root with tree: the same entries,
// types, modes, owner 0:0, modification time, file contents and symlink
// targets.
func checkTree(t *testing.T, root string, tree []entry) {
	t.Helper()
	want := map[string]entry{".": {path: ".", kind: kindDir, mode: 0o755}}
	for _, e := range tree {
		want[e.path] = e
	}

	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		seen[rel] = true
		if _, ok := want[rel]; !ok {
			t.Errorf("unexpected entry %q", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}

	for path, e := range want {
		if !seen[path] {
			t.Errorf("entry %q missing", path)
			continue
		}
		checkEntry(t, filepath.Join(root, filepath.FromSlash(path)), e)
	}
}

func checkEntry(t *testing.T, path string, e entry) {
	t.Helper()
	info, err := os.Lstat(path)
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	wantType := map[entryKind]fs.FileMode{kindDir: fs.ModeDir, kindFile: 0, kindSymlink: fs.ModeSymlink}[e.kind]
	if got := info.Mode().Type(); got != wantType {
		t.Errorf("%s: type %v, want %v", e.path, got, wantType)
		return
	}
	wantMode := e.mode
	if e.kind == kindSymlink {
		wantMode = 0o777
	}
	if got := info.Mode() &^ fs.ModeType; got != wantMode {
		t.Errorf("%s: mode %v, want %v", e.path, got, wantMode)
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && (st.Uid != 0 || st.Gid != 0) {
		t.Errorf("%s: owner %d:%d, want 0:0", e.path, st.Uid, st.Gid)
	}
	if !info.ModTime().Equal(testModTime) {
		t.Errorf("%s: modification time %v, want %v", e.path, info.ModTime().UTC(), testModTime)
	}

	switch e.kind {
	case kindFile:
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v", err)
			return
		}
		if !bytes.Equal(got, e.data) {
			t.Errorf("%s: content differs from byte %d on (got %d bytes, want %d)", e.path, firstDifference(got, e.data), len(got), len(e.data))
		}
	case kindSymlink:
		got, err := os.Readlink(path)
		if err != nil {
			t.Errorf("%v", err)
			return
		}
		if got != e.target {
			t.Errorf("%s: symlink target %q, want %q", e.path, got, e.target)
		}
	}
}

func firstDifference(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}
