package squashfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/heimwolke/heimwolke/image/squashfs"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// listingLine matches a line of "unsquashfs -lln": mode, uid/gid, size,
// date and time, path (and " -> target" for a symlink).
var listingLine = regexp.MustCompile(`^(\S+) (\S+) +(\d+) (\d{4}-\d\d-\d\d \d\d:\d\d) (.*)$`)

func TestUnsquashfsListsTree(t *testing.T) {
	unsquashfs := testpeer.Require(t, "unsquashfs", "squashfs-tools")
	tree := testTree()
	img, _ := writeImage(t, tree, nil)

	cmd := exec.Command(unsquashfs, "-lln", img)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -lln: %v\n%s", err, out)
	}

	want := map[string]string{"squashfs-root": listingFields(entry{kind: kindDir, mode: 0o755})}
	for _, e := range tree {
		name := "squashfs-root/" + e.path
		if e.kind == kindSymlink {
			name += " -> " + e.target
		}
		want[name] = listingFields(e)
	}

	got := map[string]string{}
	for line := range strings.Lines(string(out)) {
		m := listingLine.FindStringSubmatch(strings.TrimSuffix(line, "\n"))
		if m == nil {
			t.Errorf("unsquashfs printed an unexpected line %q", line)
			continue
		}
		size := m[3]
		if strings.HasPrefix(m[1], "d") {
			size = "-" // a directory's size is its listing size, an internal value
		}
		got[m[5]] = strings.Join([]string{m[1], m[2], size, m[4]}, " ")
	}

	for name, fields := range want {
		if got[name] != fields {
			t.Errorf("listing of %q: got %q, want %q", name, got[name], fields)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("listing has unexpected entry %q", name)
		}
	}
}

// listingFields returns what unsquashfs -lln prints for e, with "-" for
// the size of directories.
func listingFields(e entry) string {
	size := "-"
	switch e.kind {
	case kindFile:
		size = strconv.Itoa(len(e.data))
	case kindSymlink:
		size = strconv.Itoa(len(e.target))
	}
	return strings.Join([]string{lsMode(e), "0/0", size, testModTime.Format("2006-01-02 15:04")}, " ")
}

// lsMode formats e's type and mode as ls -l does.
func lsMode(e entry) string {
	if e.kind == kindSymlink {
		return "lrwxrwxrwx"
	}
	b := []byte("-rwxrwxrwx")
	if e.kind == kindDir {
		b[0] = 'd'
	}
	for i := range 9 {
		if e.mode&(1<<(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	special := func(pos int, set bool, lower, upper byte) {
		if !set {
			return
		}
		if b[pos] == '-' {
			b[pos] = upper
		} else {
			b[pos] = lower
		}
	}
	special(3, e.mode&fs.ModeSetuid != 0, 's', 'S')
	special(6, e.mode&fs.ModeSetgid != 0, 's', 'S')
	special(9, e.mode&fs.ModeSticky != 0, 't', 'T')
	return string(b)
}

func TestUnsquashfsExtractsTree(t *testing.T) {
	unsquashfs := testpeer.Require(t, "unsquashfs", "squashfs-tools")
	testpeer.RequireRoot(t, "unsquashfs restores owner 0:0 and setuid bits only as root")
	tree := testTree()
	for _, blockSize := range []int{squashfs.DefaultBlockSize, squashfs.MinBlockSize, squashfs.MaxBlockSize} {
		t.Run(fmt.Sprintf("block size %d", blockSize), func(t *testing.T) {
			img, _ := writeImage(t, tree, &squashfs.Options{BlockSize: blockSize})
			dir := filepath.Join(t.TempDir(), "root")
			out, err := exec.Command(unsquashfs, "-no-progress", "-d", dir, img).CombinedOutput()
			if err != nil {
				t.Fatalf("unsquashfs -d: %v\n%s", err, out)
			}
			checkTree(t, dir, tree)
		})
	}
}

func TestMountReadsTree(t *testing.T) {
	testpeer.RequireRoot(t, "mounting a loop device")
	mount := testpeer.Require(t, "mount", "mount")
	umount := testpeer.Require(t, "umount", "mount")
	tree := testTree()
	img, _ := writeImage(t, tree, nil)

	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(mount, "-t", "squashfs", "-o", "loop,ro", img, dir).CombinedOutput()
	if err != nil {
		t.Skipf("mounting is not permitted here: %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command(umount, dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})

	checkTree(t, dir, tree)
	checkDirectoryOrder(t, filepath.Join(dir, "long-names"), tree, "long-names/")
	checkDirectoryOrder(t, filepath.Join(dir, "many"), tree, "many/")
}

// checkDirectoryOrder reads dir in directory order, which takes several
// getdents calls for a long listing, each resuming through the directory
// index, and compares the names with the sorted names under prefix.
func checkDirectoryOrder(t *testing.T, dir string, tree []entry, prefix string) {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	for {
		entries, err := f.ReadDir(50)
		for _, e := range entries {
			got = append(got, e.Name())
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", dir, err)
		}
	}

	var want []string
	for _, e := range tree {
		if rest, ok := strings.CutPrefix(e.path, prefix); ok && !strings.Contains(rest, "/") {
			want = append(want, rest)
		}
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s lists %d names, want %d in byte order; first difference at %d", dir, len(got), len(want), firstNameDifference(got, want))
	}
}

func firstNameDifference(a, b []string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

func TestWriteIsDeterministic(t *testing.T) {
	tree := testTree()
	first, _ := writeImage(t, tree, nil)
	second, _ := writeImage(t, tree, nil)
	// File data lands in the order of the AddFile calls, but directories
	// and symlinks may come in any order that creates parents first.
	third, _ := writeImage(t, reorderKeepingFiles(tree), nil)

	want, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{second, third} {
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("two images of the same tree differ from byte %d on (sizes %d and %d)", firstDifference(got, want), len(got), len(want))
		}
	}
}

// reorderKeepingFiles returns tree with all directories first, the deepest
// last and each level reversed, then the symlinks reversed, then the files
// in their original order.
func reorderKeepingFiles(tree []entry) []entry {
	var dirs, symlinks, files []entry
	for _, e := range tree {
		switch e.kind {
		case kindDir:
			dirs = append(dirs, e)
		case kindSymlink:
			symlinks = append(symlinks, e)
		default:
			files = append(files, e)
		}
	}
	slices.Reverse(dirs)
	slices.SortStableFunc(dirs, func(a, b entry) int {
		return strings.Count(a.path, "/") - strings.Count(b.path, "/")
	})
	slices.Reverse(symlinks)
	return slices.Concat(dirs, symlinks, files)
}

func newTestWriter(t *testing.T) *squashfs.Writer {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	w, err := squashfs.NewWriter(f, testModTime, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Mkdir("etc", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := w.AddFile("etc/hostname", 0o644, 3, strings.NewReader("box")); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWriterRejectsInvalidInput(t *testing.T) {
	long := strings.Repeat("n", 256)
	cases := []struct {
		name string
		call func(w *squashfs.Writer) error
		want error
	}{
		{"empty path", func(w *squashfs.Writer) error { return w.Mkdir("", 0o755) }, fs.ErrInvalid},
		{"root path", func(w *squashfs.Writer) error { return w.Mkdir(".", 0o755) }, fs.ErrInvalid},
		{"absolute path", func(w *squashfs.Writer) error { return w.Mkdir("/usr", 0o755) }, fs.ErrInvalid},
		{"trailing slash", func(w *squashfs.Writer) error { return w.Mkdir("usr/", 0o755) }, fs.ErrInvalid},
		{"double slash", func(w *squashfs.Writer) error { return w.Symlink("x", "etc//x") }, fs.ErrInvalid},
		{"dot element", func(w *squashfs.Writer) error { return w.Symlink("x", "etc/./x") }, fs.ErrInvalid},
		{"dot-dot element", func(w *squashfs.Writer) error { return w.Mkdir("etc/../usr", 0o755) }, fs.ErrInvalid},
		{"name too long", func(w *squashfs.Writer) error { return w.Mkdir(long, 0o755) }, fs.ErrInvalid},
		{"NUL in name", func(w *squashfs.Writer) error { return w.Mkdir("a\x00b", 0o755) }, fs.ErrInvalid},
		{"invalid UTF-8", func(w *squashfs.Writer) error { return w.Mkdir("\xff", 0o755) }, fs.ErrInvalid},
		{"duplicate directory", func(w *squashfs.Writer) error { return w.Mkdir("etc", 0o755) }, fs.ErrExist},
		{"duplicate file", func(w *squashfs.Writer) error {
			return w.AddFile("etc/hostname", 0o644, 1, strings.NewReader("x"))
		}, fs.ErrExist},
		{"missing parent", func(w *squashfs.Writer) error { return w.Mkdir("usr/lib", 0o755) }, fs.ErrNotExist},
		{"parent is a file", func(w *squashfs.Writer) error { return w.Symlink("x", "etc/hostname/x") }, fs.ErrInvalid},
		{"file with type bits", func(w *squashfs.Writer) error {
			return w.AddFile("etc/x", fs.ModeSymlink|0o777, 0, strings.NewReader(""))
		}, fs.ErrInvalid},
		{"negative size", func(w *squashfs.Writer) error { return w.AddFile("etc/x", 0o644, -1, strings.NewReader("")) }, fs.ErrInvalid},
		{"empty symlink target", func(w *squashfs.Writer) error { return w.Symlink("", "etc/x") }, fs.ErrInvalid},
		{"long symlink target", func(w *squashfs.Writer) error { return w.Symlink(strings.Repeat("t", 4096), "etc/x") }, fs.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newTestWriter(t)
			err := c.call(w)
			if !errors.Is(err, c.want) {
				t.Fatalf("got error %v, want one wrapping %v", err, c.want)
			}
			// A rejected call changes nothing, so the Writer stays usable.
			if err := w.Mkdir("usr", 0o755); err != nil {
				t.Fatalf("Mkdir after a rejected call: %v", err)
			}
			if _, err := w.Flush(); err != nil {
				t.Fatalf("Flush after a rejected call: %v", err)
			}
		})
	}
}

func TestAddFileRejectsSizeMismatch(t *testing.T) {
	cases := []struct {
		name string
		size int64
		r    io.Reader
		want error
	}{
		{"short source", 10, strings.NewReader("12345"), io.ErrUnexpectedEOF},
		{"long source", 3, strings.NewReader("12345"), nil},
		{"failing source", 10, iotest.ErrReader(errors.New("disk on fire")), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newTestWriter(t)
			err := w.AddFile("etc/x", 0o644, c.size, c.r)
			if err == nil {
				t.Fatal("AddFile succeeded, want an error")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got error %v, want one wrapping %v", err, c.want)
			}
			// Data of a failed file may already be in the image.
			if err := w.Mkdir("usr", 0o755); err == nil {
				t.Fatal("Mkdir after a failed AddFile succeeded, want the AddFile error")
			}
			if _, err := w.Flush(); err == nil {
				t.Fatal("Flush after a failed AddFile succeeded, want the AddFile error")
			}
		})
	}
}

func TestFlushTwiceFails(t *testing.T) {
	w := newTestWriter(t)
	if _, err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Flush(); !errors.Is(err, squashfs.ErrFinished) {
		t.Fatalf("second Flush: got %v, want ErrFinished", err)
	}
	if err := w.Mkdir("usr", 0o755); !errors.Is(err, squashfs.ErrFinished) {
		t.Fatalf("Mkdir after Flush: got %v, want ErrFinished", err)
	}
}

func TestNewWriterRejectsOptions(t *testing.T) {
	cases := []struct {
		name      string
		blockSize int
		modTime   time.Time
	}{
		{"block size not a power of two", 100_000, testModTime},
		{"block size too small", 2048, testModTime},
		{"block size too large", 2 << 20, testModTime},
		{"time before 1970", 0, time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"time after 2106", 0, time.Date(2106, 2, 8, 0, 0, 0, 0, time.UTC)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := squashfs.NewWriter(nil, c.modTime, &squashfs.Options{BlockSize: c.blockSize})
			if err == nil {
				t.Fatal("NewWriter succeeded, want an error")
			}
		})
	}
}
