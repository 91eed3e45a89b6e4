package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/heimwolke/heimwolke/appliance/webui"
	"github.com/heimwolke/heimwolke/packages/accounts"
)

// This file implements webui.FileStore, the file browser's access to the
// same folders that WebDAV serves, with the same confinement, quota and
// atomic uploads.

// folderByName returns the folder that the web UI calls name ("home",
// "shared" or "website") for user.
func (h *Handler) folderByName(user *accounts.User, name string) (folder, error) {
	var urlPath string
	switch name {
	case "home":
		urlPath = HomePrefix + user.Name
	case "shared":
		urlPath = strings.TrimSuffix(SharedPrefix, "/")
	case "website":
		urlPath = strings.TrimSuffix(WebsitePrefix, "/")
	default:
		return folder{}, webui.ErrFolderDenied
	}
	f, status := h.folderFor(user, urlPath)
	if status != 0 {
		return folder{}, webui.ErrFolderDenied
	}
	return f, nil
}

// folderByKey returns the folder of a stored key (home/LOGIN, shared or
// website), for share links.
func (h *Handler) folderByKey(key string) (folder, error) {
	switch {
	case key == "shared":
		return folder{prefix: strings.TrimSuffix(SharedPrefix, "/"), dir: filepath.Join(h.dataDir, "shared"), key: key, quota: h.quotaShared}, nil
	case key == "website" && h.websiteDir != "":
		return folder{prefix: strings.TrimSuffix(WebsitePrefix, "/"), dir: h.websiteDir, key: key, quota: h.quotaShared}, nil
	case strings.HasPrefix(key, "home/") && !strings.ContainsAny(key[5:], "/\\") && key[5:] != "" && key[5:] != "..":
		login := key[5:]
		return folder{prefix: HomePrefix + login, dir: filepath.Join(h.dataDir, "home", login), key: key, quota: h.quotaHome}, nil
	}
	return folder{}, webui.ErrShareNotFound
}

// openFolder opens f's root for one request, creating the folder if it is
// missing. The root is opened anew each time, because publishing the
// website swaps its folder for a new one. The caller calls close.
func (h *Handler) openFolder(f folder) (fsys *rootFS, close func(), err error) {
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("creating folder %s: %w", f.key, err)
	}
	root, err := os.OpenRoot(f.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("opening folder %s: %w", f.key, err)
	}
	st := h.state(f)
	fsys = &rootFS{
		root:        root,
		dir:         f.dir,
		key:         f.key,
		props:       h.props.forRequest(f.key),
		usage:       st.usage,
		quota:       f.quota,
		freeReserve: h.freeReserve,
		req:         &requestState{},
		locks:       st.locks,
		prefix:      f.prefix,
	}
	return fsys, func() { root.Close() }, nil
}

// webRel checks a slash-separated path from the web UI and returns it
// relative to the folder, in NFC.
func webRel(p string) (string, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return ".", nil
	}
	for _, segment := range strings.Split(p, "/") {
		if err := checkName(segment); err != nil {
			return "", err
		}
	}
	return norm.NFC.String(p), nil
}

// checkName accepts one file name: not empty, no dot segment, no slash,
// backslash or NUL, not a name reserved for uploads.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") || strings.HasPrefix(name, tempPrefix) {
		return fmt.Errorf("%w: %q", webui.ErrInvalidName, name)
	}
	if len(norm.NFC.String(name)) > maxNameBytes {
		return fmt.Errorf("%w: longer than %d bytes", webui.ErrInvalidName, maxNameBytes)
	}
	return nil
}

// maxNameBytes is the longest file name that ext4 stores.
const maxNameBytes = 255

// mapFSError turns file system errors into the web UI's sentinels.
func mapFSError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %w", webui.ErrFileNotFound, err)
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%w: %w", webui.ErrFileExists, err)
	case errors.Is(err, errQuotaExceeded), errors.Is(err, errFreeReserve), errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: %w", webui.ErrQuotaExceeded, err)
	case errors.Is(err, syscall.ENAMETOOLONG):
		return fmt.Errorf("%w: longer than %d bytes: %w", webui.ErrInvalidName, maxNameBytes, err)
	}
	return err
}

func (h *Handler) withFolder(user *accounts.User, folderName string, fn func(*rootFS) error) error {
	f, err := h.folderByName(user, folderName)
	if err != nil {
		return err
	}
	fsys, closeRoot, err := h.openFolder(f)
	if err != nil {
		return err
	}
	defer closeRoot()
	return mapFSError(fn(fsys))
}

func (h *Handler) ListFiles(ctx context.Context, user *accounts.User, folderName, dir string) ([]webui.FileEntry, error) {
	rel, err := webRel(dir)
	if err != nil {
		return nil, err
	}
	var entries []webui.FileEntry
	err = h.withFolder(user, folderName, func(fsys *rootFS) error {
		entries, err = listDir(fsys.root, rel)
		return err
	})
	return entries, err
}

// listDir lists rel below root, folders first, without uploads in
// progress.
func listDir(root *os.Root, rel string) ([]webui.FileEntry, error) {
	d, err := root.Open(rel)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	infos, err := d.Readdir(-1)
	if err != nil {
		return nil, err
	}
	entries := make([]webui.FileEntry, 0, len(infos))
	for _, fi := range infos {
		if strings.HasPrefix(fi.Name(), tempPrefix) {
			continue
		}
		entries = append(entries, webui.FileEntry{Name: fi.Name(), Dir: fi.IsDir(), Size: fi.Size(), Modified: fi.ModTime()})
	}
	slices.SortFunc(entries, func(a, b webui.FileEntry) int {
		if a.Dir != b.Dir {
			if a.Dir {
				return -1
			}
			return 1
		}
		return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
	return entries, nil
}

func (h *Handler) OpenFile(ctx context.Context, user *accounts.User, folderName, name string) (*os.File, error) {
	rel, err := webRel(name)
	if err != nil {
		return nil, err
	}
	var file *os.File
	err = h.withFolder(user, folderName, func(fsys *rootFS) error {
		file, err = fsys.root.Open(rel)
		return err
	})
	return file, err
}

func (h *Handler) UploadFile(ctx context.Context, user *accounts.User, folderName, name string, body io.Reader) error {
	rel, err := webRel(name)
	if err != nil || rel == "." {
		return fmt.Errorf("%w: %q", webui.ErrInvalidName, name)
	}
	return h.withFolder(user, folderName, func(fsys *rootFS) error {
		return fsys.store(rel, body)
	})
}

// store writes body to rel through an atomic upload, unless a WebDAV lock
// covers rel.
func (fsys *rootFS) store(rel string, body io.Reader) error {
	if len(fsys.locks.TokensFor(time.Now(), "/"+rel)) > 0 {
		return fmt.Errorf("%w: %s is locked by a WebDAV client", webui.ErrFileExists, rel)
	}
	up, err := fsys.newUpload(rel)
	if err != nil {
		return err
	}
	if _, err := io.Copy(up, body); err != nil {
		fsys.req.bodyFailed = true
		up.Close()
		return err
	}
	return up.Close()
}

func (h *Handler) MakeFolder(ctx context.Context, user *accounts.User, folderName, name string) error {
	rel, err := webRel(name)
	if err != nil || rel == "." {
		return fmt.Errorf("%w: %q", webui.ErrInvalidName, name)
	}
	return h.withFolder(user, folderName, func(fsys *rootFS) error {
		return fsys.root.Mkdir(rel, 0o700)
	})
}

// RenameFile gives from the new name to, in the same folder.
func (h *Handler) RenameFile(ctx context.Context, user *accounts.User, folderName, from, to string) error {
	fromRel, err := webRel(from)
	if err != nil || fromRel == "." {
		return fmt.Errorf("%w: %q", webui.ErrInvalidName, from)
	}
	if err := checkName(to); err != nil {
		return err
	}
	toRel := path.Join(path.Dir(fromRel), norm.NFC.String(to))
	return h.withFolder(user, folderName, func(fsys *rootFS) error {
		if _, err := fsys.root.Lstat(toRel); err == nil {
			return fs.ErrExist
		}
		return fsys.Rename(context.Background(), "/"+fromRel, "/"+toRel)
	})
}

func (h *Handler) DeleteFile(ctx context.Context, user *accounts.User, folderName, name string) error {
	rel, err := webRel(name)
	if err != nil || rel == "." {
		return fmt.Errorf("%w: %q", webui.ErrInvalidName, name)
	}
	return h.withFolder(user, folderName, func(fsys *rootFS) error {
		if _, err := fsys.root.Lstat(rel); err != nil {
			return err
		}
		return fsys.RemoveAll(context.Background(), "/"+rel)
	})
}
