// Package webui serves the household's web interface: the setup wizard that
// creates the accounts on first boot, the login with its optional TOTP step,
// and the member page for the password and app passwords. It also provides
// the HTTP Basic auth middleware (RFC 7617) that DAV handlers sit behind.
package webui

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/authlimit"
	"github.com/heimwolke/heimwolke/packages/i18n"
	"github.com/heimwolke/heimwolke/packages/logging"
)

// maxFormBytes caps the body of a form POST. The largest forms carry two
// passwords of at most 1024 bytes each (the owner step) or one token or key
// of at most 4096 bytes (the domain step).
const maxFormBytes = 16 << 10

// Options configures a Handler.
type Options struct {
	// Accounts is the user database. Required.
	Accounts *accounts.Store

	// Setup records whether the setup wizard has finished. Required.
	Setup *SetupState

	// Limiter decides which source addresses count as LAN, for the wizard
	// and for plain HTTP. Pass the Limiter given to accounts.Open, so that
	// the gate and the login throttle agree. Nil means a new Limiter with
	// authlimit's defaults: private IPv4, ULA, link-local and loopback.
	Limiter *authlimit.Limiter

	// Logger receives logins, the end of the setup and internal errors,
	// never a password or token. Nil means slog.Default().
	Logger *slog.Logger

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time

	// Version is the software version that the wizard and the member page
	// show in their footer.
	Version string

	// Domain is the household's domain, from which the device setup pages
	// derive the server names for mail, calendar, chat and file clients.
	// Empty means the domain in the agent's settings, read over
	// AgentSocket, and heimwolke.local, the box's name on the LAN, while
	// those settings have none.
	Domain string

	// AgentSocket is the path of heimwolke-agent's control API socket,
	// where the setup wizard sends the settings and the admin dashboard
	// asks for the agent's status. Empty means control.AgentSocket.
	AgentSocket string

	// SetupCodeFile is the path of setup-code.txt on the boot partition.
	// While the file exists and holds a code, the wizard asks for it
	// first. Empty means that no code is required.
	SetupCodeFile string

	// ServicesReady reports whether the services serve with the box's
	// certificate, for the wizard's progress page. Nil means that the page
	// shows the services as waiting.
	ServicesReady func() bool

	// DataDir is the folder of the box's persistent data. The admin
	// dashboard shows the size of its file system, and the factory reset
	// deletes everything in it. Empty: the dashboard leaves out the
	// storage, and the factory reset is not available.
	DataDir string

	// Rebooter restarts the box for the admin pages. Nil means gokrazy's
	// HTTP API on GokrazySocket, which exists only on the box.
	Rebooter Rebooter

	// Resetter deletes the household's data for a factory reset. Nil
	// means a FolderResetter on DataDir.
	Resetter Resetter

	// Logs holds heimwolke's recent log lines, which the admin dashboard
	// shows. Nil means that it shows none.
	Logs *logging.Ring

	// Website publishes the zip archives that the owner uploads on
	// /admin/website. Nil means that the page is not found.
	Website WebsitePublisher

	// LocalRootFile is the PEM root certificate of the box's own
	// certificate authority, <tls-dir>/localca/root.pem. Once the setup is
	// complete, visitors download it without logging in from
	// /ca/heimwolke-root.crt (PEM) and .cer (DER), and /ca/ shows how to
	// install it. Empty, or while the file does not exist, these paths
	// are not found.
	LocalRootFile string

	// Files stores the members' files for the file browser on /files/
	// and the share links on /s/. Nil means that these pages are not
	// found.
	Files FileStore

	// Mail gives the owner's /admin/mail and the member's /account/mail
	// their aliases, queue and mbox export.
	Mail MailServices

	// DeleteUserData removes what the services keep of the member with
	// the login name: share links, aliases, files, calendars, contacts and
	// mail. Deleting a member on /admin/people first revokes the member's
	// logins, then calls it, and deletes the account only when it returns
	// nil, so that a new member of the same name starts empty. It must
	// finish a removal that an earlier failed call began. Nil means that
	// only the account is deleted.
	DeleteUserData func(ctx context.Context, login string) error
}

// Handler serves the web interface. It is safe for concurrent use.
type Handler struct {
	accounts *accounts.Store
	setup    *SetupState
	limiter  *authlimit.Limiter
	log      *slog.Logger
	now      func() time.Time
	version  string
	domain   string
	catalog  i18n.Catalog
	pages    pageTemplates
	mux      *http.ServeMux

	// csrfKey signs the CSRF tokens of visitors without a session. A
	// restart makes the forms that are open in browsers expire.
	csrfKey []byte

	drafts  *draftStore
	pending *pendingLogins
	secrets *secretFlashes
	website WebsitePublisher
	files   FileStore
	mail    MailServices

	deleteUserData func(ctx context.Context, login string) error

	localRootFile string

	admin  adminConfig
	wizard wizardConfig

	// settings reads the household's settings from the agent, for the
	// pages that depend on the domain and the chosen services.
	settings *agentSettings

	// applyMu makes the wizard's final step run once at a time, so that
	// two browsers that press it together do not both create accounts.
	applyMu sync.Mutex
}

// New returns the handler.
func New(opts Options) (*Handler, error) {
	if opts.Accounts == nil || opts.Setup == nil {
		return nil, errors.New("webui: Options.Accounts and Options.Setup are required")
	}
	if opts.Limiter == nil {
		opts.Limiter = authlimit.New(authlimit.Config{})
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	wizard, err := newWizardConfig(opts)
	if err != nil {
		return nil, err
	}

	h := &Handler{
		accounts: opts.Accounts,
		setup:    opts.Setup,
		limiter:  opts.Limiter,
		log:      opts.Logger,
		now:      opts.Now,
		version:  opts.Version,
		domain:   opts.Domain,
		catalog:  i18n.MustLoad(),
		pages:    pages,
		mux:      http.NewServeMux(),
		csrfKey:  make([]byte, 32),
		drafts:   newDraftStore(opts.Now),
		pending:  newPendingLogins(opts.Now),
		secrets:  newSecretFlashes(opts.Now),
		website:  opts.Website,
		files:    opts.Files,
		mail:     opts.Mail,
		admin:    newAdminConfig(opts),
		wizard:   wizard,

		localRootFile:  opts.LocalRootFile,
		deleteUserData: opts.DeleteUserData,
	}
	h.settings = newAgentSettings(h.admin.agentSocket, h.now)
	rand.Read(h.csrfKey) // returns no error since Go 1.24; it crashes the program instead
	h.routes()
	return h, nil
}

func (h *Handler) routes() {
	h.mux.HandleFunc("GET /{$}", h.home)

	h.registerWizardRoutes()

	h.mux.HandleFunc("GET /login", h.loginPage)
	h.mux.HandleFunc("POST /login", h.login)
	h.mux.HandleFunc("GET /login/totp", h.totpPage)
	h.mux.HandleFunc("POST /login/totp", h.verifyTOTP)
	h.mux.HandleFunc("POST /logout", h.logout)
	h.mux.HandleFunc("POST /logout/everywhere", h.logoutEverywhere)

	h.mux.HandleFunc("GET /account", h.accountPage)
	h.mux.HandleFunc("GET /account/{$}", redirectTo("/account"))
	h.mux.HandleFunc("POST /account/password", h.changePassword)
	h.mux.HandleFunc("POST /account/app-passwords", h.createAppPassword)
	h.mux.HandleFunc("POST /account/app-passwords/{id}/revoke", h.revokeAppPassword)

	// Each area of the interface registers its routes in its own file.
	h.registerAdminRoutes()
	h.registerDeviceRoutes()
	h.registerWebsiteRoutes()
	h.registerFileRoutes()
	h.registerLocalCARoutes()
	h.registerMailRoutes()

	h.mux.HandleFunc("GET /static/ui.css", serveStylesheet)
	h.mux.HandleFunc("/", h.notFound)
}

// redirectTo returns a handler that sends the browser to path with 303 See
// Other, for a path that people type with a trailing slash.
func redirectTo(path string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, path, http.StatusSeeOther)
	}
}

// visit is the state of a request that ServeHTTP collects before a route
// handles it.
type visit struct {
	source netip.Addr
	tls    bool

	// visitor is the value of the visitor cookie, which keys the wizard
	// draft, a login awaiting its TOTP code and the CSRF token of forms
	// shown without a session.
	visitor string

	// session is the logged-in session, nil without one; sessionToken is
	// the cookie value it was found by.
	session      *accounts.Session
	sessionToken string

	// lang is the language of the page: the wizard draft's, the user's,
	// or the browser's.
	lang string
}

// protocol names the login's transport for the accounts log.
func (v *visit) protocol() string {
	if v.tls {
		return "https"
	}
	return "http"
}

type visitKey struct{}

func visitOf(r *http.Request) *visit { return r.Context().Value(visitKey{}).(*visit) }

// ServeHTTP applies the gates that every route shares and then routes the
// request:
//
//   - Before the setup is complete, only LAN sources are served, and every
//     path leads to the wizard.
//   - After it, plain HTTP is served to LAN sources only, because the login
//     form sends a password.
//   - Every POST must carry a valid CSRF token and fit in maxFormBytes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if r.URL.Path == "/static/ui.css" {
		// The stylesheet is public, and the 403 pages below use it.
		h.mux.ServeHTTP(w, r)
		return
	}

	v := &visit{source: sourceAddr(r), tls: r.TLS != nil}
	lan := h.limiter.IsLAN(v.source)
	complete := h.setup.Complete()
	switch {
	case !complete && !lan:
		h.renderLANOnly(w, v, "lanonly.setup")
		return
	case complete && !v.tls && !lan:
		h.renderLANOnly(w, v, "lanonly.plain")
		return
	}

	v.visitor = h.visitorCookie(w, r, v)
	if complete {
		h.loadSession(r, v)
	}
	v.lang = h.pageLanguage(w, r, v, complete)
	r = r.WithContext(context.WithValue(r.Context(), visitKey{}, v))

	if r.Method == http.MethodPost && !h.checkForm(w, r, v) {
		return
	}

	inWizard := r.URL.Path == "/setup" || strings.HasPrefix(r.URL.Path, "/setup/")
	switch {
	case complete && inWizard:
		h.renderSetupComplete(w, v)
	case !complete && !inWizard:
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
	default:
		h.mux.ServeHTTP(w, r)
	}
}

// sourceAddr returns the client address of the connection.
//
// TODO: behind the relay tunnel, take the address from the PROXY protocol
// header; the tunnel's loopback address would make every client a LAN
// client.
func sourceAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// checkForm limits the size of a POST body, parses it, and checks its CSRF
// token: the session's token, or for visitors without a session the token
// derived from their visitor cookie. It writes the error page and returns
// false when the form is rejected. The website and file upload forms,
// which can be gigabytes, check their own size and token.
func (h *Handler) checkForm(w http.ResponseWriter, r *http.Request, v *visit) bool {
	if h.isWebsiteUpload(r) || h.isFileUpload(r) {
		return true
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		h.log.Info("form rejected: unreadable body", "source", v.source, "path", r.URL.Path, "err", err)
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.renderMessage(w, v, http.StatusRequestEntityTooLarge, "error.bad_form.title", "error.too_large", "")
			return false
		}
		h.renderMessage(w, v, http.StatusBadRequest, "error.bad_form.title", "error.bad_request", "")
		return false
	}

	token := r.PostForm.Get("csrf")
	if v.session != nil && v.session.ValidCSRF(token) {
		return true
	}
	if v.visitor != "" && h.validVisitorCSRF(v.visitor, token) {
		return true
	}
	h.log.Info("form rejected: CSRF token missing or invalid", "source", v.source, "path", r.URL.Path)
	h.renderMessage(w, v, http.StatusForbidden, "error.csrf.title", "error.csrf", "")
	return false
}

func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	if visitOf(r).session != nil {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.renderMessage(w, visitOf(r), http.StatusNotFound, "error.not_found.title", "error.not_found", "")
}

// internalError logs err and shows a page that carries none of its text.
func (h *Handler) internalError(w http.ResponseWriter, v *visit, event string, err error) {
	h.log.Error(event, "source", v.source, "err", err)
	h.renderMessage(w, v, http.StatusInternalServerError, "error.internal.title", "error.internal", "")
}
