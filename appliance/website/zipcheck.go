package website

import (
	"archive/zip"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"unicode/utf8"
)

// Limits of a zip archive that PublishZip accepts.
const (
	// MaxUploadBytes is the largest zip archive, in bytes.
	MaxUploadBytes = 500 << 20

	// MaxFiles is the largest number of files in an archive, and
	// MaxFolders that of folders, counting those that only appear in the
	// files' paths.
	MaxFiles   = 10_000
	MaxFolders = 10_000

	// MaxTotalBytes is the largest sum of the files' uncompressed sizes.
	MaxTotalBytes = 500 << 20

	// MaxCompressionRatio is the largest ratio of uncompressed to
	// compressed size: of the archive as a whole, and of every file larger
	// than ratioMinBytes. A zip bomb expands far beyond it, while HTML, CSS
	// and JavaScript compress about 3:1 to 10:1.
	MaxCompressionRatio = 100

	// MaxNameBytes is the longest path in an archive, in bytes, and
	// maxSegmentBytes the longest file or folder name (Linux's NAME_MAX).
	MaxNameBytes    = 1024
	maxSegmentBytes = 255

	// ratioMinBytes exempts small files from the per-file ratio, because a
	// few kilobytes of spaces compress beyond 100:1 and are harmless.
	ratioMinBytes = 1 << 20
)

// Reason names what is wrong with a rejected archive. Its value is also
// the suffix of the message key "website.zip.<reason>" in the catalog.
type Reason string

// Reasons for rejecting an archive.
const (
	ReasonNotZip            Reason = "not_zip"
	ReasonEmpty             Reason = "empty"
	ReasonAbsolutePath      Reason = "absolute_path"
	ReasonParentFolder      Reason = "parent_folder"
	ReasonInvalidName       Reason = "invalid_name"
	ReasonSymlink           Reason = "symlink"
	ReasonSpecialFile       Reason = "special_file"
	ReasonEncrypted         Reason = "encrypted"
	ReasonUnsupportedMethod Reason = "unsupported_method"
	ReasonDuplicate         Reason = "duplicate"
	ReasonTooManyFiles      Reason = "too_many_files"
	ReasonTooManyFolders    Reason = "too_many_folders"
	ReasonTooLarge          Reason = "too_large"
	ReasonCompressionRatio  Reason = "compression_ratio"
	ReasonCorrupt           Reason = "corrupt"
)

var reasonText = map[Reason]string{
	ReasonNotZip:            "not a zip archive",
	ReasonEmpty:             "contains no files",
	ReasonAbsolutePath:      "absolute path",
	ReasonParentFolder:      `path contains ".."`,
	ReasonInvalidName:       "name is not valid UTF-8, contains a control character or is too long",
	ReasonSymlink:           "symbolic link",
	ReasonSpecialFile:       "neither a file nor a folder",
	ReasonEncrypted:         "encrypted",
	ReasonUnsupportedMethod: "compression method other than Store or Deflate",
	ReasonDuplicate:         "path appears twice, or as both file and folder",
	ReasonTooManyFiles:      fmt.Sprintf("more than %d files", MaxFiles),
	ReasonTooManyFolders:    fmt.Sprintf("more than %d folders", MaxFolders),
	ReasonTooLarge:          fmt.Sprintf("more than %d MiB uncompressed", MaxTotalBytes>>20),
	ReasonCompressionRatio:  fmt.Sprintf("compressed more than %d:1, as zip bombs are", MaxCompressionRatio),
	ReasonCorrupt:           "data is damaged (checksum or size mismatch)",
}

// ZipError is a rejected archive. PublishZip returns it before it changes
// the published site, or after it has removed the half-unpacked copy.
type ZipError struct {
	Reason Reason
	// Name is the entry's name as the archive spells it, empty when the
	// archive as a whole is rejected.
	Name string
	// Err is the underlying error of ReasonNotZip and ReasonCorrupt.
	Err error
}

func (e *ZipError) Error() string {
	msg := "website: zip archive rejected: " + reasonText[e.Reason]
	if e.Name != "" {
		msg = fmt.Sprintf("website: zip entry %q rejected: %s", e.Name, reasonText[e.Reason])
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *ZipError) Unwrap() error { return e.Err }

// zipEntry is a file or folder of the archive that will be unpacked.
type zipEntry struct {
	file *zip.File
	// name is the cleaned, slash-separated path below the site's folder.
	name string
	dir  bool
}

// unpackPlan is the result of unpacking an archive: the files, and every
// folder that an entry names or that contains a file, by their paths below
// the site's folder.
type unpackPlan struct {
	files      []zipEntry
	folders    []string
	totalBytes int64
}

// planUnpack checks every entry of zr, an archive of size bytes, against
// the rules and limits, and returns what to unpack. It reads the central
// directory only; the sizes it checks are the declared ones, which
// archive/zip enforces while unpacking.
func planUnpack(zr *zip.Reader, size int64) (*unpackPlan, error) {
	entries, err := checkEntries(zr)
	if err != nil {
		return nil, err
	}
	entries = stripTopFolder(entries)
	return buildPlan(entries, size)
}

// checkEntries validates each entry on its own: name, type, encryption,
// compression method and per-file ratio. It leaves out macOS metadata.
func checkEntries(zr *zip.Reader) ([]zipEntry, error) {
	var entries []zipEntry
	for _, f := range zr.File {
		if isMacMetadata(f.Name) {
			continue
		}
		name, err := entryName(f.Name)
		if err != nil {
			return nil, err
		}
		if err := checkEntryType(f); err != nil {
			return nil, err
		}
		isDir := f.Mode().IsDir() || strings.HasSuffix(f.Name, "/") || strings.HasSuffix(f.Name, `\`)
		if name == "." {
			if !isDir {
				return nil, &ZipError{Reason: ReasonInvalidName, Name: f.Name}
			}
			continue // "./": the archive's root
		}
		if !isDir && f.UncompressedSize64 > ratioMinBytes &&
			f.UncompressedSize64 > MaxCompressionRatio*f.CompressedSize64 {
			return nil, &ZipError{Reason: ReasonCompressionRatio, Name: f.Name}
		}
		entries = append(entries, zipEntry{file: f, name: name, dir: isDir})
	}
	return entries, nil
}

// entryName validates the name of a zip entry and returns it cleaned, "."
// for the root. Backslashes count as separators, as some Windows tools
// write them (APPNOTE 4.4.17 requires forward slashes).
func entryName(raw string) (string, error) {
	reject := func(reason Reason) (string, error) { return "", &ZipError{Reason: reason, Name: raw} }
	if !utf8.ValidString(raw) || len(raw) > MaxNameBytes {
		return reject(ReasonInvalidName)
	}
	for _, c := range raw {
		if c < 0x20 || c == 0x7f {
			return reject(ReasonInvalidName)
		}
	}

	name := strings.ReplaceAll(raw, `\`, "/")
	if strings.HasPrefix(name, "/") || hasDriveLetter(name) {
		return reject(ReasonAbsolutePath)
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." {
			return reject(ReasonParentFolder)
		}
		if len(seg) > maxSegmentBytes {
			return reject(ReasonInvalidName)
		}
	}
	return path.Clean(name), nil
}

// hasDriveLetter reports whether name starts like "C:", a Windows path.
func hasDriveLetter(name string) bool {
	if len(name) < 2 || name[1] != ':' {
		return false
	}
	c := name[0] | 0x20 // lower case
	return 'a' <= c && c <= 'z'
}

// isMacMetadata reports whether an entry is what macOS's Archive Utility
// adds: the __MACOSX folder of resource forks, "._" AppleDouble files and
// .DS_Store. They are skipped, so that a zipped folder still counts as one
// top folder.
func isMacMetadata(raw string) bool {
	name := strings.ReplaceAll(raw, `\`, "/")
	if name == "__MACOSX" || strings.HasPrefix(name, "__MACOSX/") {
		return true
	}
	base := path.Base(name)
	return base == ".DS_Store" || strings.HasPrefix(base, "._")
}

// checkEntryType rejects symbolic links, devices, FIFOs and sockets,
// encrypted entries and compression methods archive/zip cannot read.
func checkEntryType(f *zip.File) error {
	mode := f.Mode()
	switch {
	case mode&fs.ModeSymlink != 0:
		return &ZipError{Reason: ReasonSymlink, Name: f.Name}
	case !mode.IsRegular() && !mode.IsDir():
		return &ZipError{Reason: ReasonSpecialFile, Name: f.Name}
	case f.Flags&0x1 != 0: // APPNOTE 4.4.4, general purpose bit 0
		return &ZipError{Reason: ReasonEncrypted, Name: f.Name}
	case f.Method != zip.Store && f.Method != zip.Deflate:
		return &ZipError{Reason: ReasonUnsupportedMethod, Name: f.Name}
	}
	return nil
}

// stripTopFolder removes the top folder from every name when all entries
// sit in one folder, as they do when someone zips the folder of their
// site rather than its contents.
func stripTopFolder(entries []zipEntry) []zipEntry {
	if len(entries) == 0 {
		return entries
	}
	top, _, _ := strings.Cut(entries[0].name, "/")
	for _, e := range entries {
		first, _, nested := strings.Cut(e.name, "/")
		if first != top || (!nested && !e.dir) {
			return entries
		}
	}
	var inner []zipEntry
	for _, e := range entries {
		if e.name == top {
			continue
		}
		e.name = strings.TrimPrefix(e.name, top+"/")
		inner = append(inner, e)
	}
	return inner
}

// buildPlan checks the archive as a whole: duplicates, the file and folder
// counts, the total size and the overall compression ratio.
func buildPlan(entries []zipEntry, size int64) (*unpackPlan, error) {
	plan := &unpackPlan{}
	files := map[string]bool{}
	folders := map[string]bool{}
	addFolder := func(name string) {
		if !folders[name] {
			folders[name] = true
			plan.folders = append(plan.folders, name)
		}
	}

	var total uint64
	for _, e := range entries {
		if files[e.name] || (!e.dir && folders[e.name]) {
			return nil, &ZipError{Reason: ReasonDuplicate, Name: e.file.Name}
		}
		for dir := path.Dir(e.name); dir != "."; dir = path.Dir(dir) {
			if files[dir] {
				return nil, &ZipError{Reason: ReasonDuplicate, Name: e.file.Name}
			}
			addFolder(dir)
		}
		if e.dir {
			addFolder(e.name)
			continue
		}
		files[e.name] = true
		plan.files = append(plan.files, e)
		if len(plan.files) > MaxFiles {
			return nil, &ZipError{Reason: ReasonTooManyFiles}
		}
		total += e.file.UncompressedSize64
		if total > MaxTotalBytes {
			return nil, &ZipError{Reason: ReasonTooLarge}
		}
	}

	if len(plan.folders) > MaxFolders {
		return nil, &ZipError{Reason: ReasonTooManyFolders}
	}
	if len(plan.files) == 0 {
		return nil, &ZipError{Reason: ReasonEmpty}
	}
	if total > MaxCompressionRatio*uint64(max(size, 1)) {
		return nil, &ZipError{Reason: ReasonCompressionRatio}
	}
	plan.totalBytes = int64(total)
	return plan, nil
}

// corruptData reports whether err, from reading an entry, means the
// archive's data is damaged rather than that reading the upload failed.
func corruptData(err error) bool {
	var flateErr flate.CorruptInputError
	return errors.Is(err, zip.ErrChecksum) || errors.Is(err, zip.ErrFormat) ||
		errors.Is(err, zip.ErrAlgorithm) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &flateErr)
}
