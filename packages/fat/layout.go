package fat

import (
	"encoding/binary"
	"fmt"
)

// FAT16 entry values ("FAT Data Structure").
const (
	fatEndOfChain = 0xFFFF

	// mediaFixed is the media descriptor of a non-removable disk. The first
	// FAT entry repeats it.
	mediaFixed = 0xF8
)

// layout assigns every entry its short name and its clusters, and returns
// the FAT that describes the clusters. Each file and directory gets one run
// of consecutive clusters, in depth-first order of sorted names.
func (w *Writer) layout() ([]byte, error) {
	if err := w.checkSpace(); err != nil {
		return nil, err
	}

	fat := make([]byte, int(w.geo.fatSectors)*SectorSize)
	binary.LittleEndian.PutUint16(fat[0:], 0xFF00|mediaFixed)
	// Entry 1 is an end-of-chain mark whose top two bits also mean "cleanly
	// unmounted" and "no disk errors" ("FAT Data Structure").
	binary.LittleEndian.PutUint16(fat[2:], fatEndOfChain)

	a := allocator{fat: fat, next: 2}
	if err := w.layoutDir(w.root, &a); err != nil {
		return nil, err
	}
	return fat, nil
}

// layoutDir lays out the children of dir, recursing into subdirectories.
func (w *Writer) layoutDir(dir *node, a *allocator) error {
	if err := assignShortNames(dir); err != nil {
		return err
	}
	for _, child := range sortedChildren(dir) {
		if !child.isDir() {
			child.firstCluster = a.allocate(w.geo.clustersFor(child.size))
			continue
		}
		child.firstCluster = a.allocate(w.dirClusters(child))
		if err := w.layoutDir(child, a); err != nil {
			return err
		}
	}
	return nil
}

// allocator hands out runs of consecutive clusters and chains them in the
// FAT.
type allocator struct {
	fat  []byte
	next uint32
}

// allocate chains n clusters and returns the first, or 0 when n is 0, which
// is how a directory entry marks an empty file. checkSpace has made sure
// that the clusters exist.
func (a *allocator) allocate(n int64) uint32 {
	if n == 0 {
		return 0
	}
	first := a.next
	last := first + uint32(n) - 1
	for c := first; c < last; c++ {
		binary.LittleEndian.PutUint16(a.fat[2*c:], uint16(c+1))
	}
	binary.LittleEndian.PutUint16(a.fat[2*last:], fatEndOfChain)
	a.next = last + 1
	return first
}

// assignShortNames gives each child of dir a unique short name. A name that
// fits 8.3 exactly is its own short name. The others get the lowest free
// numeric tail, in sorted order, so the result does not depend on the order
// of AddFile calls.
func assignShortNames(dir *node) error {
	used := map[shortName]bool{}
	var tailed []*node
	for _, child := range sortedChildren(dir) {
		b := makeShortBasis(child.name)
		if b.lossy {
			tailed = append(tailed, child)
			continue
		}
		flags, ok := caseFlags(child.name, b)
		child.short = newShortName(b.primary, b.ext)
		child.caseFlags = flags
		child.longName = !ok
		used[child.short] = true
	}

	for _, child := range tailed {
		b := makeShortBasis(child.name)
		n := 1
		for ; n <= maxNumericTail; n++ {
			if s := withNumericTail(b, n); !used[s] {
				child.short = s
				break
			}
		}
		if n > maxNumericTail {
			return fmt.Errorf("no free short name for %q: all numeric tails up to ~%d are taken", child.name, maxNumericTail)
		}
		child.caseFlags = 0
		child.longName = true
		used[child.short] = true
	}
	return nil
}

// encodeDir returns the entries of directory dir, padded with zeros to
// capacity bytes. A zero first byte marks the end of a directory.
// parentCluster is the first cluster of the parent, 0 for the root.
func (w *Writer) encodeDir(dir *node, parentCluster uint32, capacity int64) []byte {
	b := make([]byte, capacity)
	i := 0
	put := func(e dirEntry) {
		e.marshal(b[i*dirEntrySize:], w.stamp)
		i++
	}

	if dir == w.root {
		if w.label != newShortName("", "") {
			put(dirEntry{name: w.label, attr: attrVolumeID})
		}
	} else {
		put(dirEntry{name: newShortName(".", ""), attr: attrDirectory, cluster: dir.firstCluster})
		put(dirEntry{name: newShortName("..", ""), attr: attrDirectory, cluster: parentCluster})
	}

	for _, child := range sortedChildren(dir) {
		if child.longName {
			i += marshalLongName(b[i*dirEntrySize:], child.name, child.short.checksum())
		}
		e := dirEntry{name: child.short, caseFlags: child.caseFlags, cluster: child.firstCluster}
		if child.isDir() {
			e.attr = attrDirectory
		} else {
			e.attr = attrArchive
			e.size = uint32(child.size)
		}
		put(e)
	}
	return b
}
