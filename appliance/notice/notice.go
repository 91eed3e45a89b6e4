// Package notice mails the box's owner when the TLS certificate is in
// trouble: when it expires within 14 days, or when its renewal has failed for
// more than a day. It reads the agent's status over the control API and
// delivers the notice straight into the owner's inbox, at most once a day
// per problem.
package notice

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/i18n"
)

// DefaultInterval is how often a Notifier reads the agent's status when
// Options.Interval is zero.
const DefaultInterval = time.Hour

// Deliverer stores a message in a user's folder; "" is the inbox.
// *store.Store of appliance/mail/store implements it.
type Deliverer interface {
	Deliver(ctx context.Context, login, folder string, msg io.Reader) error
}

// Agent is the part of the agent's control API that a Notifier reads.
// *control.Client implements it.
type Agent interface {
	Status(ctx context.Context) (control.Status, error)
	GetSettings(ctx context.Context) (control.Settings, error)
}

// Users lists the box's accounts. *accounts.Store implements it.
type Users interface {
	Users(ctx context.Context) ([]accounts.User, error)
}

// Options configures a Notifier. The zero value of an optional field selects
// its default.
type Options struct {
	// Agent is the agent's control API. Required.
	Agent Agent
	// Users finds the owner, their login and their language. Required.
	Users Users
	// Deliverer stores the notice in the owner's inbox. Required.
	Deliverer Deliverer
	// DB is the box's SQLite database, opened with sqlitedb.Open. The
	// Notifier keeps there which notices it sent, so a restart does not
	// send them again. Required.
	DB *sql.DB

	// Interval is how often Run reads the agent's status. Default
	// DefaultInterval.
	Interval time.Duration
	// Catalog contains the notice texts. Default i18n.MustLoad().
	Catalog i18n.Catalog
	// Location is the time zone of the dates in a notice. Default
	// time.Local.
	Location *time.Location
	// Logger receives sent notices and errors that Run does not return.
	// Default slog.Default().
	Logger *slog.Logger
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Catalog == nil {
		o.Catalog = i18n.MustLoad()
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Notifier checks the certificate's state and mails the owner about
// problems. CheckNow and Run may be called from different goroutines, but
// the checks themselves run one at a time.
type Notifier struct {
	opts  Options
	log   *slog.Logger
	state *state
}

// New returns a Notifier and creates its tables in opts.DB if missing.
func New(opts Options) (*Notifier, error) {
	opts = opts.withDefaults()
	var missing []string
	if opts.Agent == nil {
		missing = append(missing, "Agent")
	}
	if opts.Users == nil {
		missing = append(missing, "Users")
	}
	if opts.Deliverer == nil {
		missing = append(missing, "Deliverer")
	}
	if opts.DB == nil {
		missing = append(missing, "DB")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("creating notifier: missing Options fields %v: set them to the agent's client, the accounts store, the mail store and the database", missing)
	}

	st, err := openState(context.Background(), opts.DB)
	if err != nil {
		return nil, err
	}
	return &Notifier{opts: opts, log: opts.Logger, state: st}, nil
}

// Run checks at once and then every Options.Interval until ctx is canceled,
// and returns nil then. A failed check is logged and retried at the next
// interval.
func (n *Notifier) Run(ctx context.Context) error {
	n.log.Info("notice checks started", "interval", n.opts.Interval)
	ticker := time.NewTicker(n.opts.Interval)
	defer ticker.Stop()
	for {
		if err := n.CheckNow(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("notice check failed", "err", err)
		}
		select {
		case <-ctx.Done():
			n.log.Info("notice checks stopped")
			return nil
		case <-ticker.C:
		}
	}
}

// CheckNow reads the agent's status once and, when the certificate has a
// problem that no notice reported within the last day, delivers a notice to
// the owner. It returns nil when there is nothing to report, and also when
// the box cannot send a notice yet (no owner, no domain, mail turned off).
func (n *Notifier) CheckNow(ctx context.Context) error {
	n.state.mu.Lock()
	defer n.state.mu.Unlock()

	status, err := n.opts.Agent.Status(ctx)
	if err != nil {
		return fmt.Errorf("reading the agent's status: %w", err)
	}
	now := n.opts.Now()
	p, err := n.findProblem(ctx, status.Certificate, now)
	if err != nil || p == nil {
		return err
	}

	due, err := n.state.due(ctx, p.kind, now)
	if err != nil || !due {
		return err
	}
	return n.send(ctx, p, now)
}

// findProblem records when the renewal error was first seen and returns the
// certificate's problem, nil when there is none to report.
func (n *Notifier) findProblem(ctx context.Context, c *control.CertificateStatus, now time.Time) (*problem, error) {
	if c == nil || c.Local {
		// The box's own CA serves only the home network, and the admin page
		// shows how to handle it, so a local certificate gets no mail.
		return nil, n.state.clearError(ctx)
	}
	if c.LastError == "" {
		return classify(c, time.Time{}, now), n.state.clearError(ctx)
	}

	errorSince, err := n.state.errorSince(ctx, now)
	if err != nil {
		return nil, err
	}
	return classify(c, errorSince, now), nil
}

// send composes the notice for the owner and delivers it, then records it.
func (n *Notifier) send(ctx context.Context, p *problem, now time.Time) error {
	owner, err := n.owner(ctx)
	if err != nil || owner == nil {
		return err
	}
	settings, err := n.opts.Agent.GetSettings(ctx)
	if err != nil && !isNoSettings(err) {
		return fmt.Errorf("reading the agent's settings: %w", err)
	}
	domain := strings.TrimSuffix(settings.Domain, ".")
	if domain == "" {
		n.log.Info("certificate notice not sent: no domain set up yet", "problem", p.kind)
		return nil
	}
	if !settings.Services.Mail {
		n.log.Info("certificate notice not sent: mail is turned off", "problem", p.kind)
		return nil
	}

	msg, err := n.compose(p, owner, domain, now)
	if err != nil {
		return err
	}
	// NOTE: a crash between Deliver and markSent sends this notice again
	// after the restart; losing a notice would be worse.
	if err := n.opts.Deliverer.Deliver(ctx, owner.Name, "", msg); err != nil {
		return fmt.Errorf("delivering certificate notice to %q: %w", owner.Name, err)
	}
	if err := n.state.markSent(ctx, p.kind, now); err != nil {
		return err
	}
	n.log.Info("certificate notice sent", "problem", p.kind, "reason", p.reason, "login", owner.Name)
	return nil
}

// isNoSettings reports whether err means that the setup wizard has not sent
// the agent any settings yet. Over the socket, *control.Client returns an
// *control.Error with CodeNoSettings for that.
func isNoSettings(err error) bool {
	var apiErr *control.Error
	if errors.As(err, &apiErr) {
		return apiErr.Code == control.CodeNoSettings
	}
	return errors.Is(err, control.ErrNoSettings)
}

// owner returns the box's owner, nil when the setup has not created one.
func (n *Notifier) owner(ctx context.Context) (*accounts.User, error) {
	users, err := n.opts.Users.Users(ctx)
	if err != nil {
		return nil, fmt.Errorf("finding the owner for a certificate notice: %w", err)
	}
	for i := range users {
		if users[i].Role == accounts.RoleOwner {
			return &users[i], nil
		}
	}
	n.log.Info("certificate notice not sent: no owner account yet")
	return nil, nil
}
