package fat

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Attribute bits of a directory entry ("FAT Directory Structure").
const (
	attrVolumeID  = 0x08
	attrDirectory = 0x10
	attrArchive   = 0x20

	// attrLongName marks a long-name entry: read-only, hidden, system and
	// volume ID together, which old readers skip.
	attrLongName = 0x0F
)

// lastLongEntry is set in the sequence byte of the long-name entry that
// contains the end of the name. That entry comes first on disk.
const lastLongEntry = 0x40

// timestamp is a time in the encodings of a directory entry.
type timestamp struct {
	date  uint16 // bits 15-9 year since 1980, 8-5 month, 4-0 day
	time  uint16 // bits 15-11 hour, 10-5 minute, 4-0 seconds / 2
	tenth byte   // 10 ms units on top of time's 2-second steps, 0 to 199
}

// newTimestamp encodes t. The zero time encodes as 1980-01-01 00:00:00.
func newTimestamp(t time.Time) (timestamp, error) {
	if t.IsZero() {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if t.Year() < 1980 || t.Year() > 2107 {
		return timestamp{}, fmt.Errorf("modification time %s is outside FAT's range of 1980 to 2107", t.Format(time.RFC3339))
	}
	return timestamp{
		date:  uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day()),
		time:  uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2),
		tenth: byte(t.Second()%2*100 + t.Nanosecond()/10_000_000),
	}, nil
}

// dirEntry is the short (8.3) directory entry of one file or directory.
type dirEntry struct {
	name      shortName
	attr      byte
	caseFlags byte
	cluster   uint32
	size      uint32
}

// marshal encodes e into b, which has dirEntrySize bytes, with stamp as its
// creation, modification and access time.
func (e dirEntry) marshal(b []byte, stamp timestamp) {
	copy(b[0:11], e.name[:])
	b[11] = e.attr
	b[12] = e.caseFlags
	b[13] = stamp.tenth
	binary.LittleEndian.PutUint16(b[14:], stamp.time) // creation time
	binary.LittleEndian.PutUint16(b[16:], stamp.date) // creation date
	binary.LittleEndian.PutUint16(b[18:], stamp.date) // last access date
	binary.LittleEndian.PutUint16(b[20:], uint16(e.cluster>>16))
	binary.LittleEndian.PutUint16(b[22:], stamp.time) // modification time
	binary.LittleEndian.PutUint16(b[24:], stamp.date) // modification date
	binary.LittleEndian.PutUint16(b[26:], uint16(e.cluster))
	binary.LittleEndian.PutUint32(b[28:], e.size)
}

// marshalLongName encodes the long-name entries of name into b and returns
// their number. Each entry carries 13 UCS-2 characters and sum, the
// checksum of the short name that follows the entries. On disk, the entry
// with the end of the name comes first (overview v1.03, long directory
// entries).
func marshalLongName(b []byte, name string, sum byte) int {
	units := encodeLongName(name)
	count := (len(units) + lfnCharsPerEntry - 1) / lfnCharsPerEntry

	// A name that does not fill its last entry ends with 0x0000, and the
	// rest of that entry is 0xFFFF.
	padded := make([]uint16, count*lfnCharsPerEntry)
	copy(padded, units)
	for i := len(units); i < len(padded); i++ {
		padded[i] = 0xFFFF
		if i == len(units) {
			padded[i] = 0
		}
	}

	for i := range count {
		seq := count - i // count, count-1, ..., 1
		e := b[i*dirEntrySize : (i+1)*dirEntrySize]
		e[0] = byte(seq)
		if seq == count {
			e[0] |= lastLongEntry
		}
		e[11] = attrLongName
		e[12] = 0 // type: name component
		e[13] = sum
		chars := padded[(seq-1)*lfnCharsPerEntry:]
		putUnits(e[1:11], chars[0:5])
		putUnits(e[14:26], chars[5:11])
		binary.LittleEndian.PutUint16(e[26:], 0) // first cluster: always 0
		putUnits(e[28:32], chars[11:13])
	}
	return count
}

func putUnits(b []byte, units []uint16) {
	for i, u := range units {
		binary.LittleEndian.PutUint16(b[2*i:], u)
	}
}
