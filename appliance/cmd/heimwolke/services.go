package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"syscall"
	"time"

	"github.com/heimwolke/heimwolke/appliance/dav"
	"github.com/heimwolke/heimwolke/appliance/files"
	"github.com/heimwolke/heimwolke/appliance/webui"
	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/sqlitedb"
)

// services are the protocols that heimwolke serves besides the web
// interface: WebDAV file storage, CalDAV and CardDAV on HTTPS, and mail.
type services struct {
	db       *sql.DB
	accounts *accounts.Store
	files    *files.Handler
	dav      *dav.Handler
	mail     *mail
	auth     func(protocol string, h http.Handler) http.Handler
	// clientSetup serves the mail client setup requests of the mail
	// domain and reports whether the request was one.
	clientSetup func(w http.ResponseWriter, r *http.Request) bool
}

// openServices opens the DAV services on the database at dbPath. Files live
// in the files folder of dataDir; the owner's Website folder is wwwDir.
func openServices(ctx context.Context, dbPath, dataDir, wwwDir string, accts *accounts.Store, log *slog.Logger) (*services, error) {
	db, err := sqlitedb.Open(ctx, dbPath, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("opening database for the services: %w", err)
	}
	quota := fileQuota(dataDir, log)
	fh, err := files.New(ctx, files.Options{
		DataDir:          filepath.Join(dataDir, "files"),
		WebsiteDir:       wwwDir,
		DB:               db,
		QuotaBytes:       quota,
		SharedQuotaBytes: quota,
		FreeReserveBytes: fileFreeReserve(dataDir, log),
		Logger:           log,
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	dh, err := dav.New(ctx, dav.Options{DB: db, Logger: log})
	if err != nil {
		db.Close()
		return nil, err
	}
	m, err := openMail(ctx, dataDir, dbPath, db, accts, log)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &services{
		db:       db,
		accounts: accts,
		files:    fh,
		dav:      dh,
		mail:     m,
		auth: func(protocol string, h http.Handler) http.Handler {
			return webui.BasicAuth(webui.BasicAuthOptions{Accounts: accts, Scope: accounts.ScopeDAV, Protocol: protocol, Logger: log}, h)
		},
	}, nil
}

// deleteUserData removes what the services keep of the member login, for
// webui.Options.DeleteUserData. The web interface has revoked the member's
// logins before and deletes the account only when this returns nil. Access
// goes first (share links, aliases), then the data, so that nothing new
// arrives for the member while their data is removed. Each step may run
// again after a failed attempt.
func (s *services) deleteUserData(ctx context.Context, login string) error {
	// Aliases first, so that mail to them is rejected from now on.
	if removed, err := s.mail.aliases.RemoveTarget(ctx, login); err != nil {
		return fmt.Errorf("removing the aliases of %q: %w", login, err)
	} else if len(removed) > 0 {
		s.mail.log.Info("aliases of deleted member removed", "user", login, "aliases", removed)
	}

	// files.DeleteUser revokes the member's share links before it removes
	// their home folder.
	if err := s.files.DeleteUser(ctx, login); err != nil {
		return err
	}
	if err := s.dav.DeleteUser(ctx, login); err != nil {
		return err
	}
	if err := s.mail.store.DeleteUser(ctx, login); err != nil {
		return fmt.Errorf("deleting the mail of %q: %w", login, err)
	}
	return nil
}

func (s *services) Close() error {
	return s.db.Close()
}

// httpsHandler routes the DAV paths to the services, behind HTTP Basic
// auth with app passwords, and every other path to front. DAV is served on
// HTTPS only, because Basic auth sends the password with every request.
func (s *services) httpsHandler(front http.Handler) http.Handler {
	mux := http.NewServeMux()
	fileDAV := sandboxed(s.auth("webdav", s.files))
	for _, prefix := range []string{files.HomePrefix, files.SharedPrefix, files.WebsitePrefix} {
		mux.Handle(prefix, fileDAV)
	}
	mux.Handle(dav.Prefix, sandboxed(s.auth("dav", s.dav)))
	// The discovery redirects (RFC 6764) need no login.
	mux.Handle("/.well-known/caldav", s.dav)
	mux.Handle("/.well-known/carddav", s.dav)
	mux.Handle("/", front)
	// The mux would clean paths and redirect requests with "." or ".."
	// segments. The DAV handlers reject those themselves with a clear
	// status, so only the route is taken from the mux.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.clientSetup != nil && s.clientSetup(w, r) {
			return
		}
		h, _ := mux.Handler(routeOnly(r))
		h.ServeHTTP(w, r)
	})
}

// sandboxed sets headers that keep a browser from running what the DAV
// handler h returns: a member's HTML file opened at its DAV address would
// otherwise run its scripts on the web interface's origin. The CSP sandbox
// gives such a page an origin of its own and no scripts; DAV clients ignore
// both headers.
func sandboxed(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// routeOnly returns a copy of r whose path is good enough to pick a route,
// without the dot segments that would make the mux redirect.
func routeOnly(r *http.Request) *http.Request {
	c := r.Clone(r.Context())
	c.URL.Path = filepath.ToSlash(filepath.Clean("/" + r.URL.Path))
	if len(r.URL.Path) > 1 && r.URL.Path[len(r.URL.Path)-1] == '/' && c.URL.Path != "/" {
		c.URL.Path += "/"
	}
	return c
}

// File quota rule: each member's home folder, the shared folder and the
// website folder may each fill quotaShare of the data file system, but at
// least quotaFloor, so that a small test disk still takes uploads.
const (
	quotaShare = 4       // one quarter
	quotaFloor = 1 << 30 // 1 GiB
)

// fileQuota returns the quota of one folder under the rule above, from the
// size of the file system that holds dataDir, measured now. The quota caps
// each folder alone: several members together may still fill the disk.
func fileQuota(dataDir string, log *slog.Logger) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dataDir, &st); err != nil {
		log.Error("measuring the data file system failed, file quota set to the minimum", "path", dataDir, "quota_bytes", quotaFloor, "err", err)
		return quotaFloor
	}
	quota := max(int64(st.Blocks)*int64(st.Bsize)/quotaShare, quotaFloor)
	log.Info("file quota per folder", "path", dataDir, "quota_bytes", quota)
	return quota
}

// Free-space reserve of the data file system: file uploads stop when they
// would leave less than reserveShare of it free, but at least reserveFloor.
// The SMTP server accepts a message only while 1.5 times its default 40 MiB
// size limit (60 MiB) is free, and the databases, logs and mail store need
// room too, so the floor keeps mail flowing on a small card. On a large
// card the 5 % share scales the reserve with the card, like the share
// that mke2fs reserves for root by default.
const (
	reserveShare = 20        // one twentieth, 5 %
	reserveFloor = 256 << 20 // 256 MiB
)

// fileFreeReserve returns the free-space reserve for file uploads under the
// rule above, from the size of the file system that holds dataDir.
func fileFreeReserve(dataDir string, log *slog.Logger) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dataDir, &st); err != nil {
		log.Error("measuring the data file system failed, free-space reserve for files set to the minimum", "path", dataDir, "reserve_bytes", reserveFloor, "err", err)
		return reserveFloor
	}
	reserve := max(int64(st.Blocks)*int64(st.Bsize)/reserveShare, reserveFloor)
	log.Info("free-space reserve for file uploads", "path", dataDir, "reserve_bytes", reserve)
	return reserve
}
