package webui

import "github.com/heimwolke/heimwolke/packages/control"

// rebindView is the dashboard's view of the agent's check of the router's
// DNS rebind protection.
type rebindView struct {
	// State is the agent's code from NetworkStatus.Rebind, and Name the
	// checked name.
	State, Name string

	// Key is the catalog prefix of the state's ".title" and ".meaning"
	// texts: "rebind.STATE", or "rebind.unrecognized" for a state that the
	// catalog has no texts for.
	Key string

	// Card is the CSS class of the card: "done", "failed" or "waiting".
	Card string

	// Blocked is set when the router hides the name, which is when the
	// dashboard shows the steps that add an exception.
	Blocked bool

	// ActionKey is the catalog key of the next steps for a state other
	// than ok and blocked, empty when the catalog has none.
	ActionKey string
}

// rebindCards maps the agent's rebind states to the CSS class of the card.
var rebindCards = map[string]string{
	"ok":      "done",
	"blocked": "failed",
	"unknown": "waiting",
}

// newRebindView returns the view of ns's rebind check, nil when the agent
// has not checked. hostname is the name to show when the status names
// none.
func (h *Handler) newRebindView(ns *control.NetworkStatus, hostname string) *rebindView {
	if ns == nil || ns.Rebind == "" {
		return nil
	}
	v := &rebindView{State: ns.Rebind, Name: ns.RebindName, Key: "rebind." + ns.Rebind, Card: rebindCards[ns.Rebind]}
	if v.Name == "" {
		v.Name = hostname
	}
	if v.Card == "" || !h.hasMessage(v.Key+".title") {
		// An agent newer than this web interface may report a state that
		// the catalog does not know yet.
		v.Key, v.Card = "rebind.unrecognized", "waiting"
	}
	v.Blocked = v.Key == "rebind.blocked"
	if h.hasMessage(v.Key + ".action") {
		v.ActionKey = v.Key + ".action"
	}
	return v
}
