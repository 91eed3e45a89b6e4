package webui

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/heimwolke/heimwolke/packages/control"
)

// settingsLifetime is how long the web interface reuses the settings that
// it read from the agent, so that a burst of page views sends one request.
// A domain that the wizard sent shows on the device pages after at most
// this long.
const settingsLifetime = 10 * time.Second

// agentSettings reads the household's settings from the agent's control
// API (GET /v1/settings) and keeps them for settingsLifetime.
type agentSettings struct {
	client *control.Client
	now    func() time.Time

	mu      sync.Mutex
	fetched time.Time // zero before the first successful read
	current control.Settings
}

func newAgentSettings(socket string, now func() time.Time) *agentSettings {
	return &agentSettings{client: control.NewClient(socket), now: now}
}

// get returns the agent's settings. Before the wizard sent any it returns
// zero Settings, which mean no domain and no services. When the request to
// the agent fails, get returns the settings of the last successful read,
// or the error if there was none.
func (s *agentSettings) get(ctx context.Context) (control.Settings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.fetched.IsZero() && s.now().Sub(s.fetched) < settingsLifetime {
		return s.current, nil
	}

	ctx, cancel := context.WithTimeout(ctx, agentTimeout)
	defer cancel()
	settings, err := s.client.GetSettings(ctx)
	var apiErr *control.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Code == control.CodeNoSettings:
		settings, err = control.Settings{}, nil
	case err != nil && !s.fetched.IsZero():
		return s.current, nil
	case err != nil:
		return control.Settings{}, err
	}
	s.current, s.fetched = settings, s.now()
	return settings, nil
}

// forget makes the next get read the settings from the agent, for example
// after the settings page changed them. The kept settings remain the
// fallback for a failed read.
func (s *agentSettings) forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.fetched.IsZero() {
		s.fetched = s.fetched.Add(-settingsLifetime)
	}
}

// serviceNames are the server names that the device pages give clients.
type serviceNames struct {
	// Domain is the household's domain in ASCII, empty while the box
	// serves the home network only.
	Domain string

	// MailHost serves IMAP and mail submission: mail.<domain>, as the
	// mail servers' certificate names it.
	MailHost string

	// DAVHost serves CalDAV, CardDAV and WebDAV: the domain itself.
	DAVHost string

	// MailDomain is the part after the @ of the members' addresses.
	MailDomain string
}

// LANOnly reports whether the names are the box's mDNS name, which only
// devices on the home network resolve.
func (n serviceNames) LANOnly() bool { return n.Domain == "" }

// newServiceNames returns the names for domain. An empty domain gives
// defaultHostname for everything.
func newServiceNames(domain string) serviceNames {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if domain == "" {
		return serviceNames{MailHost: defaultHostname, DAVHost: defaultHostname, MailDomain: defaultHostname}
	}
	return serviceNames{Domain: domain, MailHost: "mail." + domain, DAVHost: domain, MailDomain: domain}
}

// serviceNames returns the names for Options.Domain, or else for the
// domain in the agent's settings. When the request to the agent fails, it
// logs the error and returns the mDNS name.
func (h *Handler) serviceNames(ctx context.Context) serviceNames {
	if h.domain != "" {
		return newServiceNames(h.domain)
	}
	settings, err := h.settings.get(ctx)
	if err != nil {
		h.log.Warn("reading the agent's settings failed, device pages use the mDNS name", "name", defaultHostname, "err", err)
	}
	return newServiceNames(settings.Domain)
}
