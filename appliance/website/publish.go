package website

import (
	"archive/zip"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// PublishZip replaces the published site with the contents of the zip
// archive r of size bytes. When all entries sit in one top folder, the
// site is that folder's contents.
//
// It checks every entry first and returns a *ZipError for an archive that
// breaks a rule or limit (see the Max constants). It then unpacks into a
// new folder next to the site's folder, flushes it to disk, and swaps it
// in with a rename, so visitors see either the old site or the new one.
// After an error, and after a crash at any point, the old site stays; New
// removes what a crash left behind. One publish runs at a time.
func (s *Site) PublishZip(r io.ReaderAt, size int64) error {
	start := time.Now()
	zr, err := zip.NewReader(r, size)
	switch {
	case err == nil, errors.Is(err, zip.ErrInsecurePath):
		// ErrInsecurePath comes with a usable reader when GODEBUG
		// zipinsecurepath=0; planUnpack names the entry.
	case errors.Is(err, zip.ErrFormat), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &ZipError{Reason: ReasonNotZip, Err: err}
	default:
		return fmt.Errorf("website: reading zip archive: %w", err)
	}
	plan, err := planUnpack(zr, size)
	if err != nil {
		return err
	}

	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	staging, err := s.makeStagingFolder()
	if err != nil {
		return err
	}
	swapped := false
	defer func() {
		if !swapped {
			if err := os.RemoveAll(staging); err != nil {
				s.log.Error("removing unfinished website copy", "path", staging, "err", err)
			}
		}
	}()
	if err := unpack(plan, staging); err != nil {
		return err
	}

	old, err := s.swapIn(staging)
	if err != nil {
		return err
	}
	swapped = true
	if err := syncFolder(s.parent); err != nil {
		// The swap is done and visible; only its durability is in doubt.
		s.log.Error("flushing website folder swap", "path", s.parent, "err", err)
	}
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			s.log.Error("removing previous website", "path", old, "err", err)
		}
	}
	s.log.Info("website published", "path", s.dir, "files", len(plan.files), "bytes", plan.totalBytes, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// NewUploadFile creates an empty temporary file next to the site's folder,
// on the same file system, for an upload to be passed to PublishZip. The
// caller closes and removes it. Using this file system rather than /tmp
// matters on the box, where /tmp is in RAM.
func (s *Site) NewUploadFile() (*os.File, error) {
	if err := os.MkdirAll(s.parent, 0o755); err != nil {
		return nil, fmt.Errorf("website: creating folder %q: %w", s.parent, err)
	}
	f, err := os.CreateTemp(s.parent, s.leftoverPrefix("upload")+"*.zip")
	if err != nil {
		return nil, fmt.Errorf("website: creating upload file in %q: %w", s.parent, err)
	}
	return f, nil
}

// leftoverPrefix returns the name prefix of the temporary folders and
// files of kind "new", "old" or "upload" next to the site's folder. They
// start with a dot, so the file storage can hide them.
func (s *Site) leftoverPrefix(kind string) string {
	return "." + s.base + "." + kind + "-"
}

func (s *Site) makeStagingFolder() (string, error) {
	if err := os.MkdirAll(s.parent, 0o755); err != nil {
		return "", fmt.Errorf("website: creating folder %q: %w", s.parent, err)
	}
	staging, err := os.MkdirTemp(s.parent, s.leftoverPrefix("new"))
	if err != nil {
		return "", fmt.Errorf("website: creating staging folder in %q: %w", s.parent, err)
	}
	if err := os.Chmod(staging, 0o755); err != nil {
		os.Remove(staging)
		return "", fmt.Errorf("website: %w", err)
	}
	return staging, nil
}

// unpack writes the plan's folders and files below staging and flushes
// them to disk.
func unpack(plan *unpackPlan, staging string) error {
	flush, err := startFlush(staging)
	if err != nil {
		return err
	}
	defer flush.close()

	root, err := os.OpenRoot(staging)
	if err != nil {
		return fmt.Errorf("website: opening staging folder: %w", err)
	}
	defer root.Close()
	for _, dir := range plan.folders {
		if err := root.MkdirAll(filepath.FromSlash(dir), 0o755); err != nil {
			return fmt.Errorf("website: creating folder %q: %w", dir, err)
		}
	}
	var written int64
	for _, e := range plan.files {
		n, err := unpackFile(root, e)
		if err != nil {
			return err
		}
		written += n
		if written > MaxTotalBytes {
			return &ZipError{Reason: ReasonTooLarge}
		}
		flush.add(e.name)
	}
	for _, dir := range plan.folders {
		flush.add(dir)
	}
	flush.add(".")
	return flush.finish(root)
}

// unpackFile writes one file and returns its size. Reading more or less
// than the declared size, or data whose CRC-32 differs, is ReasonCorrupt.
func unpackFile(root *os.Root, e zipEntry) (int64, error) {
	rc, err := e.file.Open()
	if err != nil {
		return 0, entryError(e, err)
	}
	defer rc.Close()

	out, err := root.OpenFile(filepath.FromSlash(e.name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, fmt.Errorf("website: creating %q: %w", e.name, err)
	}
	declared := int64(e.file.UncompressedSize64)
	n, err := io.Copy(out, io.LimitReader(rc, declared+1))
	if err == nil && n != declared {
		err = fmt.Errorf("read %d bytes, want %d: %w", n, declared, zip.ErrFormat)
	}
	if err != nil {
		out.Close()
		return 0, entryError(e, err)
	}
	if err := out.Close(); err != nil {
		return 0, fmt.Errorf("website: writing %q: %w", e.name, err)
	}
	return n, nil
}

// entryError classifies an error from reading an entry: damaged data is
// the archive's fault, anything else (reading the upload, writing the
// disk) is not.
func entryError(e zipEntry, err error) error {
	if corruptData(err) {
		return &ZipError{Reason: ReasonCorrupt, Name: e.file.Name, Err: err}
	}
	return fmt.Errorf("website: unpacking %q: %w", e.file.Name, err)
}

// swapIn puts staging in the place of the site's folder and returns where
// the previous site is now, to be removed, or "" if there was none.
//
// It swaps both folders in one step with renameat2(RENAME_EXCHANGE) where
// the system has it. Elsewhere it renames the old folder away and then the
// new one in. A crash between the two renames leaves no site folder, so
// New renames the old one back.
func (s *Site) swapIn(staging string) (string, error) {
	if _, err := os.Lstat(s.dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(staging, s.dir); err != nil {
			return "", fmt.Errorf("website: moving new site into place: %w", err)
		}
		return "", nil
	}
	if err := s.exchange(staging, s.dir); err == nil {
		return staging, nil
	}

	old := filepath.Join(s.parent, s.leftoverPrefix("old")+randomSuffix())
	if err := os.Rename(s.dir, old); err != nil {
		return "", fmt.Errorf("website: moving previous site aside: %w", err)
	}
	if err := os.Rename(staging, s.dir); err != nil {
		if restoreErr := os.Rename(old, s.dir); restoreErr != nil {
			s.log.Error("restoring previous website", "from", old, "err", restoreErr)
		}
		return "", fmt.Errorf("website: moving new site into place: %w", err)
	}
	return old, nil
}

func randomSuffix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// recoverInterruptedPublish cleans up after a publish that a crash or
// power cut stopped: it removes staging folders and uploads, and, when
// the site's folder is missing, renames the previous site back.
func (s *Site) recoverInterruptedPublish() {
	entries, err := os.ReadDir(s.parent)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.log.Error("reading website parent folder", "path", s.parent, "err", err)
		}
		return
	}
	_, err = os.Lstat(s.dir)
	missing := errors.Is(err, fs.ErrNotExist)
	for _, e := range entries {
		name := e.Name()
		full := filepath.Join(s.parent, name)
		isOld := strings.HasPrefix(name, s.leftoverPrefix("old"))
		if isOld && missing {
			if err := os.Rename(full, s.dir); err != nil {
				s.log.Error("restoring previous website after interrupted publish", "from", full, "err", err)
				continue
			}
			missing = false
			s.log.Warn("previous website restored after interrupted publish", "path", s.dir)
			continue
		}
		if isOld || strings.HasPrefix(name, s.leftoverPrefix("new")) || strings.HasPrefix(name, s.leftoverPrefix("upload")) {
			if err := os.RemoveAll(full); err != nil {
				s.log.Error("removing leftover of interrupted publish", "path", full, "err", err)
				continue
			}
			s.log.Info("removed leftover of interrupted publish", "path", full)
		}
	}
}

// syncFolder flushes a folder's entries to disk, which makes a rename in
// it durable.
func syncFolder(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
