package fat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// paddedImage serves data followed by zeros up to size bytes, so that a
// fuzz input of a few kilobytes stands for a partition of megabytes.
type paddedImage struct {
	data []byte
	size int64
}

func (p paddedImage) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= p.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), p.size-off))
	clear(b[:n])
	if off < int64(len(p.data)) {
		copy(b[:n], p.data[off:])
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// fuzzSeedImage returns the smallest FAT16 partition with a few files and
// long names, cut after its last non-zero byte.
func fuzzSeedImage(t testing.TB) (data []byte, size int64) {
	lo, _ := sizeRange(16)
	w, err := NewWriter(Options{Size: lo, VolumeLabel: "SEED", VolumeID: 7, ModTime: testTime, RootEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	addAll(t, w, []testFile{
		{"cmdline.txt", []byte("console=ttyS0\n")},
		{"kernel.img", randomBytes(2000, 30)},
		{"empty", nil},
		{"overlays/vc4-kms-v3d.dtbo", []byte("overlay")},
		{"overlays/README", []byte("readme")},
	}, nil)
	img := writeMem(t, w, 0)
	return bytes.TrimRight(img.b, "\x00"), lo
}

func FuzzReadFile(f *testing.F) {
	seed, size := fuzzSeedImage(f)
	paths := []string{"cmdline.txt", "kernel.img", "/overlays/vc4-kms-v3d.dtbo", "OVERLAYS/README", "empty", "missing/x"}
	for _, p := range paths {
		f.Add(seed, p)
	}

	v, err := openVolume(bytes.NewReader(seed), 0)
	if err != nil {
		f.Fatal(err)
	}
	damage := func(change func(b []byte)) []byte {
		b := bytes.Clone(seed)
		change(b)
		return b
	}
	// kernel.img starts at cluster 3 and has 4 clusters: make the FAT entry
	// of cluster 3 point to itself, past the last cluster, and to a free one.
	for _, next := range []uint16{3, 0xFFF0, 0} {
		f.Add(damage(func(b []byte) { binary.LittleEndian.PutUint16(b[v.fatOffset+2*3:], next) }), "kernel.img")
	}
	lfn := firstLongEntry(f, v, seed)
	f.Add(damage(func(b []byte) { b[lfn+13]++ }), "overlays/vc4-kms-v3d.dtbo")
	// A cut-off boot sector, and a FAT32-like one.
	f.Add(seed[:100], "cmdline.txt")
	f.Add(damage(func(b []byte) { binary.LittleEndian.PutUint16(b[22:], 0) }), "cmdline.txt")

	f.Fuzz(func(t *testing.T, data []byte, path string) {
		img := paddedImage{data: data, size: size}
		got, err := ReadFile(img, 0, path)
		if err == nil && int64(len(got)) > size {
			t.Errorf("ReadFile(%q) returned %d bytes from a partition of %d", path, len(got), size)
		}
	})
}

func TestReadFileOnDamagedPartition(t *testing.T) {
	seed, size := fuzzSeedImage(t)
	v, err := openVolume(bytes.NewReader(seed), 0)
	if err != nil {
		t.Fatal(err)
	}

	// kernel.img has clusters 3 to 6: make 4 point back to 3.
	loop := bytes.Clone(seed)
	binary.LittleEndian.PutUint16(loop[v.fatOffset+2*4:], 3)
	lfn := bytes.Clone(seed)
	lfn[firstLongEntry(t, v, seed)+13]++

	tests := []struct {
		name string
		data []byte
		path string
		want string
	}{
		{"cluster loop", loop, "kernel.img", "loops"},
		{"long-name checksum", lfn, "overlays/vc4-kms-v3d.dtbo", "not found"},
		{"cut boot sector", seed[:100], "cmdline.txt", "boot sector"},
	}
	for _, tt := range tests {
		_, err := ReadFile(paddedImage{data: tt.data, size: size}, 0, tt.path)
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
			t.Errorf("%s: ReadFile(%q) error = %v, want one containing %q", tt.name, tt.path, err, tt.want)
		}
	}

	// The short name still finds the file whose long name is damaged.
	if _, err := ReadFile(paddedImage{data: lfn, size: size}, 0, "overlays/VC4-KM~1.DTB"); err != nil {
		t.Errorf("ReadFile by short name after damaging the long name: %v", err)
	}
}

// firstLongEntry returns the offset in the seed image of the first
// long-name entry in the overlays directory.
func firstLongEntry(t testing.TB, v *volume, seed []byte) int64 {
	t.Helper()
	e, err := v.lookup("overlays")
	if err != nil {
		t.Fatal(err)
	}
	dir := v.dataOffset + int64(e.cluster-2)*v.clusterSize()
	for off := dir; off < dir+v.clusterSize(); off += dirEntrySize {
		if seed[off+11] == attrLongName {
			return off
		}
	}
	t.Fatal("no long-name entry in overlays")
	return 0
}
