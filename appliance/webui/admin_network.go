package webui

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heimwolke/heimwolke/packages/control"
)

// networkView is the dashboard's view of the agent's NetworkStatus.
type networkView struct {
	*control.NetworkStatus

	// ClassKey is the catalog prefix of the class's ".title", ".meaning"
	// and ".action" texts: "network.class.CODE", or an admin.network key
	// when the catalog has no texts for Class.
	ClassKey string

	// Public is set for the class that needs no action from the household.
	Public bool
}

// newNetworkView returns the view of ns, nil when ns is nil.
func (h *Handler) newNetworkView(ns *control.NetworkStatus) *networkView {
	if ns == nil {
		return nil
	}
	v := &networkView{NetworkStatus: ns, ClassKey: "network.class." + ns.Class, Public: ns.Class == control.NetworkPublic}
	switch {
	case ns.Class == "":
		v.ClassKey = "admin.network.unchecked"
	case !h.hasMessage(v.ClassKey + ".title"):
		// An agent newer than this web interface may report a class
		// that the catalog does not know yet.
		v.ClassKey = "admin.network.unrecognized"
	}
	return v
}

// hasMessage reports whether the catalog has a message for key.
func (h *Handler) hasMessage(key string) bool {
	return h.catalog["en"][key] != ""
}

// recordView is one DNS record on the dashboard.
type recordView struct {
	control.RecordStatus

	// StateKey is the catalog key of State, and HintKey the key of the
	// text that explains a state other than "published", empty for that.
	StateKey, HintKey string

	// Card is the CSS class of the record's card: "done", "waiting" or
	// "failed".
	Card string
}

// recordCards maps the record states that the agent reports to the CSS
// class of their card.
var recordCards = map[string]string{
	"published": "done",
	"pending":   "waiting",
	"missing":   "failed",
	"wrong":     "failed",
}

func newRecordViews(records []control.RecordStatus) []recordView {
	views := make([]recordView, 0, len(records))
	for _, r := range records {
		v := recordView{RecordStatus: r, StateKey: "admin.dns.record.state." + r.State, Card: recordCards[r.State]}
		switch {
		case v.Card == "":
			v.StateKey, v.Card = "admin.unknown", "waiting"
		case r.State != "published":
			v.HintKey = "admin.dns.record.hint." + r.State
		}
		views = append(views, v)
	}
	return views
}

// portsView is the dashboard's view of the router's port mappings.
type portsView struct {
	// Router is the protocol and address of the router that responded,
	// empty when none responded.
	Router string

	Mapped []mappedPort
	Closed []closedPorts
}

// NeedsAction reports whether a port is closed for a reason that the
// household can fix, which is when the dashboard shows the manual steps.
func (v *portsView) NeedsAction() bool {
	return slices.ContainsFunc(v.Closed, func(c closedPorts) bool { return c.ActionKey != "" })
}

// mappedPort is a port that the router forwards to the box.
type mappedPort struct {
	Port     uint16
	Protocol string

	// Expires is zero for a mapping without a lifetime.
	Expires time.Time
}

// closedPorts are the unmapped ports that share a reason, with the
// instructions that open them.
type closedPorts struct {
	// Reason is the agent's reason code, and ReasonKey the catalog prefix
	// of its ".title" and ".text".
	Reason    string
	ReasonKey string

	// ActionKey is the catalog key of the steps that open the ports,
	// empty for a reason that needs none, such as a request still under
	// way.
	ActionKey string

	// Ports lists the port numbers, "25, 465, 587", and Count is their
	// number.
	Ports string
	Count int

	// Errors are the router's distinct error responses for these ports.
	Errors []string
}

// newPortsView returns the view of ps, nil when ps is nil. Unmapped ports
// are grouped by reason, so that the steps for a router that ignores the
// requests show once and not for every port. A reason whose text names
// {port} gets a group per port.
func (h *Handler) newPortsView(ps *control.PortsStatus) *portsView {
	if ps == nil {
		return nil
	}
	v := &portsView{Router: routerName(ps.Router)}
	groups := map[string]int{} // group key to index in v.Closed
	for _, p := range ps.Ports {
		if p.Mapped {
			v.Mapped = append(v.Mapped, mappedPort{Port: p.Port, Protocol: protocolName(p.Protocol), Expires: p.Expires})
			continue
		}

		reasonKey := "router.reason." + p.Reason
		if p.Reason == "" || !h.hasMessage(reasonKey+".title") {
			reasonKey = "admin.ports.reason_unknown"
		}
		port := strconv.Itoa(int(p.Port))
		group := reasonKey
		if strings.Contains(h.catalog["en"][reasonKey+".text"], "{port}") {
			group += "/" + port
		}

		i, ok := groups[group]
		if !ok {
			i = len(v.Closed)
			groups[group] = i
			v.Closed = append(v.Closed, closedPorts{Reason: p.Reason, ReasonKey: reasonKey, Ports: port, Count: 1})
			if h.hasMessage(reasonKey + ".action") {
				v.Closed[i].ActionKey = reasonKey + ".action"
			}
		} else {
			v.Closed[i].Ports += ", " + port
			v.Closed[i].Count++
		}
		if p.Error != "" && !slices.Contains(v.Closed[i].Errors, p.Error) {
			v.Closed[i].Errors = append(v.Closed[i].Errors, p.Error)
		}
	}
	return v
}

// protocolNames are the usual spellings of the port mapping protocols that
// the agent reports.
var protocolNames = map[string]string{
	"upnp":      "UPnP",
	"upnp-igd1": "UPnP",
	"upnp-igd2": "UPnP",
	"pcp":       "PCP",
	"nat-pmp":   "NAT-PMP",
}

func protocolName(code string) string {
	if name, ok := protocolNames[code]; ok {
		return name
	}
	return code
}

// routerName spells the protocol in the agent's "PROTOCOL ADDRESS" router
// description as protocolName does.
func routerName(router string) string {
	protocol, address, found := strings.Cut(router, " ")
	if !found {
		return protocolName(protocol)
	}
	return protocolName(protocol) + " " + address
}
