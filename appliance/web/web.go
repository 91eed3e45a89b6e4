// Package web serves the box's HTTP front door on port 80: the health
// endpoint that tests and the agent poll, and either the web interface (the
// setup wizard and the login) or, without one, a first-boot page that greets
// the household in German or English.
package web

import (
	"encoding/json"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/heimwolke/heimwolke/appliance/website"
	"github.com/heimwolke/heimwolke/packages/i18n"
	"github.com/heimwolke/heimwolke/packages/ratelimit"
)

// Options configures the handler.
type Options struct {
	// Version is shown on the page and in the health report.
	Version string
	// DataDir is the folder whose file system the health report measures
	// (/perm/heimwolke on the box).
	DataDir string
	// Logger receives one line per rejected request; nil means slog.Default().
	Logger *slog.Logger
	// UI serves every path except /healthz, behind the per-source rate
	// limit. Nil means the first-boot page on / and 404 elsewhere.
	UI http.Handler
	// Website serves the household's website once SetupComplete returns
	// true: "/" and every path outside uiPrefixes. Nil means that UI
	// serves those paths too. It is used only together with UI.
	Website http.Handler
	// SetupComplete reports whether the setup wizard has finished; until
	// then, every path stays with UI. Nil means never.
	SetupComplete func() bool
	// HTTPSHost reports whether the box serves host (a name without port)
	// over HTTPS with a certificate that browsers accept. While it does,
	// plain HTTP requests for host are redirected to https://, except
	// /healthz and the local root at /ca/, and HTTPS responses carry HSTS.
	// Nil means never.
	HTTPSHost func(host string) bool
	// HTTPSPort is the port of the HTTPS listener that redirects point to.
	// Empty or "443" means the default port.
	HTTPSPort string
}

// Handler serves /healthz and the web interface or the first-boot page.
type Handler struct {
	opts    Options
	catalog i18n.Catalog
	limiter *ratelimit.Limiter
	// logLimiter keeps a flood of rejected requests from flooding the log.
	logLimiter *ratelimit.Limiter
	log        *slog.Logger
	mux        *http.ServeMux
	nextID     atomic.Uint64
}

// New returns the handler.
func New(opts Options) *Handler {
	h := &Handler{
		opts:    opts,
		catalog: i18n.MustLoad(),
		// 20 requests per second per source address, bursts of 50: far above
		// what a person with a browser needs.
		limiter:    ratelimit.New(20, 50, 10000),
		logLimiter: ratelimit.New(1.0/60, 1, 10000),
		log:        opts.Logger,
		mux:        http.NewServeMux(),
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.mux.HandleFunc("GET /healthz", h.health)
	if opts.UI != nil {
		h.mux.HandleFunc("/", h.serveUIOrWebsite)
		return h
	}
	h.mux.HandleFunc("GET /{$}", h.firstBoot)
	h.mux.HandleFunc("/", h.notFound)
	return h
}

// uiPrefixes are the paths of the web interface once the setup is
// complete. Each covers itself and the paths below it, so "/admin" and
// "/admin/people" are the interface's, "/administration.html" the
// website's.
var uiPrefixes = []string{"/setup", "/login", "/logout", "/account", "/admin", "/static", "/ca", "/files", "/s", "/healthz"}

// isUIPath reports whether path is one of uiPrefixes or below one.
func isUIPath(path string) bool {
	for _, prefix := range uiPrefixes {
		if path == prefix || strings.HasPrefix(path, prefix+"/") {
			return true
		}
	}
	return false
}

// serveUIOrWebsite passes a request to the website once the setup is
// complete, unless its path is the web interface's, and to the interface
// otherwise. The mux has already cleaned the path and redirected requests
// with ".." or "//" in it, so "/admin/../x" is "/x" here.
func (h *Handler) serveUIOrWebsite(w http.ResponseWriter, r *http.Request) {
	if h.redirectToHTTPS(w, r) {
		return
	}
	website := h.opts.Website != nil && h.opts.SetupComplete != nil && h.opts.SetupComplete()
	if website && !isUIPath(r.URL.Path) {
		h.opts.Website.ServeHTTP(w, r)
		return
	}
	h.opts.UI.ServeHTTP(w, r)
}

// redirectToHTTPS sends a plain HTTP request to the same URL over https://
// on Options.HTTPSPort when Options.HTTPSHost accepts its host, and reports
// whether it did. Over HTTPS it adds HSTS for such a host. 308 keeps the method and body (RFC 9110 section 15.4.9).
// A request for the box's address or heimwolke.local stays on HTTP, because
// the certificate does not cover those names.
func (h *Handler) redirectToHTTPS(w http.ResponseWriter, r *http.Request) bool {
	if h.opts.HTTPSHost == nil {
		return false
	}
	if r.TLS != nil {
		// RFC 6797 section 7.1: HSTS over HTTPS only, and only for a name
		// whose certificate browsers accept.
		if h.opts.HTTPSHost(website.RequestHost(r)) {
			w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		}
		return false
	}
	if r.URL.Path == "/healthz" || r.URL.Path == "/ca" || strings.HasPrefix(r.URL.Path, "/ca/") {
		return false
	}
	host := website.RequestHost(r)
	if host == "" || !h.opts.HTTPSHost(host) {
		return false
	}
	if port := h.opts.HTTPSPort; port != "" && port != "443" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]" // an IPv6 literal
	}
	http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	return true
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := h.nextID.Add(1)
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !h.limiter.Allow(host) {
		if h.logLimiter.Allow(host) {
			h.log.Info("request rate limited; further ones from this address within a minute are not logged", "request_id", id, "remote", host, "path", r.URL.Path)
		}
		lang := i18n.Negotiate(r.URL.Query().Get("lang"), r.Header.Get("Accept-Language"))
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Language", lang)
		http.Error(w, h.catalog.T(lang, "error.rate_limited"), http.StatusTooManyRequests)
		return
	}
	h.log.Debug("request", "request_id", id, "remote", host, "method", r.Method, "path", r.URL.Path)
	h.mux.ServeHTTP(w, r)
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.T "firstboot.title"}}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; color: #1d2733; }
h1 { font-weight: 600; }
.version { color: #55606d; font-size: 0.9rem; }
</style>
</head>
<body>
<h1>{{.T "firstboot.title"}}</h1>
<p>{{.T "firstboot.intro"}}</p>
<p>{{.T "firstboot.wizard_pending"}}</p>
<p class="version">{{.T "firstboot.version"}}: <span id="version">{{.Version}}</span></p>
<p><a href="?lang={{.Other}}" hreflang="{{.Other}}">{{.T "firstboot.language"}}</a></p>
</body>
</html>
`))

type pageData struct {
	Lang, Other, Version string
	catalog              i18n.Catalog
}

func (p pageData) T(key string) string { return p.catalog.T(p.Lang, key) }

func (h *Handler) firstBoot(w http.ResponseWriter, r *http.Request) {
	lang := i18n.Negotiate(r.URL.Query().Get("lang"), r.Header.Get("Accept-Language"))
	other := "de"
	if lang == "de" {
		other = "en"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", lang)
	w.Header().Set("Vary", "Accept-Language")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	if err := pageTemplate.Execute(w, pageData{Lang: lang, Other: other, Version: h.opts.Version, catalog: h.catalog}); err != nil {
		h.log.Error("rendering first-boot page", "err", err)
	}
}

// Health is the JSON body of /healthz.
type Health struct {
	Status  string    `json:"status"`
	Version string    `json:"version"`
	Time    time.Time `json:"time"`
	// Storage describes the file system of the data folder; absent when it
	// cannot be measured.
	Storage *Storage `json:"storage,omitempty"`
	// Processes lists the resident memory of heimwolke and
	// heimwolke-agent.
	Processes []Process `json:"processes,omitempty"`
}

// Storage is the size of the data folder's file system, in bytes.
type Storage struct {
	Path       string `json:"path"`
	TotalBytes uint64 `json:"total_bytes"`
	FreeBytes  uint64 `json:"free_bytes"`
}

func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	report := Health{Status: "ok", Version: h.opts.Version, Time: time.Now().UTC()}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !fromLAN(r) {
		// Sizes, paths and process ids are for the household, not for
		// whoever reaches the box from the internet.
		json.NewEncoder(w).Encode(report)
		return
	}
	report.Processes = programMemory()
	var st unix.Statfs_t
	if err := unix.Statfs(h.opts.DataDir, &st); err == nil {
		report.Storage = &Storage{
			Path:       h.opts.DataDir,
			TotalBytes: st.Blocks * uint64(st.Bsize),
			FreeBytes:  st.Bavail * uint64(st.Bsize),
		}
	} else {
		h.log.Warn("measuring data folder", "path", h.opts.DataDir, "err", err)
	}
	json.NewEncoder(w).Encode(report)
}

// fromLAN reports whether the request comes from a loopback, private
// (including IPv6 ULA) or link-local address.
func fromLAN(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast()
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	lang := i18n.Negotiate(r.URL.Query().Get("lang"), r.Header.Get("Accept-Language"))
	w.Header().Set("Content-Language", lang)
	http.Error(w, h.catalog.T(lang, "error.not_found"), http.StatusNotFound)
}

// NewServer wraps handler in an http.Server with the limits every public
// listener needs: header size and read, write and idle time-outs.
func NewServer(addr string, handler http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
