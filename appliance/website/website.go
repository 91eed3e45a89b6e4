// Package website serves the household's own website, a folder of static
// files, and publishes a new version of it from a zip archive in one atomic
// step. It lists no folders, serves no dotfiles and nothing outside the
// folder, and runs no code on the box.
package website

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"

	"github.com/heimwolke/heimwolke/packages/i18n"
)

// Options configures a Site.
type Options struct {
	// Dir is the folder of the published site (/perm/heimwolke/www on the
	// box). Required. It need not exist: until the first publish, "/"
	// shows a default page. PublishZip writes its upload and staging
	// folders next to Dir, so that a rename can swap them in.
	Dir string

	// HTTPSHost reports whether the box serves host (a name without port,
	// in lower case) over HTTPS with a certificate that browsers accept.
	// Responses over HTTPS for such a host carry HSTS. The front door in
	// package web redirects plain HTTP for the same hosts. Nil means never.
	HTTPSHost func(host string) bool

	// Logger receives publishes, recoveries and errors while serving.
	// Nil means slog.Default().
	Logger *slog.Logger
}

// Site serves and publishes the website. It is safe for concurrent use.
type Site struct {
	dir    string
	parent string
	base   string

	httpsHost func(host string) bool
	log       *slog.Logger
	catalog   i18n.Catalog

	// exchange swaps two folders in one step; tests replace it to take
	// the fallback path of two renames.
	exchange func(a, b string) error

	// publishMu lets one publish run at a time.
	publishMu sync.Mutex
}

// New returns the site for opts.Dir. It removes what an interrupted
// publish left next to the folder, and puts the previous site back if a
// publish stopped between its two renames.
func New(opts Options) (*Site, error) {
	if opts.Dir == "" {
		return nil, errors.New("website: Options.Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("website: resolving folder %q: %w", opts.Dir, err)
	}
	dir = filepath.Clean(dir)
	if dir == filepath.Dir(dir) {
		return nil, fmt.Errorf("website: folder %q is a file system root; use a folder below it", opts.Dir)
	}
	s := &Site{
		dir:       dir,
		parent:    filepath.Dir(dir),
		base:      filepath.Base(dir),
		httpsHost: opts.HTTPSHost,
		log:       opts.Logger,
		catalog:   i18n.MustLoad(),
		exchange:  exchangeFolders,
	}
	if s.httpsHost == nil {
		s.httpsHost = func(string) bool { return false }
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.recoverInterruptedPublish()
	return s, nil
}

// Dir returns the absolute path of the site's folder.
func (s *Site) Dir() string { return s.dir }

// ServeHTTP serves the site's files to GET and HEAD requests.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	https := r.TLS != nil && s.httpsHost(RequestHost(r))
	setSecurityHeaders(w.Header(), https)
	if https {
		// RFC 6797 section 6.1.1; browsers ignore the header over plain
		// HTTP (section 8.1), so it is sent over TLS only.
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
	}

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.plainError(w, r, http.StatusMethodNotAllowed, "error.method")
		return
	}
	s.serveFile(w, r)
}

// siteCSP is the Content-Security-Policy of the owner's pages. The site is
// the owner's own HTML, CSS and JavaScript, which may use inline scripts,
// inline styles, eval and resources from other hosts (web fonts, a video
// player), so the policy restricts none of those. It closes what no static
// site needs: plugins (object-src), a <base> element that points relative
// links at another host (base-uri), and framing by other sites
// (frame-ancestors, as X-Frame-Options SAMEORIGIN does for older browsers).
//
// NOTE: the site shares its origin with the web interface, so a script on
// the site can read interface pages as the visitor's logged-in session.
// Only the owner publishes, but the site's scripts must be trusted like the
// owner.
const siteCSP = "default-src * data: blob: 'unsafe-inline' 'unsafe-eval'; object-src 'none'; base-uri 'self'; frame-ancestors 'self'"

// setSecurityHeaders sets the headers that every response of the site
// carries. upgrade adds upgrade-insecure-requests, which is only sent over
// HTTPS: on a plain HTTP page it would send the site's own links to an
// https:// that does not exist yet.
func setSecurityHeaders(hdr http.Header, upgrade bool) {
	csp := siteCSP
	if upgrade {
		csp += "; upgrade-insecure-requests"
	}
	hdr.Set("Content-Security-Policy", csp)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "SAMEORIGIN")
	hdr.Set("Referrer-Policy", "strict-origin-when-cross-origin")
}

// RequestHost returns the host of r's Host header without port and
// brackets, in lower case.
func RequestHost(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.ToLower(strings.TrimSuffix(host, "."))
}
