package permfs

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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

// TestMakeResizeInodeLayout guards against the resize inode layout of
// go-diskfs v1.9.4, which put the last reserved GDT block at index 0 of the
// double-indirect block. Linux's online resize (reserve_backup_gdb in
// fs/ext4/resize.c) then failed with EINVAL, although e2fsck, which checks
// only the first quarter of the entries, found nothing. The test reads the
// layout back with dumpe2fs and debugfs and checks what the kernel checks.
// Reserved GDT block r must sit at index (GDT blocks + r) mod (block size / 4),
// and it must list its backups in groups 1, 3, 5, 7, 9, 25, 27, ... in order.
func TestMakeResizeInodeLayout(t *testing.T) {
	e2fsck := testpeer.Require(t, "e2fsck", "e2fsprogs")
	tests := []struct {
		size int64
		// backups are the groups with a superblock backup, which each
		// reserved GDT block lists.
		backups []uint64
	}{
		{MinSize, []uint64{1}},
		{1 << 30, []uint64{1, 3, 5, 7}},
		{4<<27 - 4096, []uint64{1, 3}}, // last group one block short
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d bytes", tt.size), func(t *testing.T) {
			opts := Options{Size: tt.size, Label: "perm", Seed: []byte("resize"), ModTime: time.Unix(1_700_000_000, 0)}
			img := filepath.Join(t.TempDir(), "perm.ext4")
			if err := os.WriteFile(img, makeFile(t, "p", 0, opts), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(e2fsck, "-fn", img).CombinedOutput(); err != nil {
				t.Fatalf("e2fsck -fn: %v\n%s", err, out)
			}

			geo := readGeometryWithDumpe2fs(t, img)
			addrPerBlock := geo.blockSize / 4
			indirect, data := readResizeInodeBlocks(t, img, addrPerBlock)
			if len(indirect) != int(geo.reservedGDT) {
				t.Errorf("resize inode has %d indirect blocks, want %d (the reserved GDT blocks)", len(indirect), geo.reservedGDT)
			}
			for r := range geo.reservedGDT {
				primary := geo.reservedStart + r
				index := (geo.descBlocks + r) % addrPerBlock
				if got := indirect[index]; got != primary {
					t.Errorf("double-indirect entry %d = %d, want reserved GDT block %d", index, got, primary)
					continue
				}
				firstLogical := 12 + addrPerBlock + index*addrPerBlock // after direct and single-indirect blocks
				for j, group := range tt.backups {
					want := primary + group*geo.blocksPerGroup
					if got := data[firstLogical+uint64(j)]; got != want {
						t.Errorf("reserved GDT block %d entry %d = %d, want %d (its backup in group %d)", primary, j, got, want, group)
					}
				}
				if got := data[firstLogical+uint64(len(tt.backups))]; got != 0 {
					t.Errorf("reserved GDT block %d entry %d = %d, want 0 after the backups", primary, len(tt.backups), got)
				}
			}
		})
	}
}

// dumpe2fsGeometry is the part of dumpe2fs's output that places the
// reserved GDT blocks.
type dumpe2fsGeometry struct {
	blockSize, blocksPerGroup uint64
	descBlocks, reservedGDT   uint64
	reservedStart             uint64 // first reserved GDT block of group 0
}

func readGeometryWithDumpe2fs(t *testing.T, img string) dumpe2fsGeometry {
	t.Helper()
	dumpe2fs := testpeer.Require(t, "dumpe2fs", "e2fsprogs")
	out, err := exec.Command(dumpe2fs, img).Output()
	if err != nil {
		t.Fatalf("dumpe2fs: %v", err)
	}
	text := string(out)

	field := func(name string) uint64 {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `:\s+(\d+)$`).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("dumpe2fs output lacks %q:\n%s", name, text)
		}
		n, _ := strconv.ParseUint(m[1], 10, 64)
		return n
	}
	geo := dumpe2fsGeometry{
		blockSize:      field("Block size"),
		blocksPerGroup: field("Blocks per group"),
		reservedGDT:    field("Reserved GDT blocks"),
	}

	m := regexp.MustCompile(`(?m)^Group 0:.*\n.*Group descriptors at (\d+)-(\d+)\n\s+Reserved GDT blocks at (\d+)-(\d+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("dumpe2fs output lacks the GDT blocks of group 0:\n%s", text)
	}
	var n [4]uint64
	for i := range n {
		n[i], _ = strconv.ParseUint(m[i+1], 10, 64)
	}

	geo.descBlocks = n[1] - n[0] + 1
	geo.reservedStart = n[2]
	if got := n[3] - n[2] + 1; got != geo.reservedGDT {
		t.Fatalf("dumpe2fs lists %d reserved GDT blocks in group 0, and %d in the superblock", got, geo.reservedGDT)
	}
	return geo
}

// readResizeInodeBlocks returns the blocks of the resize inode as
// debugfs's stat lists them: the indirect blocks by their index in the
// double-indirect block, and the data blocks by logical block number.
func readResizeInodeBlocks(t *testing.T, img string, addrPerBlock uint64) (indirect, data map[uint64]uint64) {
	t.Helper()
	debugfs := testpeer.Require(t, "debugfs", "e2fsprogs")
	out, err := exec.Command(debugfs, "-R", "stat <7>", img).Output()
	if err != nil {
		t.Fatalf("debugfs stat <7>: %v", err)
	}
	_, list, ok := strings.Cut(string(out), "BLOCKS:\n")
	if !ok {
		t.Fatalf("debugfs stat <7> lists no blocks:\n%s", out)
	}
	list, _, _ = strings.Cut(list, "\nTOTAL:")

	indirect, data = map[uint64]uint64{}, map[uint64]uint64{}
	var pending uint64 // indirect block whose index the next data block gives
	entry := regexp.MustCompile(`^\(([A-Z]+|\d+(?:-\d+)?)\):(\d+)(?:-\d+)?$`)
	for _, item := range strings.Split(strings.TrimSpace(list), ", ") {
		m := entry.FindStringSubmatch(item)
		if m == nil {
			t.Fatalf("debugfs block list entry %q not understood", item)
		}
		physical, _ := strconv.ParseUint(m[2], 10, 64)
		switch m[1] {
		case "DIND":
			continue
		case "IND":
			if pending != 0 {
				t.Fatalf("debugfs lists indirect block %d without data blocks, so its index is unknown", pending)
			}
			pending = physical
			continue
		}
		first, last, _ := strings.Cut(m[1], "-")
		from, _ := strconv.ParseUint(first, 10, 64)
		to := from
		if last != "" {
			to, _ = strconv.ParseUint(last, 10, 64)
		}
		for logical := from; logical <= to; logical++ {
			data[logical] = physical + logical - from
		}
		if pending != 0 {
			// The double-indirect block maps logical blocks from 12 (the
			// direct blocks) + addrPerBlock (the single-indirect block) on.
			index := (from - 12 - addrPerBlock) / addrPerBlock
			indirect[index] = pending
			pending = 0
		}
	}
	if pending != 0 {
		t.Fatalf("debugfs lists indirect block %d without data blocks, so its index is unknown", pending)
	}
	return indirect, data
}

// TestMakeRejectsShortBackupGroup guards against a last block group that
// holds a superblock backup but ends inside its reserved GDT blocks, which
// go-diskfs v1.9.4 writes and e2fsck rejects ("illegal block in inode 7").
func TestMakeRejectsShortBackupGroup(t *testing.T) {
	for _, size := range []int64{3<<27 + 4096, 3<<27 + 1<<20} {
		f, err := os.Create(filepath.Join(t.TempDir(), "perm.ext4"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		err = Make(f, 0, Options{Size: size, Seed: []byte("short")})
		if err == nil || !strings.Contains(err.Error(), "last block group 3") {
			t.Errorf("Make with size %d: got error %v, want one about last block group 3", size, err)
		}
	}
}
