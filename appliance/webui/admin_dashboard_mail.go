package webui

import (
	"context"
	"strings"
)

// Mail states in mailView.State.
const (
	mailOn       = "on"        // the household chose mail and has a domain
	mailOff      = "off"       // the household did not choose mail
	mailNoDomain = "no_domain" // mail was chosen, but needs a domain first
	mailUnknown  = "unknown"   // the agent's settings could not be read
)

// mailView is the dashboard's card on the mail service.
//
// NOTE: The state follows the settings, as heimwolke's mail servers do: they
// serve while the settings name a domain and have mail on. A port that
// failed to open shows only in the log at the end of the page.
type mailView struct {
	State  string
	Domain string

	// Relay is the host of the provider's outgoing mail server, empty when
	// the box delivers mail to the recipients' servers itself.
	Relay string

	// Queued is the number of recipients whose mail waits for delivery,
	// and QueueKnown is false without a queue or when listing it failed.
	Queued     int
	QueueKnown bool
}

// mailView reads the mail settings from the agent and counts the queue.
func (a *adminPages) mailView(ctx context.Context) mailView {
	settings, err := a.settings.get(ctx)
	if err != nil {
		a.log.Warn("reading the agent's settings for the mail card failed", "socket", a.agentSocket, "err", err)
		return mailView{State: mailUnknown}
	}

	v := mailView{Domain: strings.TrimSuffix(settings.Domain, ".")}
	switch {
	case !settings.Services.Mail:
		v.State = mailOff
	case v.Domain == "":
		v.State = mailNoDomain
	default:
		v.State = mailOn
	}
	if relay := settings.Mail.Smarthost; relay != nil {
		v.Relay = relay.Host
	}

	if a.mail.Queue != nil {
		entries, err := a.mail.Queue.Entries(ctx)
		if err != nil {
			a.log.Warn("listing the mail queue for the dashboard failed", "err", err)
		} else {
			v.Queued, v.QueueKnown = len(entries), true
		}
	}
	return v
}
