package permfs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

func makeFile(t *testing.T, name string, start int64, opts Options) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(start + opts.Size); err != nil {
		t.Fatal(err)
	}
	if err := Make(f, start, opts); err != nil {
		t.Fatalf("Make: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b[start:]
}

func TestMakeIsDeterministic(t *testing.T) {
	opts := Options{Size: MinSize, Label: "perm", Seed: []byte("seed"), ModTime: time.Unix(1_700_000_000, 0)}
	a := makeFile(t, "a", 0, opts)
	time.Sleep(1100 * time.Millisecond) // let the wall clock move on a whole second
	b := makeFile(t, "b", 4096, opts)
	if !bytes.Equal(a, b) {
		i := 0
		for i < len(a) && a[i] == b[i] {
			i++
		}
		t.Fatalf("two file systems from the same options differ, first at byte %d", i)
	}
}

func TestMakeFsckClean(t *testing.T) {
	e2fsck := testpeer.Require(t, "e2fsck", "e2fsprogs")
	dumpe2fs := testpeer.Require(t, "dumpe2fs", "e2fsprogs")
	opts := Options{Size: 256 << 20, Label: "perm", Seed: []byte("x"), ModTime: time.Unix(1_700_000_000, 0)}
	img := filepath.Join(t.TempDir(), "perm.ext4")
	if err := os.WriteFile(img, makeFile(t, "p", 0, opts), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(e2fsck, "-fn", img).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn: %v\n%s", err, out)
	}
	dump := exec.Command(dumpe2fs, "-h", img)
	dump.Env = append(os.Environ(), "TZ=UTC")
	out, err = dump.CombinedOutput()
	if err != nil {
		t.Fatalf("dumpe2fs -h: %v\n%s", err, out)
	}
	for _, want := range []string{"resize_inode", "Block size:               4096", "Filesystem volume name:   perm", "Filesystem created:       Tue Nov 14 22:13:20 2023"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("dumpe2fs output lacks %q:\n%s", want, out)
		}
	}
}

func TestMakeRejectsOddSize(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "x"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Make(f, 0, Options{Size: MinSize + 512}); err == nil {
		t.Fatal("Make with a size that is not a multiple of 4096 succeeded, want an error")
	}
}
