package fat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// memImage is an io.WriterAt and io.ReaderAt in memory.
type memImage struct{ b []byte }

func (m *memImage) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

func (m *memImage) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(m.b).ReadAt(p, off)
}

func writeMem(t testing.TB, w *Writer, offset int64) *memImage {
	t.Helper()
	m := &memImage{}
	if err := w.WritePartition(m, offset); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestReadFileRoundTrip(t *testing.T) {
	files := sampleFiles()
	img := writeMem(t, newTestWriter(t, files, sampleDirs()), 0)

	for _, f := range files {
		got, err := ReadFile(img, 0, f.path)
		if err != nil {
			t.Errorf("ReadFile(%q): %v", f.path, err)
			continue
		}
		if !bytes.Equal(got, f.data) {
			t.Errorf("ReadFile(%q) = %d bytes, want the %d bytes written", f.path, len(got), len(f.data))
		}
	}
}

func TestReadFileMatchesCaseAndShortNames(t *testing.T) {
	files := sampleFiles()
	img := writeMem(t, newTestWriter(t, files, nil), 0)
	want := map[string]string{
		"/CMDLINE.TXT":                   "cmdline.txt",
		"Config.Txt":                     "config.txt",
		"BCM271~1.DTB":                   "bcm2710-rpi-3-b-plus.dtb",
		"bcm271~2.dtb":                   "bcm2710-rpi-3-b.dtb",
		"OVERLAYS/VC4-KMS-V3D-PI4.DTBO":  "overlays/vc4-kms-v3d-pi4.dtbo",
		"overlays/GRÜßE 日本.DTBO":         "overlays/Grüße 日本.dtbo",
		"LIB/FIRMWARE/BRCM/BRCMFM~1.TXT": "lib/firmware/brcm/brcmfmac43455-sdio.raspberrypi,4-model-b.txt",
	}
	byPath := map[string][]byte{}
	for _, f := range files {
		byPath[f.path] = f.data
	}

	for query, path := range want {
		got, err := ReadFile(img, 0, query)
		if err != nil {
			t.Errorf("ReadFile(%q): %v", query, err)
			continue
		}
		if !bytes.Equal(got, byPath[path]) {
			t.Errorf("ReadFile(%q) returned other content than %q", query, path)
		}
	}
}

func TestReadFileErrors(t *testing.T) {
	img := writeMem(t, newTestWriter(t, sampleFiles(), sampleDirs()), 0)
	tests := []struct {
		path     string
		notExist bool
	}{
		{"missing.txt", true},
		{"overlays/missing.dtbo", true},
		{"cmdline.txt/x", true},
		{"missing/x", true},
		{"overlays", false},
		{"empty/sub", false},
		{"/", false},
		{"overlays/../cmdline.txt", false},
		{"overlays//README", false},
	}
	for _, tt := range tests {
		_, err := ReadFile(img, 0, tt.path)
		if err == nil {
			t.Errorf("ReadFile(%q) succeeded, want an error", tt.path)
			continue
		}
		if got := errors.Is(err, fs.ErrNotExist); got != tt.notExist {
			t.Errorf("ReadFile(%q) = %v: errors.Is(err, fs.ErrNotExist) = %v, want %v", tt.path, err, got, tt.notExist)
		}
	}
}

func TestWritePartitionAtOffset(t *testing.T) {
	const offset = 8192 * SectorSize
	files := sampleFiles()
	img := writeMem(t, newTestWriter(t, files, nil), offset)

	if got := len(img.b); got != offset+100<<20 {
		t.Errorf("image length = %d, want %d (offset plus partition size)", got, offset+100<<20)
	}
	if got := binary.LittleEndian.Uint32(img.b[offset+28:]); got != 8192 {
		t.Errorf("hidden sectors = %d, want 8192", got)
	}
	if !bytes.Equal(img.b[:offset], make([]byte, offset)) {
		t.Errorf("WritePartition wrote before the partition offset")
	}
	got, err := ReadFile(img, offset, "overlays/vc4-kms-v3d.dtbo")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, files[14].data) {
		t.Errorf("ReadFile at offset returned other content than written")
	}
}

func TestWritePartitionDeterministic(t *testing.T) {
	files := sampleFiles()
	w := newTestWriter(t, files, sampleDirs())
	first := writeMem(t, w, 0)
	second := writeMem(t, w, 0)
	if !bytes.Equal(first.b, second.b) {
		t.Errorf("two writes of one Writer differ")
	}

	// The same content added in reverse order gives the same bytes.
	reversed := slices.Clone(files)
	slices.Reverse(reversed)
	dirs := slices.Clone(sampleDirs())
	other, err := NewWriter(w.opts)
	if err != nil {
		t.Fatal(err)
	}
	addAll(t, other, nil, dirs)
	addAll(t, other, reversed, nil)
	third := writeMem(t, other, 0)
	if !bytes.Equal(first.b, third.b) {
		t.Errorf("writes of the same files added in another order differ")
	}
}

func TestWritePartitionMultiClusterDirectory(t *testing.T) {
	// 400 long names, as in the firmware's overlays folder, need 1,200
	// entries: 19 clusters of 2 KiB.
	var files []testFile
	for i := range 400 {
		files = append(files, testFile{fmt.Sprintf("overlays/overlay-number-%03d.dtbo", i), []byte(fmt.Sprint(i))})
	}
	w := newTestWriter(t, files, nil)
	img := writeMem(t, w, 0)

	if got, want := w.dirClusters(w.root.children["OVERLAYS"]), int64(19); got != want {
		t.Errorf("overlays directory clusters = %d, want %d", got, want)
	}
	for _, f := range files {
		got, err := ReadFile(img, 0, f.path)
		if err != nil {
			t.Fatalf("ReadFile(%q): %v", f.path, err)
		}
		if !bytes.Equal(got, f.data) {
			t.Errorf("ReadFile(%q) = %q, want %q", f.path, got, f.data)
		}
	}
}

func TestAddFileRejectsInvalidPaths(t *testing.T) {
	tests := []struct {
		path string
		want string // part of the error message
	}{
		{strings.Repeat("a", 256), "256 characters"},
		{"overlays/" + strings.Repeat("é", 256), "256 characters"},
		{"a:b.txt", `':'`},
		{"a*b", `'*'`},
		{"what?.txt", `'?'`},
		{`back\slash`, `'\\'`},
		{"pipe|name", `'|'`},
		{"quote\".txt", `'"'`},
		{"less<more>", `'<'`},
		{"tab\tname", `'\t'`},
		{"../escape.txt", "reserved"},
		{"overlays/../../escape.txt", "reserved"},
		{"./here.txt", "reserved"},
		{"overlays//x.dtbo", "empty file name"},
		{"overlays/", "empty file name"},
		{"", "root directory"},
		{"/", "root directory"},
		{"trailing.", "ends with"},
		{"trailing ", "ends with"},
		{"emoji-\U0001F600.txt", "Basic Multilingual Plane"},
		{"bad-\xff.txt", "not valid UTF-8"},
	}
	for _, tt := range tests {
		w := newTestWriter(t, nil, nil)
		err := w.AddFile(tt.path, []byte("x"))
		if err == nil {
			t.Errorf("AddFile(%q) succeeded, want an error containing %s", tt.path, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("AddFile(%q) = %q, want an error containing %s", tt.path, err, tt.want)
		}
	}
}

func TestAddFileRejectsConflicts(t *testing.T) {
	w := newTestWriter(t, []testFile{{"config.txt", nil}, {"overlays/a.dtbo", nil}}, nil)
	tests := []struct {
		name string
		add  func() error
		want string
	}{
		{"same name", func() error { return w.AddFile("config.txt", nil) }, "already exists"},
		{"other case", func() error { return w.AddFile("CONFIG.TXT", nil) }, "already exists"},
		{"file over directory", func() error { return w.AddFile("Overlays", nil) }, "already exists"},
		{"below a file", func() error { return w.AddFile("config.txt/x", nil) }, "is a file"},
		{"directory over file", func() error { return w.MkdirAll("config.txt") }, "is a file"},
	}
	for _, tt := range tests {
		err := tt.add()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
	if err := w.MkdirAll("overlays"); err != nil {
		t.Errorf("MkdirAll of an existing directory: %v", err)
	}
}

func TestAddFileRejectsContentTooLarge(t *testing.T) {
	w, err := NewWriter(Options{Size: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddFile("small.txt", []byte("fits")); err != nil {
		t.Fatal(err)
	}
	err = w.AddFile("dir/big.bin", make([]byte, 5<<20))
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("AddFile of 5 MiB into 4 MiB = %v, want an error wrapping ErrNoSpace", err)
	}
	for _, want := range []string{"5242880 bytes", "4194304-byte partition", "clusters of 512 bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}

	// The rejected file and the directory made for it are gone.
	if _, ok := w.root.children["DIR"]; ok {
		t.Errorf("directory created for the rejected file remains")
	}
	img := writeMem(t, w, 0)
	if got, err := ReadFile(img, 0, "small.txt"); err != nil || string(got) != "fits" {
		t.Errorf("ReadFile(small.txt) = %q, %v; want \"fits\"", got, err)
	}
}

func TestAddFileRejectsFullRootDirectory(t *testing.T) {
	w, err := NewWriter(Options{Size: 4 << 20, RootEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 16 {
		if err := w.AddFile(fmt.Sprintf("F%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	err = w.AddFile("F16", nil)
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("AddFile beyond 16 root entries = %v, want an error wrapping ErrNoSpace", err)
	}
	if !strings.Contains(err.Error(), "17 entries") {
		t.Errorf("AddFile beyond 16 root entries = %q, want an error naming 17 entries", err)
	}
}

func TestNewWriterRejectsOptions(t *testing.T) {
	lo, hi := sizeRange(DefaultRootEntries)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"size not in sectors", Options{Size: 100<<20 + 1}, "multiple of 512"},
		{"no size", Options{}, "multiple of 512"},
		{"too small", Options{Size: lo - SectorSize}, fmt.Sprintf("needs %d to %d bytes", lo, hi)},
		{"too large", Options{Size: hi + SectorSize}, "no FAT16 layout"},
		{"label too long", Options{Size: 100 << 20, VolumeLabel: "HEIMWOLKEBOOT"}, "longer than 11"},
		{"label character", Options{Size: 100 << 20, VolumeLabel: "BOOT.FS"}, `'.'`},
		{"label leading space", Options{Size: 100 << 20, VolumeLabel: " BOOT"}, `' '`},
		{"time before 1980", Options{Size: 100 << 20, ModTime: time.Date(1979, 12, 31, 0, 0, 0, 0, time.UTC)}, "1980 to 2107"},
		{"time after 2107", Options{Size: 100 << 20, ModTime: time.Date(2108, 1, 1, 0, 0, 0, 0, time.UTC)}, "1980 to 2107"},
		{"root entries", Options{Size: 100 << 20, RootEntries: 100}, "multiple of 16"},
	}
	for _, tt := range tests {
		_, err := NewWriter(tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewWriter error = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestAddFileFromChecksSize(t *testing.T) {
	tests := []struct {
		name    string
		size    int64
		content string
		want    string
	}{
		{"shorter", 10, "12345", "ended after 5 bytes"},
		{"longer", 3, "12345", "longer than the 3 bytes"},
	}
	for _, tt := range tests {
		w := newTestWriter(t, nil, nil)
		open := func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(tt.content)), nil }
		if err := w.AddFileFrom("f.txt", tt.size, open); err != nil {
			t.Fatal(err)
		}
		err := w.WritePartition(&memImage{}, 0)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: WritePartition error = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestAddFileFromReadsFiles(t *testing.T) {
	path := t.TempDir() + "/kernel"
	want := randomBytes(300000, 42)
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	w := newTestWriter(t, nil, nil)
	open := func() (io.ReadCloser, error) { return os.Open(path) }
	if err := w.AddFileFrom("vmlinuz", int64(len(want)), open); err != nil {
		t.Fatal(err)
	}
	img := writeMem(t, w, 0)
	got, err := ReadFile(img, 0, "vmlinuz")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("ReadFile(vmlinuz) returned other content than the source file")
	}
}

func TestGeometryClusterRange(t *testing.T) {
	lo, hi := sizeRange(DefaultRootEntries)
	sizes := []int64{lo, lo + SectorSize, 3 << 20, 32 << 20, 100 << 20, 128 << 20, 129 << 20, 512 << 20, 1 << 30, hi}
	for _, size := range sizes {
		g, err := newGeometry(size, DefaultRootEntries)
		if err != nil {
			t.Errorf("newGeometry(%d): %v", size, err)
			continue
		}
		if g.clusters < minClusters16 || g.clusters > maxClusters16 {
			t.Errorf("newGeometry(%d) = %d clusters, want %d to %d", size, g.clusters, minClusters16, maxClusters16)
		}
		if need := (int64(g.clusters) + 2) * 2; int64(g.fatSectors)*SectorSize < need {
			t.Errorf("newGeometry(%d): FAT of %d sectors holds fewer than %d clusters", size, g.fatSectors, g.clusters)
		}
		if used := g.dataOffset() + int64(g.clusters)*g.clusterSize(); used > size {
			t.Errorf("newGeometry(%d): clusters end at byte %d, beyond the partition", size, used)
		}
	}

	g, err := newGeometry(100<<20, DefaultRootEntries)
	if err != nil {
		t.Fatal(err)
	}
	if g.sectorsPerCluster != 4 {
		t.Errorf("100 MiB partition: %d sectors per cluster, want 4", g.sectorsPerCluster)
	}
}

func TestTimestampEncoding(t *testing.T) {
	ts, err := newTimestamp(time.Date(2024, 5, 6, 7, 8, 9, 500_000_000, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if want := uint16(44<<9 | 5<<5 | 6); ts.date != want {
		t.Errorf("date = %#04x, want %#04x", ts.date, want)
	}
	if want := uint16(7<<11 | 8<<5 | 4); ts.time != want {
		t.Errorf("time = %#04x, want %#04x", ts.time, want)
	}
	if ts.tenth != 150 {
		t.Errorf("10 ms units = %d, want 150", ts.tenth)
	}

	zero, err := newTimestamp(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (timestamp{date: 1<<5 | 1}); zero != want {
		t.Errorf("zero time = %+v, want %+v (1980-01-01)", zero, want)
	}
}
