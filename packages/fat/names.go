package fat

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxLongNameUnits is the maximum length of a long file name in UCS-2 code
// units.
const maxLongNameUnits = 255

// lfnCharsPerEntry is the number of UCS-2 characters that one long-name
// directory entry carries (5 + 6 + 2).
const lfnCharsPerEntry = 13

// Flags in the NTRes byte of a short directory entry. Windows NT and Linux
// show the base name or the extension in lower case when these are set, so a
// name such as "config.txt" needs no long-name entries.
const (
	caseLowerBase = 0x08
	caseLowerExt  = 0x10
)

// validateName checks one path component against the rules for long file
// names that Windows and Linux enforce.
func validateName(name string) error {
	if name == "" {
		return fmt.Errorf("empty file name")
	}
	if name == "." || name == ".." {
		return fmt.Errorf("file name %q is reserved: paths must not contain . or .. components", name)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("file name %q is not valid UTF-8", name)
	}

	units := 0
	for _, r := range name {
		if r > 0xFFFF {
			return fmt.Errorf("file name %q contains %U outside the Basic Multilingual Plane: FAT long names here are UCS-2", name, r)
		}
		if r < 0x20 || strings.ContainsRune(`"*/:<>?\|`, r) {
			return fmt.Errorf("file name %q contains %q, which FAT forbids (control characters and any of \" * / : < > ? \\ |)", name, r)
		}
		units++
	}
	if units > maxLongNameUnits {
		return fmt.Errorf("file name %q has %d characters: FAT allows at most %d", name, units, maxLongNameUnits)
	}

	// Windows strips trailing spaces and periods when it opens a file, so a
	// name ending in one could never be opened there.
	if last := name[len(name)-1]; last == ' ' || last == '.' {
		return fmt.Errorf("file name %q ends with %q, which FAT readers strip: remove it", name, last)
	}
	return nil
}

// foldName returns the key under which FAT compares names: long and short
// names are case-insensitive.
func foldName(name string) string {
	return strings.ToUpper(name)
}

// isShortNameChar reports whether c may appear in a short (8.3) name as
// stored: upper-case letters, digits and the specials that "FAT Directory
// Structure" lists. Bytes above 127 are legal there too, but this package
// writes ASCII short names only.
func isShortNameChar(c rune) bool {
	switch {
	case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.ContainsRune("$%'-_@~`!(){}^#&", c)
}

// shortBasis is the result of the basis-name generation algorithm for one
// long name.
type shortBasis struct {
	primary string // up to 8 characters
	ext     string // up to 3 characters

	// lossy is set when the long name cannot be stored exactly in 8.3 form,
	// because a character was replaced or dropped or a part was truncated.
	// Such a name gets a numeric tail and long-name entries.
	lossy bool
}

// makeShortBasis derives the 8.3 basis name from a long name. It follows the
// basis-name generation algorithm of the overview v1.03, with ASCII as the
// OEM code page.
func makeShortBasis(name string) shortBasis {
	var b shortBasis
	upper := strings.ToUpper(name)

	// Spaces are dropped, and so are leading periods.
	stripped := strings.ReplaceAll(upper, " ", "")
	stripped = strings.TrimLeft(stripped, ".")
	if stripped != upper {
		b.lossy = true
	}

	base, ext := stripped, ""
	if i := strings.LastIndexByte(stripped, '.'); i >= 0 {
		base, ext = stripped[:i], stripped[i+1:]
	}
	if strings.Contains(base, ".") {
		base = strings.ReplaceAll(base, ".", "")
		b.lossy = true
	}

	var truncated bool
	b.primary, truncated = oemPart(base, 8, &b.lossy)
	b.lossy = b.lossy || truncated
	b.ext, truncated = oemPart(ext, 3, &b.lossy)
	b.lossy = b.lossy || truncated

	if b.primary == "" {
		b.primary = "_"
		b.lossy = true
	}
	return b
}

// oemPart converts s to short-name characters and keeps at most max of
// them. It replaces each character that a short name cannot contain with
// '_' and sets *lossy. It reports whether it cut characters off.
func oemPart(s string, max int, lossy *bool) (string, bool) {
	var out strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			return out.String(), true
		}
		if !isShortNameChar(r) {
			r = '_'
			*lossy = true
		}
		out.WriteRune(r)
		n++
	}
	return out.String(), false
}

// caseFlags returns the NTRes flags that make the short name of basis b
// display as name, and whether such flags exist. They exist when b is not
// lossy and the base name and the extension are each in one case.
func caseFlags(name string, b shortBasis) (byte, bool) {
	if b.lossy {
		return 0, false
	}
	base, ext := name, ""
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		base, ext = name[:i], name[i+1:]
	}

	var flags byte
	lowerBase, ok := partCase(base)
	if !ok {
		return 0, false
	}
	if lowerBase {
		flags |= caseLowerBase
	}
	lowerExt, ok := partCase(ext)
	if !ok {
		return 0, false
	}
	if lowerExt {
		flags |= caseLowerExt
	}
	return flags, true
}

// partCase reports whether s has lower-case letters, and whether it is in
// one case (it has not both lower-case and upper-case letters).
func partCase(s string) (lower, ok bool) {
	var upper bool
	for _, r := range s {
		lower = lower || unicode.IsLower(r)
		upper = upper || unicode.IsUpper(r)
	}
	return lower, !(lower && upper)
}

// shortName is an 8.3 name as stored in a directory entry: 8 bytes of base
// name and 3 bytes of extension, each padded with spaces.
type shortName [11]byte

func newShortName(primary, ext string) shortName {
	var s shortName
	copy(s[:], fmt.Sprintf("%-8s%-3s", primary, ext))
	return s
}

// String returns the name as FAT tools print it, such as "CONFIG.TXT".
func (s shortName) String() string {
	base := strings.TrimRight(string(s[:8]), " ")
	ext := strings.TrimRight(string(s[8:]), " ")
	if ext == "" {
		return base
	}
	return base + "." + ext
}

// checksum computes the short-name checksum that every long-name entry of
// the same file carries (overview v1.03, long directory entries).
func (s shortName) checksum() byte {
	var sum byte
	for _, c := range s {
		sum = (sum&1)<<7 + sum>>1 + c
	}
	return sum
}

// withNumericTail returns the short name of basis b with the numeric tail
// "~n". It shortens the primary part so that the result still fits in 8
// characters (numeric-tail generation algorithm, overview v1.03).
func withNumericTail(b shortBasis, n int) shortName {
	tail := "~" + strconv.Itoa(n)
	primary := b.primary
	if len(primary)+len(tail) > 8 {
		primary = primary[:8-len(tail)]
	}
	return newShortName(primary+tail, b.ext)
}

// maxNumericTail bounds the numeric-tail search. A directory has at most
// 65536 entries, so the search ends long before this.
const maxNumericTail = 999999

// encodeLongName returns the UCS-2 code units of name, as long-name entries
// store them.
func encodeLongName(name string) []uint16 {
	return utf16.Encode([]rune(name))
}

// longNameEntries returns the number of long-name entries that name needs.
func longNameEntries(name string) int {
	units := utf8.RuneCountInString(name)
	return (units + lfnCharsPerEntry - 1) / lfnCharsPerEntry
}
