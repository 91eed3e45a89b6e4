package files

import (
	"context"
	"encoding/xml"
	"errors"
	"io/fs"
	"mime"
	"os"
	"path"
	"strings"
	"sync"

	"golang.org/x/net/webdav"
	"golang.org/x/text/unicode/norm"

	"github.com/heimwolke/heimwolke/packages/davlock"
)

// tempPrefix starts the names of uploads in progress. Listings hide such
// names, and clients cannot create them.
const tempPrefix = ".heimwolke-upload-"

// errReservedName is returned for names that start with tempPrefix.
var errReservedName = errors.New("names starting with " + tempPrefix + " are reserved for uploads in progress")

// rootFS is a webdav.FileSystem on one folder, confined by os.Root: no
// path, "..", or symbolic link resolves to a file outside the folder.
// Names are stored in Unicode NFC, and names in NFD (as macOS sends them)
// find the same file. A rootFS serves one request.
type rootFS struct {
	root  *os.Root
	dir   string
	key   string
	props *requestProps
	usage *usage
	quota int64
	req   *requestState

	// freeReserve is the free space in bytes that uploads leave on the file
	// system, Options.FreeReserveBytes.
	freeReserve int64

	// wantQuota adds the RFC 4331 quota properties to the folders'
	// dead properties, and wantLocks the lockdiscovery property to all,
	// when the PROPFIND body names them.
	wantQuota bool
	wantLocks bool
	locks     *davlock.System
	prefix    string

	// statCache keeps what Readdir learned about files and folders, so
	// that PROPFIND Depth 1, which stats every entry three times, needs
	// no more system calls. It is nil outside PROPFIND, whose file system
	// does not change during the request.
	statCache map[string]fileInfo
}

// stat returns the FileInfo of rel, from the cache when it has one.
func (fsys *rootFS) stat(rel string) (fileInfo, error) {
	if fi, ok := fsys.statCache[rel]; ok {
		return fi, nil
	}
	fi, err := fsys.root.Stat(rel)
	if err != nil {
		return fileInfo{}, err
	}
	return fileInfo{fi}, nil
}

// relPath turns a webdav name ("/a/b") into a path relative to the root
// ("a/b", or "." for the root itself) in NFC.
func relPath(name string) string {
	p := path.Clean("/" + norm.NFC.String(name))
	if p == "/" {
		return "."
	}
	return p[1:]
}

func reserved(rel string) bool { return strings.HasPrefix(path.Base(rel), tempPrefix) }

func (fsys *rootFS) Mkdir(ctx context.Context, name string, perm os.FileMode) error {
	rel := relPath(name)
	if reserved(rel) {
		return &os.PathError{Op: "mkdir", Path: name, Err: errReservedName}
	}
	return fsys.noteNameTooLong(fsys.root.Mkdir(rel, 0o700))
}

// OpenFile opens name for reading, or starts an atomic upload when flag
// requests a new file for writing. The webdav package writes no other
// way: PUT, COPY and LOCK on a new name all pass O_CREATE|O_TRUNC.
func (fsys *rootFS) OpenFile(ctx context.Context, name string, flag int, perm os.FileMode) (webdav.File, error) {
	rel := relPath(name)
	if flag&(os.O_WRONLY|os.O_RDWR) != 0 && flag&os.O_CREATE != 0 {
		return fsys.newUpload(rel)
	}
	fi, err := fsys.stat(rel)
	if err != nil {
		return nil, err
	}
	return &davFile{fsys: fsys, rel: rel, info: fi}, nil
}

func (fsys *rootFS) RemoveAll(ctx context.Context, name string) error {
	rel := relPath(name)
	if rel == "." {
		return &os.PathError{Op: "removeall", Path: name, Err: os.ErrPermission}
	}
	err := fsys.root.RemoveAll(rel)
	fsys.usage.forget()
	if err != nil {
		return err
	}
	return fsys.props.deleteTree(rel)
}

func (fsys *rootFS) Rename(ctx context.Context, oldName, newName string) error {
	oldRel, newRel := relPath(oldName), relPath(newName)
	if oldRel == "." || newRel == "." {
		return &os.PathError{Op: "rename", Path: oldName, Err: os.ErrPermission}
	}
	if reserved(newRel) {
		return &os.PathError{Op: "rename", Path: newName, Err: errReservedName}
	}
	// Moving a folder into itself would detach it from the tree.
	if strings.HasPrefix(newRel, oldRel+"/") {
		return &os.PathError{Op: "rename", Path: newName, Err: os.ErrInvalid}
	}
	if err := fsys.root.Rename(oldRel, newRel); err != nil {
		return fsys.noteNameTooLong(err)
	}
	return fsys.props.moveTree(oldRel, newRel)
}

func (fsys *rootFS) Stat(ctx context.Context, name string) (os.FileInfo, error) {
	fi, err := fsys.stat(relPath(name))
	if err != nil {
		return nil, fsys.noteNameTooLong(err)
	}
	return fi, nil
}

// fileInfo adds a content type by file name extension, so that PROPFIND
// does not open every file to sniff its first bytes.
type fileInfo struct{ os.FileInfo }

func (fi fileInfo) ContentType(ctx context.Context) (string, error) {
	if t := mime.TypeByExtension(path.Ext(fi.Name())); t != "" {
		return t, nil
	}
	return "application/octet-stream", nil
}

// davFile is a file or folder opened for reading. It opens the file on
// disk only when read, because PROPFIND opens every entry for its
// properties alone.
type davFile struct {
	fsys *rootFS
	rel  string
	info fileInfo

	once    sync.Once
	file    *os.File
	openErr error
}

func (f *davFile) open() (*os.File, error) {
	f.once.Do(func() { f.file, f.openErr = f.fsys.root.Open(f.rel) })
	return f.file, f.openErr
}

func (f *davFile) Read(p []byte) (int, error) {
	file, err := f.open()
	if err != nil {
		return 0, err
	}
	return file.Read(p)
}

func (f *davFile) Seek(offset int64, whence int) (int64, error) {
	file, err := f.open()
	if err != nil {
		return 0, err
	}
	return file.Seek(offset, whence)
}

// Readdir lists the folder without uploads in progress.
func (f *davFile) Readdir(count int) ([]fs.FileInfo, error) {
	file, err := f.open()
	if err != nil {
		return nil, err
	}
	infos, err := file.Readdir(count)
	kept := infos[:0]
	for _, fi := range infos {
		if strings.HasPrefix(fi.Name(), tempPrefix) {
			continue
		}
		kept = append(kept, fileInfo{fi})
		// Readdir does not follow symbolic links, so only plain files
		// and folders go into the cache.
		if f.fsys.statCache != nil && (fi.Mode().IsRegular() || fi.IsDir()) {
			f.fsys.statCache[path.Join(f.rel, fi.Name())] = fileInfo{fi}
		}
	}
	return kept, err
}

func (f *davFile) Stat() (fs.FileInfo, error) { return f.info, nil }

func (f *davFile) Write(p []byte) (int, error) {
	return 0, &os.PathError{Op: "write", Path: f.rel, Err: os.ErrPermission}
}

func (f *davFile) Close() error {
	if f.file != nil {
		return f.file.Close()
	}
	return nil
}

// DeadProps returns the stored properties, and for folders the quota
// properties of RFC 4331 when the request names them.
func (f *davFile) DeadProps() (map[xml.Name]webdav.Property, error) {
	props, err := f.fsys.props.get(f.rel)
	if err != nil {
		return nil, err
	}
	if f.fsys.wantQuota && f.info.IsDir() {
		if err := f.fsys.addQuotaProps(props); err != nil {
			return nil, err
		}
	}
	if f.fsys.wantLocks {
		f.fsys.addLockProps(props, f.rel)
	}
	return props, nil
}

func (f *davFile) Patch(patches []webdav.Proppatch) ([]webdav.Propstat, error) {
	return f.fsys.props.patch(f.rel, patches)
}
