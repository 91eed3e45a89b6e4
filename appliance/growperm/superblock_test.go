package growperm

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// dumpe2fsHeader runs dumpe2fs -h on image and returns its "Key: value" lines.
func dumpe2fsHeader(t *testing.T, image string) map[string]string {
	t.Helper()
	dumpe2fs := testpeer.Require(t, "dumpe2fs", "e2fsprogs")
	out, err := exec.Command(dumpe2fs, "-h", image).Output()
	if err != nil {
		t.Fatalf("dumpe2fs -h %s: %v", image, err)
	}
	fields := map[string]string{}
	scanner := bufio.NewScanner(bytes.NewReader(out))
	for scanner.Scan() {
		key, value, ok := strings.Cut(scanner.Text(), ":")
		if ok {
			fields[key] = strings.TrimSpace(value)
		}
	}
	return fields
}

func dumpe2fsUint(t *testing.T, fields map[string]string, key string, fallback uint64) uint64 {
	t.Helper()
	value, ok := fields[key]
	if !ok {
		return fallback
	}
	n, err := strconv.ParseUint(value, 10, 64)
	if err != nil {
		t.Fatalf("dumpe2fs %q = %q: %v", key, value, err)
	}
	return n
}

func readImageSuperblock(t *testing.T, image string) []byte {
	t.Helper()
	f, err := os.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw := make([]byte, superblockSize)
	if _, err := f.ReadAt(raw, superblockOff); err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestParseSuperblockMatchesDumpe2fs reads superblocks that mkfs.ext4 made
// with different options and compares every field with dumpe2fs.
func TestParseSuperblockMatchesDumpe2fs(t *testing.T) {
	mkfs := testpeer.Require(t, "mkfs.ext4", "e2fsprogs")
	tests := []struct {
		name string
		args []string
	}{
		{"4 KiB blocks", []string{"-b", "4096"}},
		{"1 KiB blocks", []string{"-b", "1024"}},
		{"32-bit", []string{"-b", "4096", "-O", "^64bit"}},
		{"no resize_inode", []string{"-b", "4096", "-O", "^resize_inode"}},
		{"bigalloc", []string{"-b", "4096", "-O", "bigalloc", "-C", "65536"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			image := filepath.Join(t.TempDir(), "fs.img")
			if err := os.WriteFile(image, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(image, 300<<20); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"-q", "-F"}, tt.args...)
			if out, err := exec.Command(mkfs, append(args, image)...).CombinedOutput(); err != nil {
				t.Fatalf("mkfs.ext4 %v: %v\n%s", args, err, out)
			}

			sb, err := parseSuperblock(readImageSuperblock(t, image))
			if err != nil {
				t.Fatalf("parseSuperblock: %v", err)
			}
			fields := dumpe2fsHeader(t, image)
			blockSize := dumpe2fsUint(t, fields, "Block size", 0)
			checks := []struct {
				field string
				got   uint64
				want  uint64
			}{
				{"BlocksCount", sb.BlocksCount, dumpe2fsUint(t, fields, "Block count", 0)},
				{"BlockSize", sb.BlockSize, blockSize},
				{"FirstDataBlock", sb.FirstDataBlock, dumpe2fsUint(t, fields, "First block", 0)},
				{"BlocksPerGroup", sb.BlocksPerGroup, dumpe2fsUint(t, fields, "Blocks per group", 0)},
				{"InodesPerGroup", sb.InodesPerGroup, dumpe2fsUint(t, fields, "Inodes per group", 0)},
				{"InodeSize", sb.InodeSize, dumpe2fsUint(t, fields, "Inode size", 0)},
				{"ReservedGDTBlocks", sb.ReservedGDTBlocks, dumpe2fsUint(t, fields, "Reserved GDT blocks", 0)},
				{"DescSize", sb.DescSize, dumpe2fsUint(t, fields, "Group descriptor size", minGroupDescSize)},
				{"ClusterRatio", sb.ClusterRatio, dumpe2fsUint(t, fields, "Cluster size", blockSize) / blockSize},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %d, want %d as dumpe2fs shows", c.field, c.got, c.want)
				}
			}
		})
	}
}

func TestParseSuperblockRejects(t *testing.T) {
	if _, err := parseSuperblock(make([]byte, superblockSize)); !errors.Is(err, ErrUnsupportedLayout) {
		t.Errorf("parseSuperblock of zeros: got error %v, want %v", err, ErrUnsupportedLayout)
	}
	if _, err := parseSuperblock(make([]byte, 10)); err == nil {
		t.Error("parseSuperblock of 10 bytes: got no error, want one")
	}

	raw := make([]byte, superblockSize)
	raw[sbMagic], raw[sbMagic+1] = 0x53, 0xEF
	raw[sbLogBlockSize] = 30
	if _, err := parseSuperblock(raw); err == nil {
		t.Error("parseSuperblock with log block size 30: got no error, want one")
	}
}

func TestNeedsGrowth(t *testing.T) {
	// A 1 GiB ext4 as mke2fs makes it: 4 KiB blocks, 8192 inodes of 256
	// bytes per group (512 inode table blocks), 64-byte descriptors.
	sb := superblock{
		BlocksCount:       262144,
		BlockSize:         4096,
		BlocksPerGroup:    32768,
		InodesPerGroup:    8192,
		InodeSize:         256,
		ClusterRatio:      1,
		DescSize:          64,
		ReservedGDTBlocks: 255,
	}
	const blockSize = 4096
	fsBytes := int64(sb.BlocksCount) * blockSize
	slack := int64(sb.growSlack(sb.BlocksCount + 1000))
	if slack < 512 || slack > 1000 {
		t.Fatalf("growSlack = %d blocks, want between the inode table (512) and 1000", slack)
	}

	tests := []struct {
		name      string
		partBytes int64
		want      bool
	}{
		{"partition smaller", fsBytes - blockSize, false},
		{"partition equal", fsBytes, false},
		{"gap of the slack", fsBytes + slack*blockSize, false},
		{"gap one block over the slack", fsBytes + (slack+1)*blockSize, true},
		{"gap not a whole block", fsBytes + blockSize - 1, false},
		{"32 GiB partition", 32 << 30, true},
	}
	for _, tt := range tests {
		if got := sb.needsGrowth(tt.partBytes); got != tt.want {
			t.Errorf("%s: needsGrowth(%d) = %v, want %v", tt.name, tt.partBytes, got, tt.want)
		}
	}
}

// FuzzParseSuperblock checks that no superblock makes the parser or the slack
// computation panic.
func FuzzParseSuperblock(f *testing.F) {
	seed := make([]byte, superblockSize)
	seed[sbMagic], seed[sbMagic+1] = 0x53, 0xEF
	seed[sbBlocksCountLo+1] = 0x40
	seed[sbBlocksPerGroup+1] = 0x80
	seed[sbInodeSize] = 0x80
	f.Add(seed)
	f.Fuzz(func(t *testing.T, raw []byte) {
		sb, err := parseSuperblock(raw)
		if err != nil {
			return
		}
		sb.needsGrowth(1 << 40)
		sb.needsGrowth(0)
	})
}
