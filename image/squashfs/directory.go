package squashfs

import (
	"fmt"
	"math"
)

// dirEntry is one entry of a directory listing.
type dirEntry struct {
	name      string
	inode     metadataRef
	number    uint32
	inodeType uint16
}

// dirIndexEntry lets readers skip to the metadata block that contains a
// name in a long listing. Each block after the listing's first one gets an
// entry for the first directory header that starts in it.
type dirIndexEntry struct {
	listingOffset uint32 // offset of the header from the listing start
	block         uint32 // position of its metadata block in the table
	name          string // first name under that header
}

// writeListing writes the entries, sorted by name, as runs of a directory
// header and its entries, and returns the listing size and its index.
//
// A header stores the metadata block of its entries' inodes and a base
// inode number. Each entry stores its inode's offset in that block and a
// signed 16-bit difference to the base. So a new header starts whenever
// the inode block changes, the number difference does not fit, or the
// header already has maxDirHeaderEntries entries. A new header also starts
// when an entry would begin in a later metadata block of the directory
// table than its header, so that every block of a long listing gets an
// index entry and a lookup decompresses at most one block to find a name.
func writeListing(dirs *metadataWriter, entries []dirEntry) (size uint32, index []dirIndexEntry, err error) {
	start := dirs.streamOffset()
	indexedBlock := start / metadataBlockSize
	for first := 0; first < len(entries); {
		offset := dirs.streamOffset()
		end := headerRunEnd(entries, first, offset)

		if block := offset / metadataBlockSize; block != indexedBlock {
			index = append(index, dirIndexEntry{
				listingOffset: uint32(offset - start),
				block:         dirs.position().block,
				name:          entries[first].name,
			})
			indexedBlock = block
		}

		if err := dirs.write(encodeHeaderRun(entries[first:end])); err != nil {
			return 0, nil, fmt.Errorf("writing directory table: %w", err)
		}
		first = end
	}

	listingSize := dirs.streamOffset() - start
	if listingSize > math.MaxUint32-dirSizeOffset {
		return 0, nil, fmt.Errorf("directory listing of %d bytes exceeds the format's 4 GiB limit: split the directory", listingSize)
	}
	return uint32(listingSize), index, nil
}

// headerRunEnd returns the end of the run of entries that can share one
// directory header with entries[first], for a header written at the
// uncompressed offset headerOffset of the directory table.
func headerRunEnd(entries []dirEntry, first int, headerOffset int64) int {
	base := entries[first]
	headerBlock := headerOffset / metadataBlockSize
	entryOffset := headerOffset + dirHeaderSize + dirEntryFixedSize + int64(len(base.name))
	end := first + 1
	for end < len(entries) && end-first < maxDirHeaderEntries {
		e := entries[end]
		diff := int64(e.number) - int64(base.number)
		if e.inode.block != base.inode.block || diff < math.MinInt16 || diff > math.MaxInt16 {
			break
		}
		if entryOffset/metadataBlockSize != headerBlock {
			break
		}
		entryOffset += dirEntryFixedSize + int64(len(e.name))
		end++
	}
	return end
}

func encodeHeaderRun(run []dirEntry) []byte {
	base := run[0]
	buf := make([]byte, 0, dirHeaderSize+len(run)*(dirEntryFixedSize+16))
	buf = le.AppendUint32(buf, uint32(len(run)-1))
	buf = le.AppendUint32(buf, base.inode.block)
	buf = le.AppendUint32(buf, base.number)
	for _, e := range run {
		buf = le.AppendUint16(buf, e.inode.offset)
		buf = le.AppendUint16(buf, uint16(int16(int64(e.number)-int64(base.number))))
		buf = le.AppendUint16(buf, e.inodeType)
		buf = le.AppendUint16(buf, uint16(len(e.name)-1))
		buf = append(buf, e.name...)
	}
	return buf
}
