package squashfs

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// decodeMetadata decompresses a metadata table and returns its
// uncompressed bytes and, for each block, the block's position in the
// table mapped to its uncompressed offset.
func decodeMetadata(t *testing.T, table []byte) ([]byte, map[uint32]int64) {
	t.Helper()
	var out []byte
	blocks := map[uint32]int64{}
	for pos := 0; pos < len(table); {
		header := le.Uint16(table[pos:])
		size := int(header &^ metadataUncompressed)
		body := table[pos+2 : pos+2+size]
		blocks[uint32(pos)] = int64(len(out))
		if header&metadataUncompressed != 0 {
			out = append(out, body...)
		} else {
			zr, err := zlib.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("block at %d: %v", pos, err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("block at %d: %v", pos, err)
			}
			out = append(out, plain...)
		}
		if pos+2+size < len(table) && len(out)%metadataBlockSize != 0 {
			t.Fatalf("block at %d leaves %d uncompressed bytes, want a multiple of %d before the last block", pos, len(out), metadataBlockSize)
		}
		pos += 2 + size
	}
	return out, blocks
}

func TestMetadataWriterClosesFullBlocks(t *testing.T) {
	m := newMetadataWriter(newCompressor())
	random := make([]byte, metadataBlockSize)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	if err := m.write(random); err != nil {
		t.Fatal(err)
	}

	// Incompressible data is stored as is, and the next position is the
	// start of the next block, never offset 8192 of the full one.
	wantPos := metadataRef{block: 2 + metadataBlockSize, offset: 0}
	if got := m.position(); got != wantPos {
		t.Errorf("position after one full block = %+v, want %+v", got, wantPos)
	}
	if got := m.streamOffset(); got != metadataBlockSize {
		t.Errorf("streamOffset = %d, want %d", got, metadataBlockSize)
	}

	text := bytes.Repeat([]byte("zlib "), 3000)
	if err := m.write(text); err != nil {
		t.Fatal(err)
	}
	table, err := m.finish()
	if err != nil {
		t.Fatal(err)
	}
	if got := le.Uint16(table); got != metadataUncompressed|metadataBlockSize {
		t.Errorf("first block header = %#x, want %#x", got, metadataUncompressed|metadataBlockSize)
	}
	plain, _ := decodeMetadata(t, table)
	if want := append(random, text...); !bytes.Equal(plain, want) {
		t.Errorf("decoded table differs from the written bytes from byte %d on", firstDifference(plain, want))
	}
}

func firstDifference(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

func TestHeaderRunEnd(t *testing.T) {
	run := func(n int, mutate func(i int, e *dirEntry)) []dirEntry {
		entries := make([]dirEntry, n)
		for i := range entries {
			entries[i] = dirEntry{name: fmt.Sprint(i), inode: metadataRef{block: 100, offset: uint16(i * 20)}, number: uint32(10 + i)}
			if mutate != nil {
				mutate(i, &entries[i])
			}
		}
		return entries
	}
	cases := []struct {
		name    string
		entries []dirEntry
		first   int
		offset  int64 // of the header in the directory table
		want    int
	}{
		{"one entry", run(1, nil), 0, 0, 1},
		{"all fit", run(256, nil), 0, 0, 256},
		{"257 entries split", run(257, nil), 0, 0, 256},
		{"rest after split", run(257, nil), 256, 0, 257},
		// Each entry takes 9 bytes here, 8 and a one-digit name. An entry
		// may end in the next block, but must start in its header's block.
		{"entries fill the block", run(10, nil), 0, metadataBlockSize - 12 - 2*9, 2},
		{"entry crosses the block end", run(10, nil), 0, metadataBlockSize - 12 - 9 - 5, 2},
		{"header fills the block", run(10, nil), 0, metadataBlockSize - 12, 1},
		{"inode block changes", run(10, func(i int, e *dirEntry) {
			if i >= 4 {
				e.inode.block = 9000
			}
		}), 0, 0, 4},
		{"number too far above", run(3, func(i int, e *dirEntry) {
			if i == 2 {
				e.number = 10 + 32768
			}
		}), 0, 0, 2},
		{"number just in range", run(3, func(i int, e *dirEntry) {
			if i == 2 {
				e.number = 10 + 32767
			}
		}), 0, 0, 3},
		{"number too far below", run(3, func(i int, e *dirEntry) {
			e.number = 40000
			if i == 1 {
				e.number = 40000 - 32769
			}
		}), 0, 0, 1},
	}
	for _, c := range cases {
		if got := headerRunEnd(c.entries, c.first, c.offset); got != c.want {
			t.Errorf("%s: headerRunEnd(%d, %d) = %d, want %d", c.name, c.first, c.offset, got, c.want)
		}
	}
}

// TestWriteListingIndex checks that every index entry of a long listing
// points at a directory header that starts with the entry's name, in the
// metadata block the entry names, so the kernel's lookup can jump there.
func TestWriteListingIndex(t *testing.T) {
	dirs := newMetadataWriter(newCompressor())
	// Something before the listing, so it starts inside a block.
	if err := dirs.write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	var entries []dirEntry
	for i := range 1500 {
		entries = append(entries, dirEntry{
			name:      fmt.Sprintf("%04d-%s", i, strings.Repeat("n", 90)),
			inode:     metadataRef{block: uint32(i / 100 * 8000), offset: uint16(i % 100 * 40)},
			number:    uint32(2 + i),
			inodeType: inodeTypeFile,
		})
	}
	start := dirs.streamOffset()
	size, index, err := writeListing(dirs, entries)
	if err != nil {
		t.Fatal(err)
	}
	table, err := dirs.finish()
	if err != nil {
		t.Fatal(err)
	}
	plain, blocks := decodeMetadata(t, table)

	if want := int64(len(plain)) - start; int64(size) != want {
		t.Errorf("listing size = %d, want %d", size, want)
	}
	// Every block after the first gets an entry, except perhaps the last,
	// which may hold only the end of an entry.
	firstBlock, lastBlock := start/metadataBlockSize, (start+int64(size)-1)/metadataBlockSize
	if minIndex := int(lastBlock - firstBlock - 1); len(index) < minIndex {
		t.Fatalf("got %d index entries for a listing over blocks %d to %d, want at least %d", len(index), firstBlock, lastBlock, minIndex)
	}
	prevBlock := start / metadataBlockSize
	for i, e := range index {
		at := start + int64(e.listingOffset)
		blockStart, ok := blocks[e.block]
		if !ok {
			t.Fatalf("index entry %d names block position %d, which starts no block", i, e.block)
		}
		if at < blockStart || at >= blockStart+metadataBlockSize {
			t.Errorf("index entry %d: offset %d is not in the block at %d (uncompressed %d)", i, at, e.block, blockStart)
		}
		if block := at / metadataBlockSize; block <= prevBlock {
			t.Errorf("index entry %d: block %d does not follow block %d", i, block, prevBlock)
		} else {
			prevBlock = block
		}
		nameSize := int(le.Uint16(plain[at+dirHeaderSize+6:])) + 1
		name := string(plain[at+dirHeaderSize+8 : at+dirHeaderSize+8+int64(nameSize)])
		if name != e.name {
			t.Errorf("index entry %d: header starts with %q, want %q", i, name, e.name)
		}
	}
}

// TestFileBeyond4GiB writes a file whose data starts after 4 GiB into a
// sparse image, which needs an extended file inode with 64-bit fields.
func TestFileBeyond4GiB(t *testing.T) {
	unsquashfs := testpeer.Require(t, "unsquashfs", "squashfs-tools")
	path := filepath.Join(t.TempDir(), "sparse.squashfs")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := NewWriter(f, time.Unix(1_700_000_000, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("far away "), 40_000)
	if err := w.AddFile("near", 0o644, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	// Skip ahead instead of writing 4 GiB: the hole reads as zeros and no
	// inode points into it.
	w.offset = 4<<30 + 12345
	if err := w.AddFile("far", 0o644, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "root")
	out, err := exec.Command(unsquashfs, "-no-progress", "-d", dir, path).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -d: %v\n%s", err, out)
	}
	for _, name := range []string{"near", "far"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("%s: content differs from byte %d on (got %d bytes, want %d)", name, firstDifference(got, data), len(got), len(data))
		}
	}
}
