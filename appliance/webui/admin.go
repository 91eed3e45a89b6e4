package webui

import (
	"net/http"
	"sync"
	"time"

	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/logging"
)

// adminConfig is the part of Options that the owner's administration pages
// use.
type adminConfig struct {
	agentSocket string
	dataDir     string
	rebooter    Rebooter
	resetter    Resetter // nil without a data folder
	logs        *logging.Ring
}

func newAdminConfig(opts Options) adminConfig {
	c := adminConfig{
		agentSocket: opts.AgentSocket,
		dataDir:     opts.DataDir,
		rebooter:    opts.Rebooter,
		resetter:    opts.Resetter,
		logs:        opts.Logs,
	}
	if c.agentSocket == "" {
		c.agentSocket = control.AgentSocket
	}
	if c.rebooter == nil {
		c.rebooter = &GokrazyRebooter{SocketPath: GokrazySocket, Logger: opts.Logger}
	}
	if c.resetter == nil && c.dataDir != "" {
		c.resetter = FolderResetter{Dir: c.dataDir}
	}
	return c
}

// adminPages serves the owner's administration pages: the dashboard, the
// people, the settings, the reboot and the factory reset.
type adminPages struct {
	*Handler
	adminConfig

	agent *control.Client

	// started is when the handler was made, close to heimwolke's start.
	started time.Time

	// resetMu lets one factory reset run at a time.
	resetMu sync.Mutex

	// settingsMu lets one change of the agent's settings run at a time,
	// from reading them to sending them back.
	settingsMu sync.Mutex
}

// registerAdminRoutes adds the owner's administration pages.
func (h *Handler) registerAdminRoutes() {
	a := &adminPages{Handler: h, adminConfig: h.admin, agent: control.NewClient(h.admin.agentSocket), started: h.now()}

	h.mux.HandleFunc("GET /admin", a.dashboard)
	h.mux.HandleFunc("GET /admin/{$}", a.dashboard)
	h.mux.HandleFunc("POST /admin/reboot", a.reboot)

	h.mux.HandleFunc("GET /admin/people", a.peoplePage)
	h.mux.HandleFunc("POST /admin/people", a.addMember)
	h.mux.HandleFunc("POST /admin/people/{id}/delete", a.deleteMember)

	h.mux.HandleFunc("GET /admin/settings", a.settingsPage)
	h.mux.HandleFunc("POST /admin/settings/dns", a.saveDNSSettings)
	h.mux.HandleFunc("POST /admin/settings/mail", a.saveMailSettings)
	h.mux.HandleFunc("POST /admin/settings/services", a.saveServiceSettings)

	h.mux.HandleFunc("GET /admin/reset", a.resetPage)
	h.mux.HandleFunc("POST /admin/reset", a.reset)
}

// requireOwner returns the visit of the logged-in owner. It redirects a
// visitor without a session to the login, shows members a 403 page, and
// returns nil in both cases.
func (a *adminPages) requireOwner(w http.ResponseWriter, r *http.Request) *visit {
	v := requireSession(w, r)
	if v == nil {
		return nil
	}
	if v.session.User.Role != accounts.RoleOwner {
		a.log.Info("admin page denied to a member", "user", v.session.User.Name, "path", r.URL.Path, "source", v.source)
		a.renderMessage(w, v, http.StatusForbidden, "admin.forbidden.title", "admin.forbidden", "/account")
		return nil
	}
	return v
}

// adminNotices maps the ?notice= values of the admin pages to catalog keys.
// Only these are shown, so a link cannot put arbitrary text on a page.
var adminNotices = map[string]string{
	"member_added":   "admin.people.added",
	"member_deleted": "admin.people.deleted",

	"settings_" + settingsFormDNS:      "admin.settings.saved.dns",
	"settings_" + settingsFormMail:     "admin.settings.saved.mail",
	"settings_" + settingsFormServices: "admin.settings.saved.services",
}

func (a *adminPages) adminNotice(lang string, r *http.Request) string {
	key, ok := adminNotices[r.URL.Query().Get("notice")]
	if !ok {
		return ""
	}
	return a.t(lang, key)
}

// confirmData is the content of the page that requests a confirmation
// before a POST does something that cannot be undone. The page sends the
// same POST again with confirm=yes.
type confirmData struct {
	Text       string
	Action     string
	Button     string
	CancelHref string
}

// confirmed reports whether the form came from the confirmation page.
func confirmed(r *http.Request) bool {
	return r.PostForm.Get("confirm") == "yes"
}

// renderConfirm shows the confirmation page. title and button are catalog
// keys, text is translated already.
func (a *adminPages) renderConfirm(w http.ResponseWriter, v *visit, title, text, action, button, cancel string) {
	p := a.newPage(v, title)
	p.Data = confirmData{Text: text, Action: action, Button: p.T(button), CancelHref: cancel}
	a.render(w, http.StatusOK, "admin_confirm", p)
}
