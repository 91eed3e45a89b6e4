package fat

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testTime is the modification time of every test file system. Its odd
// second checks the 10 ms field of the creation time.
var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// testFile is a file that a test adds, with the content it expects back.
type testFile struct {
	path string
	data []byte
}

// randomBytes returns n bytes of fixed pseudo-random content.
func randomBytes(n int, seed uint64) []byte {
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	b := make([]byte, n)
	_, _ = rng.Read(b)
	return b
}

// sampleFiles returns a boot partition in miniature: 8.3 names in lower and
// upper case, long names that share their first characters, names with
// characters that short names cannot hold, an empty file, files larger than
// one cluster, and nested directories.
func sampleFiles() []testFile {
	return []testFile{
		{"cmdline.txt", []byte("console=tty1 root=/dev/mmcblk0p2 init=/gokrazy/init rootwait panic=10\n")},
		{"config.txt", []byte("arm_64bit=1\nenable_uart=1\n")},
		{"bootcode.bin", randomBytes(52480, 1)},
		{"start4.elf", randomBytes(180000, 2)},
		{"fixup4.dat", randomBytes(5400, 3)},
		{"bcm2710-rpi-3-b.dtb", randomBytes(34695, 4)},
		{"bcm2710-rpi-3-b-plus.dtb", randomBytes(35330, 5)},
		{"bcm2711-rpi-4-b.dtb", randomBytes(56289, 6)},
		{"README", []byte("upper-case 8.3 name\n")},
		{"Makefile", []byte("mixed case needs a long name\n")},
		{"empty.txt", nil},
		{".hidden", []byte("leading period\n")},
		{"a b+c;d.TXT", []byte("space and characters short names lack\n")},
		{"overlays/README", []byte("overlays readme\n")},
		{"overlays/vc4-kms-v3d.dtbo", randomBytes(2749, 7)},
		{"overlays/vc4-kms-v3d-pi4.dtbo", randomBytes(4000, 8)},
		{"overlays/vc4-kms-v3d-pi5.dtbo", randomBytes(4100, 9)},
		{"overlays/i2c-rtc.dtbo", randomBytes(2048, 10)},
		{"overlays/Grüße 日本.dtbo", []byte("UCS-2 name\n")},
		{"overlays/" + strings.Repeat("n", 255), []byte("name of 255 characters\n")},
		{"lib/firmware/brcm/brcmfmac43455-sdio.raspberrypi,4-model-b.txt", randomBytes(2100, 11)},
	}
}

// sampleDirs returns directories that hold no file in sampleFiles.
func sampleDirs() []string {
	return []string{"empty/sub"}
}

// newTestWriter returns a Writer for a 100 MiB partition, the size of the
// image's boot partition, holding files and dirs.
func newTestWriter(t testing.TB, files []testFile, dirs []string) *Writer {
	t.Helper()
	w, err := NewWriter(Options{Size: 100 << 20, VolumeLabel: "heimwolke", VolumeID: 0x2a1b3c4d, ModTime: testTime})
	if err != nil {
		t.Fatal(err)
	}
	addAll(t, w, files, dirs)
	return w
}

func addAll(t testing.TB, w *Writer, files []testFile, dirs []string) {
	t.Helper()
	for _, f := range files {
		if err := w.AddFile(f.path, f.data); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range dirs {
		if err := w.MkdirAll(d); err != nil {
			t.Fatal(err)
		}
	}
}

// writeImage writes the partition of w at offset 0 of a new file, which it
// first extends to the partition size, and returns the file's path.
func writeImage(t testing.TB, w *Writer) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "boot.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(w.opts.Size); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePartition(f, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
