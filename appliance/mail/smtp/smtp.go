// Package smtp is the box's SMTP server: inbound mail on port 25 (RFC 5321)
// for the box's own addresses only, and message submission on 465 with
// implicit TLS and 587 with STARTTLS (RFC 6409, RFC 8314) for its users. It
// is never an open relay: only an authenticated user's mail leaves the box,
// through the outbound queue.
package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/heimwolke/heimwolke/appliance/mail/auth"
	"github.com/heimwolke/heimwolke/appliance/mail/queue"
	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/ratelimit"
)

// Deliverer stores a message in a user's mailbox. The message store
// implements it.
type Deliverer interface {
	// Deliver stores msg in the folder ("INBOX", "Junk") of the user with
	// the login name login. It returns only after the message is durably
	// stored, because the server sends 250 right after it. An error
	// matching store.ErrNoSuchUser, for an account deleted after RCPT,
	// becomes 550 5.1.1 when login is the message's only recipient.
	Deliver(ctx context.Context, login, folder string, msg io.Reader) error
}

// MultiDeliverer is a Deliverer that stores one message for several users
// all or nothing. The message store implements it. With a Deliverer that
// lacks it, a message for several local users is delivered to one user
// after the other.
type MultiDeliverer interface {
	Deliverer
	// DeliverAll stores msg in folder for every login in logins, or for
	// none of them when it returns an error. Like Deliver, it returns only
	// after the message is durably stored.
	DeliverAll(ctx context.Context, logins []string, folder string, msg io.Reader) error
}

// Outbox accepts submitted mail for remote recipients. *queue.Queue
// implements it.
type Outbox interface {
	// Enqueue stores the message durably and returns its queue id. header
	// followed by body is the message. body reads a spool file that is
	// closed when Enqueue returns, so Enqueue must not keep it.
	Enqueue(ctx context.Context, env queue.Envelope, header []byte, body io.ReadSeeker) (int64, error)
}

// PasswordChecker checks app passwords. *accounts.Store implements it.
type PasswordChecker interface {
	CheckAppPassword(ctx context.Context, name, secret string, source netip.Addr, protocol string, scope accounts.Scope) (*accounts.User, error)
}

// Options configures a Server. Fields marked required must be set; the
// zero value of the others selects the documented default.
type Options struct {
	// Hostname is the box's mail host name, for the greeting, Received
	// fields and the authserv-id. Required.
	Hostname string
	// TLSConfig contains the certificate for STARTTLS and port 465.
	// Required.
	TLSConfig *tls.Config
	// Directory maps addresses to users. Required.
	Directory Directory
	// Deliverer stores mail for local users. Required.
	Deliverer Deliverer
	// Outbox queues submitted mail for remote recipients. Required for
	// submission.
	Outbox Outbox
	// Passwords checks submission logins. Required for submission.
	Passwords PasswordChecker
	// Checker runs SPF, DKIM and DMARC on inbound mail. Nil skips the
	// checks and adds no Authentication-Results field.
	Checker *auth.Checker

	// SpoolDir is the folder where each message is written during DATA,
	// before the checks and the delivery read it back. New creates it with
	// mode 0700 and removes the files that a crash left in it. Set it to a
	// folder on persistent storage, such as the mail data folder's
	// "spool": the default, a new folder in os.TempDir that Close removes,
	// is in RAM where /tmp is a tmpfs.
	SpoolDir string
	// MaxMessageBytes is the largest message accepted, advertised with
	// SIZE (RFC 1870). Default 40 MiB.
	MaxMessageBytes int64
	// MaxHeaderBytes is the largest header section accepted, in bytes.
	// The server keeps only the header section of a message in memory.
	// Default 256 KiB.
	MaxHeaderBytes int
	// MaxRecipients is the most recipients of one message. RFC 5321
	// section 4.5.3.1.8 requires at least 100. Default 100.
	MaxRecipients int
	// MaxConnections is the most connections at once per listener.
	// Default 200.
	MaxConnections int
	// MaxConnectionsPerAddress is the most connections at once from one
	// source address per listener. Default 10.
	MaxConnectionsPerAddress int
	// MessagesPerHour is how many messages one source address (port 25)
	// or one user (submission) may send per hour on average, with bursts
	// of a tenth of it. Default 600.
	MessagesPerHour int
	// CommandTimeout is how long the server waits for a command or a
	// data line. RFC 5321 section 4.5.3.2.7 sets at least 5 minutes.
	// Default 5 minutes.
	CommandTimeout time.Duration
	// Logger receives connection events and errors. Default
	// slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 40 << 20
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 256 << 10
	}
	if o.MaxRecipients <= 0 {
		o.MaxRecipients = 100
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 200
	}
	if o.MaxConnectionsPerAddress <= 0 {
		o.MaxConnectionsPerAddress = 10
	}
	if o.MessagesPerHour <= 0 {
		o.MessagesPerHour = 600
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

func (o Options) validate() error {
	var errs []error
	if o.Hostname == "" {
		errs = append(errs, errors.New("missing Hostname: set the box's mail host name"))
	}
	if o.TLSConfig == nil {
		errs = append(errs, errors.New("missing TLSConfig: STARTTLS needs a certificate"))
	}
	if o.Directory == nil {
		errs = append(errs, errors.New("missing Directory"))
	}
	if o.Deliverer == nil {
		errs = append(errs, errors.New("missing Deliverer"))
	}
	return errors.Join(errs...)
}

// Server serves SMTP on any number of listeners. It is safe for concurrent
// use.
type Server struct {
	opts       Options
	log        *slog.Logger
	perAddress *ratelimit.Limiter
	perUser    *ratelimit.Limiter
	spool      *spool
	mu         sync.Mutex
	servers    []*gosmtp.Server
	sessionSeq uint64
}

// New checks opts and returns a Server.
func New(opts Options) (*Server, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("configuring SMTP server: %w", err)
	}
	sp, err := openSpool(opts.SpoolDir, opts.MaxHeaderBytes, opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("configuring SMTP server: %w", err)
	}
	rate := float64(opts.MessagesPerHour) / 3600
	burst := max(1, opts.MessagesPerHour/10)
	return &Server{
		opts:       opts,
		log:        opts.Logger,
		perAddress: ratelimit.New(rate, burst, 10000),
		perUser:    ratelimit.New(rate, burst, 10000),
		spool:      sp,
	}, nil
}

// Mode is the service of a listener.
type Mode int

const (
	// Inbound is port 25: mail from other servers for local addresses,
	// with optional STARTTLS and no AUTH.
	Inbound Mode = iota
	// Submission is port 587: STARTTLS, then AUTH, then mail to anyone.
	Submission
	// SubmissionTLS is port 465: TLS from the first byte (RFC 8314
	// section 3.3), then AUTH, then mail to anyone.
	SubmissionTLS
)

func (m Mode) String() string {
	return [...]string{"smtp", "submission", "submissions"}[m]
}

// Serve accepts connections on l until Close, and serves mode on them.
func (s *Server) Serve(l net.Listener, mode Mode) error {
	if mode != Inbound && (s.opts.Outbox == nil || s.opts.Passwords == nil) {
		return fmt.Errorf("serving %s: Options.Outbox and Options.Passwords are required for submission", mode)
	}

	// Port 25's clients are other mail servers, so an IPv6 one counts by
	// its /64, as for the message rate.
	keyOf := singleAddress
	if mode == Inbound {
		keyOf = sourceNetwork
	}
	ll := newLimitListener(l, s.opts.MaxConnections, s.opts.MaxConnectionsPerAddress, mode != SubmissionTLS, keyOf, func(addr netip.Addr) {
		s.log.Info("connection rejected", "mode", mode.String(), "remote", addr, "reason", "too many connections")
	})
	var listener net.Listener = ll
	if mode == SubmissionTLS {
		listener = tls.NewListener(ll, s.opts.TLSConfig)
	}

	srv := gosmtp.NewServer(&backend{server: s, mode: mode})
	srv.Domain = s.opts.Hostname
	srv.TLSConfig = s.opts.TLSConfig
	srv.MaxMessageBytes = s.opts.MaxMessageBytes
	srv.MaxRecipients = s.opts.MaxRecipients
	srv.ReadTimeout = s.opts.CommandTimeout
	srv.WriteTimeout = s.opts.CommandTimeout
	srv.AllowInsecureAuth = false
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = slogPrinter{s.log.With("mode", mode.String())}

	s.mu.Lock()
	s.servers = append(s.servers, srv)
	s.mu.Unlock()

	s.log.Info("smtp listening", "mode", mode.String(), "addr", l.Addr().String())
	return srv.Serve(listener)
}

// Close closes every listener and connection, and removes the spool folder
// if New created it in os.TempDir.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, srv := range s.servers {
		if err := srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.servers = nil
	if err := s.spool.close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (s *Server) nextSessionID() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessionSeq++
	return s.sessionSeq
}

type backend struct {
	server *Server
	mode   Mode
}

func (b *backend) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	base := sessionBase{
		server: b.server,
		conn:   c,
		remote: remoteAddr(c.Conn()),
		log:    b.server.log.With("mode", b.mode.String(), "session", b.server.nextSessionID()),
	}
	base.log.Debug("session started", "remote", base.remote, "helo", c.Hostname())
	if b.mode == Inbound {
		return &inboundSession{sessionBase: base}, nil
	}
	return &submissionSession{sessionBase: base}, nil
}

// slogPrinter passes go-smtp's log lines to slog.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) {
	p.log.Info("smtp connection error", "detail", fmt.Sprintf(format, v...))
}

func (p slogPrinter) Println(v ...any) {
	p.log.Info("smtp connection error", "detail", fmt.Sprint(v...))
}
