// Package setupcode makes, stores and reads the setup code: a random code
// in setup-code.txt on the card's boot partition that the first-boot wizard
// asks for, so that only someone who held the card can set the box up.
//
// Every image carries the file with a comment and no code, padded to a
// fixed size; `heimwolke-image flash` overwrites its bytes in place with a
// new code, so neither the FAT nor the directory changes.
package setupcode

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"

	"github.com/heimwolke/heimwolke/packages/fat"
)

const (
	// FileName is the code file's name in the boot partition's root.
	FileName = "setup-code.txt"

	// FileSize is the size of the file in every image. A code written in
	// place is padded to it.
	FileSize = 256

	// groups and groupLen shape a code: three groups of four characters.
	groups   = 3
	groupLen = 4
)

// alphabet leaves out characters that read alike: 0/O, 1/I/L, 5/S, 2/Z, 8/B, U/V.
const alphabet = "34679ACDEFGHJKMNPQRTWXY"

// placeholder is the file's text in a freshly built image.
const placeholder = "# Heimwolke setup code / Einrichtungscode\n" +
	"# No code yet: `heimwolke-image flash` writes one here.\n" +
	"# Noch kein Code: `heimwolke-image flash` schreibt ihn hierher.\n"

// Placeholder returns the content of the file in a new image: comment lines
// only, padded with spaces to FileSize.
func Placeholder() []byte {
	return pad(placeholder)
}

// New returns a new random code such as "K3QX-7M4D-WT9A". Its 12 characters
// from a 23-letter alphabet carry about 54 bits, far more than the login
// throttle lets anyone guess.
func New() (string, error) {
	var b strings.Builder
	for i := range groups * groupLen {
		if i > 0 && i%groupLen == 0 {
			b.WriteByte('-')
		}
		c, err := randomIndex(len(alphabet))
		if err != nil {
			return "", fmt.Errorf("making a setup code: %w", err)
		}
		b.WriteByte(alphabet[c])
	}
	return b.String(), nil
}

// randomIndex returns a uniform random number in [0, n) for n < 256,
// rejecting bytes past the largest multiple of n.
func randomIndex(n int) (int, error) {
	limit := 256 - 256%n
	var one [1]byte
	for {
		if _, err := rand.Read(one[:]); err != nil {
			return 0, err
		}
		if int(one[0]) < limit {
			return int(one[0]) % n, nil
		}
	}
}

// Content returns the file's text for code: a comment and the code,
// padded to FileSize.
func Content(code string) []byte {
	return pad("# Heimwolke setup code / Einrichtungscode\n" + code + "\n")
}

func pad(s string) []byte {
	if len(s) > FileSize {
		panic("setupcode: text longer than FileSize")
	}
	return []byte(s + strings.Repeat(" ", FileSize-len(s)))
}

// Parse returns the code in the file's content, normalized as Normalize
// does, or "" when the file contains none. Lines that start with '#' are
// comments.
func Parse(data []byte) string {
	var code strings.Builder
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.HasPrefix(strings.TrimLeftFunc(line, unicode.IsSpace), "#") {
			continue
		}
		code.WriteString(line)
	}
	return Normalize(code.String())
}

// Normalize drops a byte order mark, white space and hyphens and
// upper-cases letters, so that a code typed with its grouping, a line
// break or in lowercase still matches.
func Normalize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\uFEFF' || r == '-' || unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
	return strings.ToUpper(s)
}

// Disk is a card or image file that can be read and written at offsets,
// such as an *os.File.
type Disk interface {
	io.ReaderAt
	io.WriterAt
}

// Write puts code into the setup-code.txt of the FAT boot partition that
// starts at byte bootOffset of disk, in place, and reads it back. It fails
// when the image has no such file or a file of another size, as images
// built before setup codes existed do.
func Write(disk Disk, bootOffset int64, code string) error {
	start, err := placeholderStart(disk, bootOffset)
	if err != nil {
		return err
	}
	if _, err := disk.WriteAt(Content(code), start); err != nil {
		return fmt.Errorf("writing the setup code: %w", err)
	}
	got, err := Read(disk, bootOffset)
	if err != nil {
		return err
	}
	if got != Normalize(code) {
		return fmt.Errorf("setup code read back as %q, want %q", got, Normalize(code))
	}
	return nil
}

// CheckImage reports whether disk, a disk image, has the boot partition and
// the padded setup-code.txt that Write fills in, so that a caller can refuse
// a wrong file before it writes anything to a card.
func CheckImage(disk io.ReaderAt) error {
	boot, err := BootOffset(disk)
	if err != nil {
		return err
	}
	_, err = placeholderStart(disk, boot)
	return err
}

// placeholderStart returns the byte offset of setup-code.txt's content on
// disk, which must have the size of the padded placeholder.
func placeholderStart(disk io.ReaderAt, bootOffset int64) (int64, error) {
	start, size, err := fat.FileExtent(disk, bootOffset, FileName)
	if err != nil {
		return 0, fmt.Errorf("finding %s on the boot partition (rebuild the image with this heimwolke-image): %w", FileName, err)
	}
	if size != FileSize {
		return 0, fmt.Errorf("%s on the boot partition has %d bytes, want %d: rebuild the image with this heimwolke-image", FileName, size, FileSize)
	}
	return start, nil
}

// Read returns the normalized code from the setup-code.txt of the FAT boot
// partition at bootOffset of disk, or "" when the file contains no code.
func Read(disk io.ReaderAt, bootOffset int64) (string, error) {
	data, err := fat.ReadFile(disk, bootOffset, FileName)
	if err != nil {
		return "", fmt.Errorf("reading %s from the boot partition: %w", FileName, err)
	}
	return Parse(data), nil
}

// BootOffset returns the byte offset of the boot partition, the first
// entry of the MBR partition table in sector 0 of disk.
func BootOffset(disk io.ReaderAt) (int64, error) {
	sector := make([]byte, 512)
	if _, err := disk.ReadAt(sector, 0); err != nil {
		return 0, fmt.Errorf("reading the partition table: %w", err)
	}
	if sector[510] != 0x55 || sector[511] != 0xAA {
		return 0, fmt.Errorf("no MBR partition table in sector 0 (signature %#02x %#02x, want 0x55 0xaa): is this a Heimwolke image?", sector[510], sector[511])
	}
	// The first entry starts at byte 446; its start LBA at byte 8 of it.
	lba := binary.LittleEndian.Uint32(sector[446+8:])
	if lba == 0 {
		return 0, errors.New("the first partition of the disk is empty: is this a Heimwolke image?")
	}
	return int64(lba) * 512, nil
}
