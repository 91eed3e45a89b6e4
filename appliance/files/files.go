// Package files serves the household's files over WebDAV (RFC 4918 class 1
// and 2, with the quotas of RFC 4331) and stores the web file browser's
// files and share links. It uses golang.org/x/net/webdav for PROPPATCH,
// COPY, MOVE and PROPFIND on dead properties, because go-webdav v0.6.0 has
// no LOCK and no dead properties. This package adds shared locks, the If
// header's entity tags, dead properties in SQLite, a file system confined by
// os.Root, atomic uploads and a faster PROPFIND for the common requests.
package files

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/webdav"

	"github.com/heimwolke/heimwolke/appliance/webui"
	"github.com/heimwolke/heimwolke/packages/accounts"

	"github.com/heimwolke/heimwolke/packages/davlock"
)

// The URL paths of the folders. A member reaches their own home and the
// shared folder; only the owner reaches the website folder.
const (
	HomePrefix    = "/dav/files/"   // followed by the login name
	SharedPrefix  = "/dav/shared/"  // the household's shared folder
	WebsitePrefix = "/dav/website/" // the owner's website document root
)

// transferTimeout replaces the server's read and write timeouts for one
// request, because a 4 GiB upload over a 2 MB/s uplink takes about 35
// minutes.
const transferTimeout = 2 * time.Hour

// staleUploadAge is the age after which New removes a temporary upload
// file that a crash or power cut left behind.
const staleUploadAge = 24 * time.Hour

// defaultMaxXMLBytes caps a PROPFIND, PROPPATCH or LOCK body. These bodies
// name a few properties, and 1 MiB leaves room for many dead properties in
// one PROPPATCH; litmus, cadaver and rclone pass with it.
const defaultMaxXMLBytes = 1 << 20

// Options configures a Handler.
type Options struct {
	// DataDir is the folder that holds the members' homes (home/LOGIN)
	// and the shared folder (shared), such as /perm/heimwolke/files.
	// Required. Missing folders are created on first use.
	DataDir string

	// WebsiteDir is the website's document root, which the owner reaches
	// at WebsitePrefix. Empty means that the website folder is not found.
	WebsiteDir string

	// DB stores the dead properties and the share links. Required. New
	// applies the component "files" migrations to it.
	DB *sql.DB

	// QuotaBytes is the size that each member's home may reach. Uploads
	// beyond it fail with 507 Insufficient Storage. Zero means that only
	// the free space of the file system limits them.
	QuotaBytes int64

	// SharedQuotaBytes is the size that the shared folder may reach, and
	// the website folder separately too. Zero means only the free space.
	SharedQuotaBytes int64

	// FreeReserveBytes is the free space that uploads leave on the file
	// system that holds a folder, for the mail queue, the databases and
	// the logs. An upload that would leave less fails with 507
	// Insufficient Storage, whatever its folder's quota. Zero means no
	// reserve.
	FreeReserveBytes int64

	// MaxXMLBytes caps the XML body of PROPFIND, PROPPATCH and LOCK.
	// Larger bodies get 413. Zero means 1 MiB.
	MaxXMLBytes int64

	// SharePasswordMemoryKiB is the Argon2id memory cost of share link
	// passwords. Zero means 64 MiB, the cost of the users' passwords.
	SharePasswordMemoryKiB uint32

	// Now returns the current time for share link expiry. Nil means
	// time.Now.
	Now func() time.Time

	// Logger receives errors that clients see as 5xx, never file
	// contents or credentials. Nil means slog.Default().
	Logger *slog.Logger
}

var _ webui.FileStore = (*Handler)(nil)

// Handler serves WebDAV for the user that webui.BasicAuth admitted. It is
// safe for concurrent use.
type Handler struct {
	dataDir     string
	websiteDir  string
	maxXMLBytes int64
	log         *slog.Logger
	props       *propStore
	shares      *shareStore

	// mu guards roots, which keeps one lock system and one usage counter
	// per folder across requests.
	mu    sync.Mutex
	roots map[string]*rootState

	quotaHome   int64
	quotaShared int64
	freeReserve int64
}

// rootState is the lock system and usage counter of one folder tree, kept
// across requests.
type rootState struct {
	locks *davlock.System
	usage *usage
}

// New returns the handler. It creates DataDir and migrates the database.
func New(ctx context.Context, opts Options) (*Handler, error) {
	if opts.DataDir == "" || opts.DB == nil {
		return nil, errors.New("files: Options.DataDir and Options.DB are required")
	}
	if opts.MaxXMLBytes <= 0 {
		opts.MaxXMLBytes = defaultMaxXMLBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SharePasswordMemoryKiB == 0 {
		opts.SharePasswordMemoryKiB = 64 << 10
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("files: creating data folder: %w", err)
	}
	if err := migrate(ctx, opts.DB); err != nil {
		return nil, fmt.Errorf("files: migrating database: %w", err)
	}
	go removeStaleUploads(opts.Logger, []string{opts.DataDir, opts.WebsiteDir}, opts.Now())
	return &Handler{
		dataDir:     opts.DataDir,
		websiteDir:  opts.WebsiteDir,
		maxXMLBytes: opts.MaxXMLBytes,
		log:         opts.Logger,
		props:       &propStore{db: opts.DB},
		shares:      &shareStore{db: opts.DB, now: opts.Now, argonMemoryKiB: opts.SharePasswordMemoryKiB},
		roots:       make(map[string]*rootState),
		quotaHome:   opts.QuotaBytes,
		quotaShared: opts.SharedQuotaBytes,
		freeReserve: opts.FreeReserveBytes,
	}, nil
}

// folder is one tree that a request reaches: its URL prefix, its folder
// on disk, and the key of its lock system, usage and properties.
type folder struct {
	prefix string // URL path without the trailing slash
	dir    string
	key    string
	quota  int64
}

// folderFor maps a cleaned URL path to the folder it lies in, for user.
// It returns 404 for paths outside every folder and 403 for a folder that
// belongs to someone else.
func (h *Handler) folderFor(user *accounts.User, urlPath string) (folder, int) {
	switch {
	case strings.HasPrefix(urlPath+"/", HomePrefix):
		login, _, _ := strings.Cut(strings.TrimPrefix(urlPath, HomePrefix), "/")
		if login == "" {
			return folder{}, http.StatusNotFound
		}
		if login != user.Name {
			return folder{}, http.StatusForbidden
		}
		return folder{
			prefix: HomePrefix + login,
			dir:    filepath.Join(h.dataDir, "home", login),
			key:    "home/" + login,
			quota:  h.quotaHome,
		}, 0

	case urlPath+"/" == SharedPrefix || strings.HasPrefix(urlPath, SharedPrefix):
		return folder{
			prefix: strings.TrimSuffix(SharedPrefix, "/"),
			dir:    filepath.Join(h.dataDir, "shared"),
			key:    "shared",
			quota:  h.quotaShared,
		}, 0

	case urlPath+"/" == WebsitePrefix || strings.HasPrefix(urlPath, WebsitePrefix):
		if h.websiteDir == "" {
			return folder{}, http.StatusNotFound
		}
		if user.Role != accounts.RoleOwner {
			return folder{}, http.StatusForbidden
		}
		return folder{
			prefix: strings.TrimSuffix(WebsitePrefix, "/"),
			dir:    h.websiteDir,
			key:    "website",
			quota:  h.quotaShared,
		}, 0
	}
	return folder{}, http.StatusNotFound
}

// state returns the lock system and usage counter of f.
func (h *Handler) state(f folder) *rootState {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.roots[f.key]
	if !ok {
		st = &rootState{locks: davlock.New(), usage: &usage{}}
		h.roots[f.key] = st
	}
	return st
}

// ServeHTTP checks the request's path, headers and XML body and then lets
// golang.org/x/net/webdav handle it on the user's folder.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, ok := webui.AuthenticatedUser(r.Context())
	if !ok {
		// The handler is mounted without BasicAuth in front: a wiring bug.
		h.log.Error("webdav request without an authenticated user", "path", r.URL.Path)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}

	// Errors mean that w does not support deadlines (a test recorder),
	// which then do not apply either.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(transferTimeout))
	rc.SetWriteDeadline(time.Now().Add(transferTimeout))

	urlPath, err := cleanURLPath(r.URL)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f, status := h.folderFor(user, urlPath)
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	xmlBody, status, err := h.checkRequest(r, f, urlPath)
	if err != nil {
		writeCheckError(w, status, err)
		return
	}
	h.serveFolder(w, r, f, urlPath, xmlBody)
}

// serveFolder opens the folder's root and serves the request on it.
func (h *Handler) serveFolder(w http.ResponseWriter, r *http.Request, f folder, urlPath string, xmlBody []byte) {
	fsys, closeRoot, err := h.openFolder(f)
	if err != nil {
		h.log.Error("opening folder", "folder", f.key, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	defer closeRoot()
	if r.Method == "PROPFIND" {
		fsys.wantQuota = namesQuota(xmlBody)
		fsys.wantLocks = bytes.Contains(xmlBody, []byte("lockdiscovery"))
		fsys.statCache = make(map[string]fileInfo)
	}
	if bw, ok := r.Body.(*bodyWatcher); ok {
		bw.state = fsys.req
	}

	r.URL.Path, r.URL.RawPath = urlPath, ""
	h.dispatch(w, r, fsys, f, strings.TrimPrefix(urlPath, f.prefix), xmlBody)
}

// dispatch serves LOCK, UNLOCK, GET, HEAD and the common PROPFIND requests
// itself, checks the If header, and leaves the rest to the webdav package.
func (h *Handler) dispatch(w http.ResponseWriter, r *http.Request, fsys *rootFS, f folder, name string, xmlBody []byte) {
	switch r.Method {
	case "LOCK":
		h.serveLock(w, r, fsys, fsys.locks, f, name)
		return
	case "UNLOCK":
		h.serveUnlock(w, r, fsys.locks, name)
		return
	case "PUT":
		if fsys.exceedsQuota(relPath(name), r.ContentLength) {
			http.Error(w, errQuotaExceeded.Error(), http.StatusInsufficientStorage)
			return
		}
		if err := fsys.checkFreeSpace(r.ContentLength); err != nil {
			writeFreeSpaceError(w, h.log, f, err)
			return
		}
	}
	if r.Method != "OPTIONS" {
		if status, err := applyIf(r, fsys, fsys.locks, f, name); err != nil {
			writeCheckError(w, status, err)
			return
		}
	}

	switch {
	case r.Method == "GET" || r.Method == "HEAD":
		h.serveContent(w, r, fsys, name)
	case r.Method == "PROPFIND" && h.servePropfindFast(w, r, fsys, f, name, xmlBody):
	default:
		dav := &webdav.Handler{
			Prefix:     f.prefix,
			FileSystem: fsys,
			LockSystem: fsys.locks,
			Logger: func(r *http.Request, err error) {
				h.logResult(r, f, fsys.req, err)
			},
		}
		dav.ServeHTTP(&statusRewriter{ResponseWriter: w, req: fsys.req}, r)
	}
}

// logResult logs the errors that the webdav package met: at Error when the
// file system marked the request as failed inside the box, and at Debug
// otherwise, because most are client errors such as a missing file.
func (h *Handler) logResult(r *http.Request, f folder, req *requestState, err error) {
	if err == nil {
		return
	}
	level := slog.LevelDebug
	if req.internalErr {
		level = slog.LevelError
	}
	h.log.Log(r.Context(), level, "webdav request failed", "method", r.Method, "folder", f.key, "err", err)
}

// serveContent serves GET and HEAD with ranges and conditions (RFC 9110
// section 14 and 13) from the file itself, so that the kernel can send it
// without copying. The ETag has the webdav package's form, which its
// PROPFIND reports.
func (h *Handler) serveContent(w http.ResponseWriter, r *http.Request, fsys *rootFS, name string) {
	rel := relPath(name)
	file, err := fsys.root.Open(rel)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		h.log.Error("reading file status", "folder", fsys.key, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if fi.IsDir() {
		w.Header().Set("Allow", "OPTIONS, LOCK, DELETE, PROPPATCH, COPY, MOVE, UNLOCK, PROPFIND")
		http.Error(w, "a folder has no content; use PROPFIND to list it", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("ETag", entityTag(fi.ModTime(), fi.Size()))
	if ct, _ := (fileInfo{fi}).ContentType(r.Context()); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), file)
}

// writeFreeSpaceError sends 507 when an upload would cross the free-space
// reserve, and 500 when the free space could not be read.
func writeFreeSpaceError(w http.ResponseWriter, log *slog.Logger, f folder, err error) {
	if errors.Is(err, errFreeReserve) {
		http.Error(w, err.Error(), http.StatusInsufficientStorage)
		return
	}
	log.Error("checking free space before an upload", "folder", f.key, "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}
