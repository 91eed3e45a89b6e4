package fat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// fsckClean runs fsck.vfat from dosfstools in check-only mode on the
// partition in path, and fails unless it prints nothing beyond its version
// and the summary line. -S and -U also flag spaces inside short names and
// lower-case labels.
func fsckClean(t *testing.T, path string) {
	t.Helper()
	fsck := testpeer.Require(t, "fsck.vfat", "dosfstools")
	out, err := exec.Command(fsck, "-n", "-S", "-U", path).CombinedOutput()
	if err != nil {
		t.Fatalf("fsck.vfat -n %s: %v\n%s", path, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	summary := regexp.MustCompile(`^\S+: \d+ files, \d+/\d+ clusters$`)
	if len(lines) != 2 || !summary.MatchString(lines[1]) {
		t.Errorf("fsck.vfat -n %s reported problems:\n%s", path, out)
	}
}

// mtools runs an mtools program on the partition in path and returns its
// standard output. mtools prints long names in the character set of the
// locale, so the test sets a UTF-8 one.
func mtools(t *testing.T, path, program string, args ...string) []byte {
	t.Helper()
	bin := testpeer.Require(t, program, "mtools")
	cmd := exec.Command(bin, append([]string{"-i", path}, args...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", program, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

func TestFsckAcceptsPartition(t *testing.T) {
	fsckClean(t, writeImage(t, newTestWriter(t, sampleFiles(), sampleDirs())))
}

func TestFsckAcceptsSizeLimits(t *testing.T) {
	lo, hi := sizeRange(DefaultRootEntries)
	for _, size := range []int64{lo, hi} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			w, err := NewWriter(Options{Size: size, VolumeID: 1, ModTime: testTime})
			if err != nil {
				t.Fatal(err)
			}
			addAll(t, w, sampleFiles()[:4], nil)
			path := writeImage(t, w)
			fsckClean(t, path)
			if got := mtools(t, path, "mtype", "::/cmdline.txt"); !bytes.Equal(got, sampleFiles()[0].data) {
				t.Errorf("mtype ::/cmdline.txt = %q, want %q", got, sampleFiles()[0].data)
			}
		})
	}
}

func TestMtoolsListsLongNames(t *testing.T) {
	files := sampleFiles()
	path := writeImage(t, newTestWriter(t, files, sampleDirs()))

	// mdir -/ -b lists every path below the root, directories with a
	// trailing slash.
	want := map[string]bool{}
	for _, f := range files {
		want["::/"+f.path] = true
		for dir := filepath.Dir(f.path); dir != "."; dir = filepath.Dir(dir) {
			want["::/"+dir+"/"] = true
		}
	}
	want["::/empty/"], want["::/empty/sub/"] = true, true

	listing := strings.Split(strings.TrimSpace(string(mtools(t, path, "mdir", "-/", "-b", "::/"))), "\n")
	got := map[string]bool{}
	for _, line := range listing {
		got[line] = true
	}
	for p := range want {
		if !got[p] {
			t.Errorf("mdir -/ -b lacks %q", p)
		}
	}
	for p := range got {
		if !want[p] {
			t.Errorf("mdir -/ -b lists %q, which was not written", p)
		}
	}

	// The plain listing of overlays shows each long name beside its short
	// name, and the modification time.
	overlays := string(mtools(t, path, "mdir", "::/overlays"))
	for _, s := range []string{"vc4-kms-v3d-pi4.dtbo", "Grüße 日本.dtbo", "VC4-KM~1 DTB", "2024-05-06   7:08"} {
		if !strings.Contains(overlays, s) {
			t.Errorf("mdir ::/overlays lacks %q:\n%s", s, overlays)
		}
	}
}

func TestMtoolsReadsContent(t *testing.T) {
	files := sampleFiles()
	path := writeImage(t, newTestWriter(t, files, nil))
	for _, f := range files {
		// mcopy to "-" writes the file to standard output, unconverted.
		got := mtools(t, path, "mcopy", "::/"+f.path, "-")
		if !bytes.Equal(got, f.data) {
			t.Errorf("mcopy ::/%s = %d bytes, want the %d bytes written", f.path, len(got), len(f.data))
		}
	}
	if got := mtools(t, path, "mtype", "::/config.txt"); !bytes.Equal(got, files[1].data) {
		t.Errorf("mtype ::/config.txt = %q, want %q", got, files[1].data)
	}
}

// TestReadFileOnMkfsImage reads a file system that dosfstools and mtools
// wrote, with two FATs and a file whose clusters are not contiguous, so
// that the reader is checked against another writer than ours.
func TestReadFileOnMkfsImage(t *testing.T) {
	mkfs := testpeer.Require(t, "mkfs.fat", "dosfstools")
	dir := t.TempDir()
	img := filepath.Join(dir, "mkfs.img")
	if out, err := exec.Command(mkfs, "-C", "-F", "16", "-s", "1", "-n", "MKFS", img, "8192").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.fat: %v\n%s", err, out)
	}

	// Deleting b.bin leaves a hole that big.bin fills before it continues
	// after c.bin, which fragments big.bin.
	contents := map[string][]byte{
		"a.bin":                 randomBytes(3000, 20),
		"b.bin":                 randomBytes(5000, 21),
		"c.bin":                 randomBytes(3000, 22),
		"big.bin":               randomBytes(40000, 23),
		"Long File Name.dat":    randomBytes(100, 24),
		"sub/deeper/nested.txt": []byte("nested\n"),
	}
	for _, name := range slices.Sorted(maps.Keys(contents)) {
		local := filepath.Join(dir, strings.ReplaceAll(name, "/", "_"))
		if err := os.WriteFile(local, contents[name], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mtools(t, img, "mmd", "::/sub", "::/sub/deeper")
	for _, name := range []string{"a.bin", "b.bin", "c.bin"} {
		mtools(t, img, "mcopy", filepath.Join(dir, name), "::/"+name)
	}
	mtools(t, img, "mdel", "::/b.bin")
	delete(contents, "b.bin")
	for _, name := range []string{"big.bin", "Long File Name.dat", "sub/deeper/nested.txt"} {
		mtools(t, img, "mcopy", filepath.Join(dir, strings.ReplaceAll(name, "/", "_")), "::/"+name)
	}

	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, want := range contents {
		got, err := ReadFile(f, 0, name)
		if err != nil {
			t.Errorf("ReadFile(%q): %v", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("ReadFile(%q) = %d bytes, want the %d bytes mcopy wrote", name, len(got), len(want))
		}
	}
	if !isFragmented(t, f, "big.bin") {
		t.Errorf("big.bin is contiguous: the test no longer covers cluster chains with gaps")
	}
}

// isFragmented reports whether the clusters of the root file name are not
// consecutive.
func isFragmented(t *testing.T, f *os.File, name string) bool {
	t.Helper()
	v, err := openVolume(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	e, err := v.lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	err = v.walkChain(e.cluster, func(uint32, int64) error { runs++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return runs > 1
}

// TestLongNameChecksumMatchesMtools compares the checksum that mcopy
// stores in its long-name entries with the checksum this package computes
// for the same short name.
func TestLongNameChecksumMatchesMtools(t *testing.T) {
	mkfs := testpeer.Require(t, "mkfs.fat", "dosfstools")
	dir := t.TempDir()
	img := filepath.Join(dir, "mkfs.img")
	if out, err := exec.Command(mkfs, "-C", "-F", "16", "-s", "1", img, "8192").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.fat: %v\n%s", err, out)
	}
	local := filepath.Join(dir, "src")
	if err := os.WriteFile(local, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	mtools(t, img, "mcopy", local, "::/bcm2710-rpi-3-b-plus.dtb")

	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := openVolume(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	root, err := v.readDir(0)
	if err != nil {
		t.Fatal(err)
	}

	// The name of 24 characters takes two long-name entries, then the
	// short entry.
	var lfnSums []byte
	for off := 0; off < len(root); off += dirEntrySize {
		e := root[off : off+dirEntrySize]
		if e[11] == attrLongName {
			lfnSums = append(lfnSums, e[13])
			continue
		}
		if len(lfnSums) == 0 {
			continue
		}
		var short shortName
		copy(short[:], e[:11])
		if len(lfnSums) != 2 {
			t.Fatalf("found %d long-name entries before %q, want 2", len(lfnSums), short)
		}
		for _, sum := range lfnSums {
			if sum != short.checksum() {
				t.Errorf("mtools checksum %#02x for %q, this package computes %#02x", sum, short, short.checksum())
			}
		}
		return
	}
	t.Fatalf("no long-name entry found in the root directory that mcopy wrote")
}

// TestFirmwareTreeFits writes the real boot files of the gokrazy Raspberry
// Pi kernel and firmware modules into a 100 MiB partition, the image's size.
// They include more than 300 overlays with long names and a kernel of more
// than 40 MB. fsck.vfat, mtools and ReadFile then check them.
func TestFirmwareTreeFits(t *testing.T) {
	if testing.Short() {
		t.Skip("reads about 70 MB from the module cache")
	}
	files := firmwareFiles(t)
	w := newTestWriter(t, nil, nil)
	for _, f := range files {
		src := f.src
		open := func() (io.ReadCloser, error) { return os.Open(src) }
		if err := w.AddFileFrom(f.path, f.size, open); err != nil {
			t.Fatal(err)
		}
	}
	path := writeImage(t, w)
	fsckClean(t, path)

	listing := string(mtools(t, path, "mdir", "-b", "::/overlays"))
	overlays := 0
	for _, f := range files {
		if strings.HasPrefix(f.path, "overlays/") {
			overlays++
			if !strings.Contains(listing, "::/"+f.path+"\n") {
				t.Errorf("mdir -b ::/overlays lacks %q", f.path)
			}
		}
	}
	if overlays < 300 {
		t.Errorf("firmware tree has %d overlays, want more than 300", overlays)
	}

	img, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	for _, f := range files {
		want, err := os.ReadFile(f.src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReadFile(img, 0, f.path)
		if err != nil {
			t.Errorf("ReadFile(%q): %v", f.path, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("ReadFile(%q) = %d bytes, want the %d bytes of %s", f.path, len(got), len(want), f.src)
		}
	}
	for _, name := range []string{"bcm2710-rpi-3-b-plus.dtb", "overlays/vc4-kms-v3d.dtbo", "vmlinuz"} {
		want, _ := os.ReadFile(srcOf(files, name))
		if got := mtools(t, path, "mcopy", "::/"+name, "-"); !bytes.Equal(got, want) {
			t.Errorf("mcopy ::/%s = %d bytes, want %d", name, len(got), len(want))
		}
	}
}

// firmwareFile is a boot file in the module cache.
type firmwareFile struct {
	path string // in the partition
	src  string
	size int64
}

// firmwareFiles lists the boot files of the gokrazy kernel.rpi and firmware
// modules that go.mod requires. They are missing only when the module cache
// is: under CI=true that fails the test, elsewhere it skips.
func firmwareFiles(t *testing.T) []firmwareFile {
	t.Helper()
	var files []firmwareFile
	for _, mod := range []string{"github.com/gokrazy/kernel.rpi", "github.com/gokrazy/firmware"} {
		cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod)
		cmd.Env = append(os.Environ(), "GOPROXY=off")
		out, err := cmd.Output()
		dir := strings.TrimSpace(string(out))
		if err != nil || dir == "" {
			if os.Getenv("CI") == "true" {
				t.Fatalf("module %s is not in the module cache (go list: %v): run go mod download", mod, err)
			}
			t.Skipf("module %s is not in the module cache: run go mod download", mod)
		}
		patterns := []string{"*.dtb", "*.elf", "*.dat", "bootcode.bin", "cmdline.txt", "config.txt", "vmlinuz", "overlays/*"}
		for _, pattern := range patterns {
			matches, err := filepath.Glob(filepath.Join(dir, pattern))
			if err != nil {
				t.Fatal(err)
			}
			for _, src := range matches {
				info, err := os.Stat(src)
				if err != nil {
					t.Fatal(err)
				}
				rel, _ := filepath.Rel(dir, src)
				files = append(files, firmwareFile{path: filepath.ToSlash(rel), src: src, size: info.Size()})
			}
		}
	}
	return files
}

func srcOf(files []firmwareFile, path string) string {
	for _, f := range files {
		if f.path == path {
			return f.src
		}
	}
	return ""
}

// TestGokrazyReaderFindsCmdline builds a program against gokrazy's own FAT
// reader (github.com/gokrazy/internal/fat, at the version in go.mod), which
// gokrazy's update code uses to rewrite /cmdline.txt in place, and checks
// that the offset and length it returns hold our cmdline.txt. The package is
// internal to gokrazy, so the program is a module under github.com/gokrazy/.
func TestGokrazyReaderFindsCmdline(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go command not found: %v", err)
	}
	version, sums := gokrazyInternalVersion(t)

	// Put the partition behind 1 MiB of other data, as in the image.
	const offset = 2048 * SectorSize
	files := sampleFiles()
	w := newTestWriter(t, files, sampleDirs())
	dir := t.TempDir()
	imgPath := filepath.Join(dir, "disk.img")
	img, err := os.Create(imgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WritePartition(img, offset); err != nil {
		t.Fatal(err)
	}
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}

	mod := filepath.Join(dir, "fatcheck")
	writeFatcheckModule(t, mod, version, sums)
	cmd := exec.Command(goBin, "run", ".", imgPath, fmt.Sprint(offset), "/cmdline.txt", "/config.txt")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run of the gokrazy reader program: %v\n%s\n(the module github.com/gokrazy/internal@%s must be in the module cache: run go mod download)", err, out, version)
	}

	raw, err := os.ReadFile(imgPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := [][]byte{files[0].data, files[1].data}
	if len(lines) != len(want) {
		t.Fatalf("gokrazy reader printed %q, want %d lines", out, len(want))
	}
	for i, line := range lines {
		var name string
		var off, length int64
		if _, err := fmt.Sscan(line, &name, &off, &length); err != nil {
			t.Fatalf("parsing %q: %v", line, err)
		}
		got := raw[offset+off : offset+off+length]
		if !bytes.Equal(got, want[i]) {
			t.Errorf("gokrazy Extents(%s) = offset %d, length %d, holding %q; want %q", name, off, length, got, want[i])
		}
	}
}

// gokrazyInternalVersion returns the version of github.com/gokrazy/internal
// in our go.mod and its go.sum lines.
func gokrazyInternalVersion(t *testing.T) (string, string) {
	t.Helper()
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/gokrazy/internal (v\S+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod does not require github.com/gokrazy/internal")
	}
	version := string(m[1])

	gosum, err := os.ReadFile("../../go.sum")
	if err != nil {
		t.Fatal(err)
	}
	var sums []string
	for _, line := range strings.Split(string(gosum), "\n") {
		if strings.HasPrefix(line, "github.com/gokrazy/internal "+version) {
			sums = append(sums, line)
		}
	}
	if len(sums) != 2 {
		t.Fatalf("go.sum has %d lines for github.com/gokrazy/internal %s, want 2", len(sums), version)
	}
	return version, strings.Join(sums, "\n") + "\n"
}

// writeFatcheckModule writes a program that opens the partition at the
// given offset with gokrazy's fat.NewReader and prints, for each path,
// the path, the offset and the length that Extents returns.
func writeFatcheckModule(t *testing.T, dir, version, sums string) {
	t.Helper()
	gomod := "module github.com/gokrazy/fatcheck\n\ngo 1.21\n\nrequire github.com/gokrazy/internal " + version + "\n"
	program := `package main

import (
	"fmt"
	"io"
	"log"
	"os"
	"strconv"

	"github.com/gokrazy/internal/fat"
)

func main() {
	f, err := os.Open(os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	offset, err := strconv.ParseInt(os.Args[2], 10, 64)
	if err != nil {
		log.Fatal(err)
	}
	r, err := fat.NewReader(io.NewSectionReader(f, offset, 1<<40))
	if err != nil {
		log.Fatal(err)
	}
	for _, path := range os.Args[3:] {
		off, length, err := r.Extents(path)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(path, off, length)
	}
}
`
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"go.mod": gomod, "go.sum": sums, "main.go": program} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBootSectorForGokrazyReader checks the boot sector fields that
// gokrazy's reader takes as given.
func TestBootSectorForGokrazyReader(t *testing.T) {
	img := writeMem(t, newTestWriter(t, nil, nil), 0)
	b := img.b
	if got := b[16]; got != 1 {
		t.Errorf("number of FATs = %d, want 1", got)
	}
	if got := binary.LittleEndian.Uint16(b[17:]); got != DefaultRootEntries {
		t.Errorf("root directory entries = %d, want %d", got, DefaultRootEntries)
	}
	if got := string(b[54:62]); got != "FAT16   " {
		t.Errorf("file system type = %q, want \"FAT16   \"", got)
	}
}
