package setupcode

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/fat"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

const partOffset = 4 << 20

// newImage writes a FAT partition with the placeholder file and another
// file after it at partOffset of a new file.
func newImage(t *testing.T) *os.File {
	t.Helper()
	w, err := fat.NewWriter(fat.Options{Size: 8 << 20, VolumeLabel: "BOOT"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddFile("cmdline.txt", []byte("console=ttyS0\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.AddFile(FileName, Placeholder()); err != nil {
		t.Fatal(err)
	}
	if err := w.AddFile("vmlinuz", make([]byte, 100_000)); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "card.img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := w.WritePartition(f, partOffset); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestNewCodes(t *testing.T) {
	shape := regexp.MustCompile(`^[` + alphabet + `]{4}-[` + alphabet + `]{4}-[` + alphabet + `]{4}$`)
	seen := map[string]bool{}
	for range 200 {
		code, err := New()
		if err != nil {
			t.Fatal(err)
		}
		if !shape.MatchString(code) {
			t.Fatalf("New() = %q, want three groups of four from %q", code, alphabet)
		}
		if seen[code] {
			t.Fatalf("New() returned %q twice in 200 calls", code)
		}
		seen[code] = true
	}
}

func TestPlaceholderHasNoCode(t *testing.T) {
	f := newImage(t)
	code, err := Read(f, partOffset)
	if err != nil {
		t.Fatal(err)
	}
	if code != "" {
		t.Errorf("code in a new image = %q, want none", code)
	}
}

func TestWriteInPlace(t *testing.T) {
	f := newImage(t)
	if err := Write(f, partOffset, "k3qx-7m4d-wt9a"); err != nil {
		t.Fatal(err)
	}
	code, err := Read(f, partOffset)
	if err != nil {
		t.Fatal(err)
	}
	if code != "K3QX7M4DWT9A" {
		t.Errorf("code = %q, want K3QX7M4DWT9A", code)
	}
	// The file after it is untouched.
	data, err := fat.ReadFile(f, partOffset, "vmlinuz")
	if err != nil || len(data) != 100_000 || strings.Trim(string(data), "\x00") != "" {
		t.Errorf("vmlinuz after writing the code: %d bytes, err %v; want 100000 zero bytes", len(data), err)
	}
}

// TestWriteReadByDebianTools checks the written file with dosfstools and
// mtools: the file system stays consistent and the code is what a PC
// shows when the card is plugged in.
func TestWriteReadByDebianTools(t *testing.T) {
	testpeer.Require(t, "fsck.vfat", "dosfstools")
	testpeer.Require(t, "mtype", "mtools")
	f := newImage(t)
	if err := Write(f, partOffset, "K3QX-7M4D-WT9A"); err != nil {
		t.Fatal(err)
	}
	img := f.Name() + "@@" + "4194304"
	out, err := exec.Command("mtype", "-i", img, "::"+FileName).CombinedOutput()
	if err != nil {
		t.Fatalf("mtype: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "\nK3QX-7M4D-WT9A\n") {
		t.Errorf("mtype shows %q, want the code on its own line", out)
	}

	part := filepath.Join(t.TempDir(), "part.img")
	data := make([]byte, 8<<20)
	if _, err := f.ReadAt(data, partOffset); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(part, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("fsck.vfat", "-n", part).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n: %v\n%s", err, out)
	}
}

func TestWriteRefusesOldImage(t *testing.T) {
	w, err := fat.NewWriter(fat.Options{Size: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddFile("cmdline.txt", []byte("x\n")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "old.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := w.WritePartition(f, partOffset); err != nil {
		t.Fatal(err)
	}
	err = Write(f, partOffset, "K3QX-7M4D-WT9A")
	if err == nil || !strings.Contains(err.Error(), "rebuild the image") {
		t.Errorf("Write on an image without %s: err = %v, want one that says to rebuild the image", FileName, err)
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]string{
		"":                              "",
		"# only a comment\n   \n":       "",
		"# c\nabcd-efgh\n":              "ABCDEFGH",
		"\uFEFFk3qx 7m4d\r\nwt9a\n":     "K3QX7M4DWT9A",
		"  # indented comment\nab12\n ": "AB12",
	} {
		if got := Parse([]byte(in)); got != want {
			t.Errorf("Parse(%q) = %q, want %q", in, got, want)
		}
	}
}
