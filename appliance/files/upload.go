package files

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/webdav"
)

// errQuotaExceeded fails a write that would take a folder over its quota.
var errQuotaExceeded = errors.New("quota exceeded: delete files or ask the owner for a larger quota")

// errFreeReserve fails a write that would leave less than the free-space
// reserve (Options.FreeReserveBytes) on the file system.
var errFreeReserve = errors.New("insufficient storage: the upload would leave less free space on the disk than the box keeps for mail and its databases, so delete files first")

// upload writes a new file's content to a temporary file in the target's
// folder and renames it over the target in Close, so that readers see the
// old content or the whole new one, and a cut-off upload leaves nothing.
type upload struct {
	fsys  *rootFS
	rel   string
	tmp   string
	file  *os.File
	size  int64
	old   int64 // the size of the file that the upload replaces
	err   error // the first failed write; Close then discards the file
	close bool
}

func (fsys *rootFS) newUpload(rel string) (*upload, error) {
	if rel == "." || reserved(rel) {
		return nil, &os.PathError{Op: "open", Path: rel, Err: errReservedName}
	}
	if fi, err := fsys.root.Stat(rel); err == nil && fi.IsDir() {
		fsys.req.override(405, "a folder exists at this path")
		return nil, &os.PathError{Op: "open", Path: rel, Err: syscall.EISDIR}
	}

	var random [12]byte
	rand.Read(random[:])
	tmp := path.Join(path.Dir(rel), tempPrefix+hex.EncodeToString(random[:]))
	file, err := fsys.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fsys.noteNameTooLong(err)
	}
	return &upload{fsys: fsys, rel: rel, tmp: tmp, file: file, old: fsys.regularSize(rel)}, nil
}

// Write reserves the bytes against the quota, and checks that they leave
// the free-space reserve on the disk, before it writes them.
func (u *upload) Write(p []byte) (int, error) {
	if u.err != nil {
		return 0, u.err
	}
	if err := u.fsys.checkFreeSpace(int64(len(p))); err != nil {
		u.fail(err)
		return 0, err
	}
	if err := u.fsys.reserve(int64(len(p)), u.old); err != nil {
		u.fail(err)
		return 0, err
	}
	n, err := u.file.Write(p)
	u.size += int64(n)
	u.fsys.usage.release(int64(len(p) - n))
	if err != nil {
		u.fail(err)
	}
	return n, err
}

// ReadFrom copies in 1 MiB steps, because io.Copy's 32 KiB steps cost a
// quota check each.
func (u *upload) ReadFrom(r io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	var total int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			written, werr := u.Write(buf[:n])
			total += int64(written)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (u *upload) fail(err error) {
	u.err = err
	switch {
	case errors.Is(err, errFreeReserve):
		u.fsys.req.override(507, errFreeReserve.Error())
	case errors.Is(err, errQuotaExceeded) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		u.fsys.req.override(507, "insufficient storage: the quota or the disk is full")
	default:
		if errors.Is(err, errFreeSpaceUnknown) {
			u.fsys.req.internalErr = true
		}
	}
}

// Close makes the upload the file's content: fsync, rename over the
// target, fsync of the folder. It discards the upload when a write failed
// or the request body ended early.
func (u *upload) Close() error {
	if u.close {
		return nil
	}
	u.close = true
	if u.err != nil || u.fsys.req.bodyFailed {
		u.discard()
		if u.err != nil {
			return u.err
		}
		return errors.New("request body ended early; the upload was discarded")
	}
	if err := u.commit(); err != nil {
		u.discard()
		return u.fsys.noteNameTooLong(err)
	}
	return nil
}

func (u *upload) commit() error {
	if err := u.file.Sync(); err != nil {
		return fmt.Errorf("syncing upload: %w", err)
	}
	if err := u.file.Close(); err != nil {
		return fmt.Errorf("closing upload: %w", err)
	}
	old, err := u.fsys.root.Lstat(u.rel)
	if err == nil && old.Mode().IsRegular() {
		defer u.fsys.usage.release(old.Size())
	}
	if err := u.fsys.root.Rename(u.tmp, u.rel); err != nil {
		return fmt.Errorf("renaming upload: %w", err)
	}
	return syncDir(u.fsys.root, path.Dir(u.rel))
}

func (u *upload) discard() {
	u.file.Close()
	u.fsys.root.Remove(u.tmp)
	u.fsys.usage.release(u.size)
}

// syncDir makes a rename in the folder survive a power cut.
func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return fmt.Errorf("opening folder to sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing folder: %w", err)
	}
	return nil
}

func (u *upload) Stat() (fs.FileInfo, error) {
	fi, err := u.file.Stat()
	if err != nil {
		return nil, err
	}
	return fileInfo{fi}, nil
}

func (u *upload) Read(p []byte) (int, error) { return 0, errWriteOnly }

func (u *upload) Seek(offset int64, whence int) (int64, error) { return 0, errWriteOnly }

func (u *upload) Readdir(count int) ([]fs.FileInfo, error) { return nil, errWriteOnly }

var errWriteOnly = errors.New("upload is write-only")

// DeadProps and Patch act on the target, so that COPY carries a file's
// properties over.
func (u *upload) DeadProps() (map[xml.Name]webdav.Property, error) { return u.fsys.props.get(u.rel) }

func (u *upload) Patch(patches []webdav.Proppatch) ([]webdav.Propstat, error) {
	return u.fsys.props.patch(u.rel, patches)
}

// removeStaleUploads deletes the temporary files of uploads that started
// before now minus staleUploadAge below dirs, which a crash or power cut
// cut off. It logs what it removed.
func removeStaleUploads(log *slog.Logger, dirs []string, now time.Time) {
	removed := 0
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasPrefix(d.Name(), tempPrefix) {
				return nil
			}
			info, err := d.Info()
			if err != nil || now.Sub(info.ModTime()) < staleUploadAge {
				return nil
			}
			if err := os.Remove(p); err != nil {
				log.Warn("removing stale upload failed", "path", p, "err", err)
				return nil
			}
			removed++
			return nil
		})
	}
	if removed > 0 {
		log.Info("removed stale uploads", "files", removed)
	}
}
