package webui

import (
	"net/http"

	"github.com/heimwolke/heimwolke/packages/control"
)

// routerDraft is the router step's form.
type routerDraft struct {
	// PortMapping allows the agent to open the ports on the router.
	PortMapping bool
}

// routerData is the content of the router step.
type routerData struct {
	Router routerDraft
	// Ports are the ports of every service, which the page lists with
	// what each carries.
	Ports []control.Port
	// LANOnly means that the household chose no domain, so that the ports
	// need not be open yet.
	LANOnly bool
}

// allServices returns the settings with every service on.
func allServices() control.ServiceSettings {
	return control.ServiceSettings{Website: true, Mail: true, CalendarContacts: true, Files: true, Chat: true}
}

// defaultServices is what the services step offers checked: every service
// that this version runs. Chat stays off until the box has a chat server.
func defaultServices() control.ServiceSettings {
	s := allServices()
	s.Chat = false
	return s
}

// routerPorts returns the ports that the router step lists. These are the
// ports of every service, because the services step comes later, except
// the chat ports while chat is off, as it is by default.
func routerPorts(chosen control.ServiceSettings) []control.Port {
	s := allServices()
	s.Chat = chosen.Chat
	return s.Ports()
}

func (h *Handler) routerStep(w http.ResponseWriter, r *http.Request) {
	d := h.draftOf(r)
	if !needSteps(w, r, d, stepRouter) {
		return
	}
	p := h.wizardPage(visitOf(r), d.Lang, stepRouter)
	p.Data = routerData{Router: d.Router, Ports: routerPorts(d.Services), LANOnly: d.Domain.LANOnly()}
	h.render(w, http.StatusOK, "setup_router", p)
}

// saveRouterStep takes the checkbox, which a browser leaves out of the
// form when it is off.
func (h *Handler) saveRouterStep(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	d := h.draftOf(r)
	if !needSteps(w, r, d, stepRouter) {
		return
	}
	d.Router.PortMapping = r.PostForm.Get("port_mapping") == "on"
	d.Saved[stepRouter] = true
	h.drafts.put(v.visitor, d)
	nextStep(w, r, stepRouter)
}
