// Package imap serves the mail store over IMAP (RFC 9051 and RFC 3501) with
// implicit TLS, using go-imap's imapserver. Clients log in with app
// passwords; new mail reaches idling clients through the store's events.
package imap

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/ratelimit"
)

// Options configures a Server. The zero value of each optional field selects
// its default.
type Options struct {
	// Store holds the mail. Required.
	Store *store.Store

	// Accounts checks app passwords with the mail scope. Required.
	Accounts *accounts.Store

	// TLSConfig is the certificate setup for implicit TLS (RFC 8314 section
	// 3.2). Required.
	TLSConfig *tls.Config

	// Logger receives connection errors and login failures. Default
	// slog.Default().
	Logger *slog.Logger

	// MaxConnsPerAddr caps the connections from one IP address. Default 20.
	MaxConnsPerAddr int

	// MaxConnsPerUser caps the logged-in connections of one user, counted
	// over all devices. Default 50.
	MaxConnsPerUser int

	// LoginTimeout closes a connection that has not logged in after this
	// long. Default 1 min.
	LoginTimeout time.Duration

	// LoginCheckInterval is how often a logged-in session checks that its
	// app password and its user still exist, on its next command or while
	// it idles, and ends with BYE when not. Default 30 s.
	LoginCheckInterval time.Duration
}

// imapserver v2.0.0-beta.9 fixes further limits. A command line may have at
// most 50 KiB and a literal outside APPEND at most 4 KiB. An unauthenticated
// client must send each command within 30 s, and an authenticated one may
// stay silent for 35 min, above the 30 min of RFC 9051 section 5.4. The
// APPEND literal limit is the store's MaxMessageSize, sent as APPENDLIMIT
// (RFC 7889).
//
// NOTE: when a client sends a non-synchronizing literal (LITERAL+, RFC 7888)
// larger than APPENDLIMIT, imapserver rejects the APPEND but does not skip
// the literal, so its bytes are read as commands of the same session.

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxConnsPerAddr <= 0 {
		o.MaxConnsPerAddr = 20
	}
	if o.MaxConnsPerUser <= 0 {
		o.MaxConnsPerUser = 50
	}
	if o.LoginTimeout <= 0 {
		o.LoginTimeout = time.Minute
	}
	if o.LoginCheckInterval <= 0 {
		o.LoginCheckInterval = 30 * time.Second
	}
	return o
}

// capabilities lists what the server advertises beyond what imapserver adds
// by itself (IDLE, ENABLE, UNSELECT, UTF8=ACCEPT, SASL-IR, LITERAL-).
var capabilities = imap.CapSet{
	imap.CapIMAP4rev1:        {},
	imap.CapIMAP4rev2:        {},
	imap.CapNamespace:        {},
	imap.CapUIDPlus:          {},
	imap.CapESearch:          {},
	imap.CapListExtended:     {},
	imap.CapListStatus:       {},
	imap.CapMove:             {},
	imap.CapStatusSize:       {},
	imap.CapBinary:           {},
	imap.CapChildren:         {},
	imap.CapSpecialUse:       {},
	imap.CapCreateSpecialUse: {},
	imap.CapLiteralPlus:      {},
}

// Server is an IMAP server for the mail store.
type Server struct {
	opts   Options
	imap   *imapserver.Server
	logger *slog.Logger

	connMu      sync.Mutex
	connsByAddr map[netip.Addr]int
	connsByUser map[string]int
	// rejectLog lets through one log line per address a minute about
	// rejected connections, so that a flood does not flood the log.
	rejectLog *ratelimit.Limiter

	// liveMu guards live, the selected mailboxes. Lock order: the store's
	// write lock, then liveMu, then a liveMailbox's mu.
	liveMu sync.Mutex
	live   map[int64]*liveMailbox
}

// New returns a server. It registers with the store for change events, so
// create one Server per Store.
func New(opts Options) (*Server, error) {
	opts = opts.withDefaults()
	var missing []string
	if opts.Store == nil {
		missing = append(missing, "Store")
	}
	if opts.Accounts == nil {
		missing = append(missing, "Accounts")
	}
	if opts.TLSConfig == nil {
		missing = append(missing, "TLSConfig")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("creating IMAP server: missing options %v", missing)
	}

	s := &Server{
		opts:        opts,
		logger:      opts.Logger,
		connsByAddr: make(map[netip.Addr]int),
		connsByUser: make(map[string]int),
		rejectLog:   ratelimit.New(1.0/60, 1, 10000),
		live:        make(map[int64]*liveMailbox),
	}
	s.imap = imapserver.New(&imapserver.Options{
		NewSession: s.newSession,
		Caps:       capabilities,
		Logger:     slogPrinter{opts.Logger},
		TLSConfig:  nil, // implicit TLS only: no STARTTLS
	})
	opts.Store.Listen(s.onEvent)
	return s, nil
}

// Serve accepts connections on ln and speaks TLS on them. It returns after
// Close, with nil.
func (s *Server) Serve(ln net.Listener) error {
	err := s.imap.Serve(newHandshakeListener(ln, s.opts.TLSConfig, handshakeTimeout))
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("serving IMAP on %s: %w", ln.Addr(), err)
	}
	return nil
}

// ListenAndServe listens on addr, such as ":993", and calls Serve.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for IMAP on %s: %w", addr, err)
	}
	s.logger.Info("imap: listening", "addr", ln.Addr().String())
	return s.Serve(ln)
}

// Close closes the listeners and every connection.
func (s *Server) Close() error {
	return s.imap.Close()
}

// slogPrinter passes imapserver's log lines to slog.
type slogPrinter struct{ logger *slog.Logger }

func (p slogPrinter) Printf(format string, args ...any) {
	p.logger.Warn("imap: " + fmt.Sprintf(format, args...))
}

func remoteAddr(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// acquireAddr counts a connection from addr, or returns false when addr has
// MaxConnsPerAddr already.
func (s *Server) acquireAddr(addr netip.Addr) bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.connsByAddr[addr] >= s.opts.MaxConnsPerAddr {
		return false
	}
	s.connsByAddr[addr]++
	return true
}

func (s *Server) releaseAddr(addr netip.Addr) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.connsByAddr[addr]--; s.connsByAddr[addr] <= 0 {
		delete(s.connsByAddr, addr)
	}
}

func (s *Server) acquireUser(login string) bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.connsByUser[login] >= s.opts.MaxConnsPerUser {
		return false
	}
	s.connsByUser[login]++
	return true
}

func (s *Server) releaseUser(login string) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.connsByUser[login]--; s.connsByUser[login] <= 0 {
		delete(s.connsByUser, login)
	}
}

func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	addr := remoteAddr(c.NetConn())
	if !s.acquireAddr(addr) {
		if s.rejectLog.Allow(addr.String()) {
			s.logger.Info("imap: too many connections; further rejections of this address within a minute are not logged", "remote_addr", addr.String())
		}
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Code: imap.ResponseCodeLimit, Text: "Too many connections from your address"}
	}
	sess := &session{srv: s, conn: c, addr: addr}
	sess.loginTimer = time.AfterFunc(s.opts.LoginTimeout, sess.loginTimedOut)
	return sess, nil, nil
}
