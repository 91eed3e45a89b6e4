package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"strings"
	"unicode/utf16"
)

// ReadFile returns the content of the file at path in the FAT16 file system
// of the partition that starts at byte offset of r. It matches each path
// component case-insensitively against long names and short (8.3) names, and
// follows the cluster chain in the FAT, so the file need not be contiguous.
// A missing file returns an error wrapping fs.ErrNotExist. ReadFile reads
// FAT16 only, and uses the first FAT without checking the other copies.
func ReadFile(r io.ReaderAt, offset int64, path string) ([]byte, error) {
	v, err := openVolume(r, offset)
	if err != nil {
		return nil, err
	}
	e, err := v.lookup(path)
	if err != nil {
		return nil, err
	}
	if e.attr&attrDirectory != 0 {
		return nil, fmt.Errorf("reading %q: is a directory", path)
	}
	data, err := v.readChain(e.cluster, int64(e.size))
	if err != nil {
		return nil, fmt.Errorf("reading %q: %w", path, err)
	}
	return data, nil
}

// volume is an opened FAT16 file system.
type volume struct {
	r    io.ReaderAt
	base int64

	bytesPerSector    int64
	sectorsPerCluster int64
	rootEntries       int64
	fatOffset         int64 // of the first FAT, relative to base
	rootOffset        int64
	dataOffset        int64
	clusters          uint32

	fat []byte // entries 0 to clusters+1 of the first FAT, read on first use
}

// openVolume reads and checks the BIOS parameter block ("Boot Sector and
// BPB") of the partition at offset.
func openVolume(r io.ReaderAt, offset int64) (*volume, error) {
	boot := make([]byte, SectorSize)
	if _, err := r.ReadAt(boot, offset); err != nil {
		return nil, fmt.Errorf("reading FAT boot sector at offset %d: %w", offset, err)
	}
	if boot[510] != 0x55 || boot[511] != 0xAA {
		return nil, fmt.Errorf("no FAT boot sector at offset %d: signature is %#02x %#02x, want 0x55 0xaa", offset, boot[510], boot[511])
	}

	le16 := func(i int) int64 { return int64(binary.LittleEndian.Uint16(boot[i:])) }
	v := &volume{
		r:                 r,
		base:              offset,
		bytesPerSector:    le16(11),
		sectorsPerCluster: int64(boot[13]),
		rootEntries:       le16(17),
	}
	reserved, numFATs, fatSectors := le16(14), int64(boot[16]), le16(22)
	total := le16(19)
	if total == 0 {
		total = int64(binary.LittleEndian.Uint32(boot[32:]))
	}

	switch {
	case v.bytesPerSector < 512 || v.bytesPerSector > 4096 || bits.OnesCount64(uint64(v.bytesPerSector)) != 1:
		return nil, fmt.Errorf("invalid FAT boot sector: %d bytes per sector, want 512, 1024, 2048 or 4096", v.bytesPerSector)
	case v.sectorsPerCluster == 0 || bits.OnesCount64(uint64(v.sectorsPerCluster)) != 1:
		return nil, fmt.Errorf("invalid FAT boot sector: %d sectors per cluster, want a power of 2", v.sectorsPerCluster)
	case reserved == 0 || numFATs == 0:
		return nil, fmt.Errorf("invalid FAT boot sector: %d reserved sectors and %d FATs, want at least 1 each", reserved, numFATs)
	case fatSectors == 0:
		return nil, fmt.Errorf("unsupported FAT file system at offset %d: the 16-bit FAT size is 0, as in FAT32: only FAT16 is supported", offset)
	}

	rootSectors := (v.rootEntries*dirEntrySize + v.bytesPerSector - 1) / v.bytesPerSector
	metaSectors := reserved + numFATs*fatSectors + rootSectors
	if metaSectors >= total {
		return nil, fmt.Errorf("invalid FAT boot sector: %d sectors of metadata leave no data area in %d sectors", metaSectors, total)
	}
	clusters := (total - metaSectors) / v.sectorsPerCluster
	if clusters < minClusters16 || clusters > maxClusters16 {
		return nil, fmt.Errorf("unsupported FAT file system at offset %d: %d clusters, FAT16 has %d to %d: only FAT16 is supported",
			offset, clusters, minClusters16, maxClusters16)
	}
	if fatSectors*v.bytesPerSector < (clusters+2)*2 {
		return nil, fmt.Errorf("invalid FAT boot sector: %d FAT sectors cannot hold %d clusters", fatSectors, clusters)
	}

	v.clusters = uint32(clusters)
	v.fatOffset = reserved * v.bytesPerSector
	v.rootOffset = (reserved + numFATs*fatSectors) * v.bytesPerSector
	v.dataOffset = metaSectors * v.bytesPerSector
	return v, nil
}

func (v *volume) clusterSize() int64 { return v.sectorsPerCluster * v.bytesPerSector }

// foundEntry is a directory entry that lookup found.
type foundEntry struct {
	attr    byte
	cluster uint32
	size    uint32
}

// lookup finds the entry at path, with "/" as separator and an optional
// leading "/".
func (v *volume) lookup(path string) (foundEntry, error) {
	trimmed := strings.TrimPrefix(path, "/")
	if trimmed == "" {
		return foundEntry{}, fmt.Errorf("reading %q: path names the root directory", path)
	}

	dir := foundEntry{attr: attrDirectory} // cluster 0: the root directory
	for _, part := range strings.Split(trimmed, "/") {
		if part == "" || part == "." || part == ".." {
			return foundEntry{}, fmt.Errorf("reading %q: invalid path component %q", path, part)
		}
		if dir.attr&attrDirectory == 0 {
			return foundEntry{}, fmt.Errorf("reading %q: a parent is a file, not a directory: %w", path, fs.ErrNotExist)
		}
		raw, err := v.readDir(dir.cluster)
		if err != nil {
			return foundEntry{}, fmt.Errorf("reading %q: %w", path, err)
		}
		e, ok := findEntry(raw, part)
		if !ok {
			return foundEntry{}, fmt.Errorf("reading %q: %q not found: %w", path, part, fs.ErrNotExist)
		}
		dir = e
	}
	return dir, nil
}

// readDir returns the raw entries of the directory at cluster, or of the
// fixed root directory when cluster is 0.
func (v *volume) readDir(cluster uint32) ([]byte, error) {
	if cluster == 0 {
		b := make([]byte, v.rootEntries*dirEntrySize)
		if _, err := v.r.ReadAt(b, v.base+v.rootOffset); err != nil {
			return nil, fmt.Errorf("reading root directory: %w", err)
		}
		return b, nil
	}
	// A directory has no size in its entry: it ends with its cluster chain.
	b, err := v.readChain(cluster, -1)
	if err != nil {
		return nil, fmt.Errorf("reading directory at cluster %d: %w", cluster, err)
	}
	return b, nil
}

// errChainEnd ends the walk of a cluster chain early.
var errChainEnd = errors.New("end of chain")

// readChain reads size bytes from the cluster chain that starts at first, or
// the chain of a directory, up to its maximum of 65536 entries, when size is
// -1. It reads runs of
// consecutive clusters with one ReadAt each, and grows its buffer as it
// reads, so a damaged size field cannot make it allocate more than the
// partition contains.
func (v *volume) readChain(first uint32, size int64) ([]byte, error) {
	if size == 0 {
		return []byte{}, nil
	}
	if first == 0 {
		return nil, fmt.Errorf("file of %d bytes has no clusters", size)
	}

	limit := size
	if size < 0 {
		limit = maxDirEntries * dirEntrySize
	}
	var out []byte
	err := v.walkChain(first, func(start uint32, n int64) error {
		want := min(n*v.clusterSize(), limit-int64(len(out)))
		at := len(out)
		out = append(out, make([]byte, want)...)
		if _, err := v.r.ReadAt(out[at:], v.base+v.dataOffset+int64(start-2)*v.clusterSize()); err != nil {
			return fmt.Errorf("reading clusters %d to %d: %w", start, int64(start)+n-1, err)
		}
		if int64(len(out)) == limit {
			return errChainEnd
		}
		return nil
	})
	if err != nil && err != errChainEnd {
		return nil, err
	}
	if size >= 0 && int64(len(out)) < size {
		return nil, fmt.Errorf("cluster chain from %d ends after %d bytes, but the file has %d", first, len(out), size)
	}
	return out, nil
}

// walkChain calls visit for each run of consecutive clusters in the chain
// that starts at first, until the end-of-chain mark or until visit returns
// an error. It rejects free, reserved and bad clusters, and a chain that
// returns to a cluster it passed.
func (v *volume) walkChain(first uint32, visit func(start uint32, n int64) error) error {
	if err := v.loadFAT(); err != nil {
		return err
	}
	seen := make([]uint64, (v.clusters+2+63)/64)
	cluster := first
	runStart, runLen := first, int64(0)
	for {
		if cluster < 2 || cluster >= v.clusters+2 {
			return fmt.Errorf("cluster chain from %d leads to invalid cluster %d (the file system has 2 to %d)", first, cluster, v.clusters+1)
		}
		if seen[cluster/64]&(1<<(cluster%64)) != 0 {
			return fmt.Errorf("cluster chain from %d loops at cluster %d", first, cluster)
		}
		seen[cluster/64] |= 1 << (cluster % 64)
		runLen++

		next := uint32(binary.LittleEndian.Uint16(v.fat[2*cluster:]))
		if next >= 0xFFF8 {
			return visit(runStart, runLen)
		}
		if next != cluster+1 {
			if err := visit(runStart, runLen); err != nil {
				return err
			}
			runStart, runLen = next, 0
		}
		cluster = next
	}
}

// loadFAT reads the entries of the first FAT that the clusters use.
func (v *volume) loadFAT() error {
	if v.fat != nil {
		return nil
	}
	fat := make([]byte, (int64(v.clusters)+2)*2)
	if _, err := v.r.ReadAt(fat, v.base+v.fatOffset); err != nil {
		return fmt.Errorf("reading FAT: %w", err)
	}
	v.fat = fat
	return nil
}

// findEntry returns the entry in the raw directory dir whose long name or
// short name equals name, ignoring case. Long-name entries whose sequence or
// checksum does not fit the short entry after them are ignored, as the
// overview v1.03 requires.
func findEntry(dir []byte, name string) (foundEntry, bool) {
	var lfn longNameState
	for off := 0; off+dirEntrySize <= len(dir); off += dirEntrySize {
		e := dir[off : off+dirEntrySize]
		switch {
		case e[0] == 0x00: // end of directory
			return foundEntry{}, false
		case e[0] == 0xE5: // deleted
			lfn.reset()
			continue
		case e[11]&0x3F == attrLongName:
			lfn.add(e)
			continue
		case e[11]&attrVolumeID != 0:
			lfn.reset()
			continue
		}

		var short shortName
		copy(short[:], e[0:11])
		long := lfn.finish(short.checksum())
		if strings.EqualFold(long, name) || strings.EqualFold(displayShortName(short), name) {
			return foundEntry{
				attr:    e[11],
				cluster: uint32(binary.LittleEndian.Uint16(e[20:]))<<16 | uint32(binary.LittleEndian.Uint16(e[26:])),
				size:    binary.LittleEndian.Uint32(e[28:]),
			}, true
		}
	}
	return foundEntry{}, false
}

// displayShortName returns the stored short name s in the form
// "NAME.EXT". A first byte of 0x05 stands for 0xE5. Bytes above 127 are
// code-page characters that only a long name can match here.
func displayShortName(s shortName) string {
	if s[0] == 0x05 {
		s[0] = 0xE5
	}
	return strings.Map(func(c rune) rune {
		if c > 127 {
			return '\uFFFD'
		}
		return c
	}, s.String())
}

// longNameState collects the long-name entries before a short entry.
type longNameState struct {
	units []uint16
	next  int  // sequence number expected next, 0 when complete or idle
	sum   byte // checksum that every entry of the name carries
	valid bool
}

func (s *longNameState) reset() { *s = longNameState{units: s.units[:0]} }

// add takes one long-name entry. The entries come last part first, numbered
// from the part count (with lastLongEntry set) down to 1.
func (s *longNameState) add(e []byte) {
	seq := int(e[0] &^ lastLongEntry)
	if e[0]&lastLongEntry != 0 {
		s.reset()
		if seq < 1 || seq > 20 {
			return
		}
		s.units = append(s.units[:0], make([]uint16, seq*lfnCharsPerEntry)...)
		s.sum, s.next, s.valid = e[13], seq, true
	}
	if !s.valid || seq != s.next || e[13] != s.sum {
		s.valid = false
		return
	}

	chars := s.units[(seq-1)*lfnCharsPerEntry:]
	for i, at := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
		chars[i] = binary.LittleEndian.Uint16(e[at:])
	}
	s.next--
}

// finish returns the long name collected for the short entry whose name
// has the checksum sum, or "" when there is none or it is damaged.
func (s *longNameState) finish(sum byte) string {
	defer s.reset()
	if !s.valid || s.next != 0 || s.sum != sum {
		return ""
	}
	units := s.units
	for i, u := range units {
		if u == 0 {
			units = units[:i]
			break
		}
	}
	return string(utf16.Decode(units))
}

// FileExtent returns where the data of the file at path lies: the byte
// offset in r of its first byte and its size. It fails when the file's
// clusters are not contiguous, because then no single range holds the
// file. The writer lays out every file contiguously, so FileExtent lets a
// program overwrite a file of an image in place without changing its size,
// which keeps the directory and the FAT as they are.
func FileExtent(r io.ReaderAt, offset int64, path string) (start, size int64, err error) {
	v, err := openVolume(r, offset)
	if err != nil {
		return 0, 0, err
	}
	e, err := v.lookup(path)
	if err != nil {
		return 0, 0, err
	}
	if e.attr&attrDirectory != 0 {
		return 0, 0, fmt.Errorf("locating %q: is a directory", path)
	}
	if e.size == 0 {
		return 0, 0, fmt.Errorf("locating %q: the file is empty and has no clusters", path)
	}
	runs := 0
	err = v.walkChain(e.cluster, func(uint32, int64) error {
		runs++
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("locating %q: %w", path, err)
	}
	if runs != 1 {
		return 0, 0, fmt.Errorf("locating %q: its clusters lie in %d separate runs, want 1", path, runs)
	}
	return v.base + v.dataOffset + int64(e.cluster-2)*v.clusterSize(), int64(e.size), nil
}
