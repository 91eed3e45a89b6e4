package webui

import (
	"errors"
	"net/http"
	"strings"

	"github.com/heimwolke/heimwolke/appliance/mail/aliases"
	"github.com/heimwolke/heimwolke/appliance/mail/queue"
	"github.com/heimwolke/heimwolke/packages/accounts"
)

const mailAdminPath = "/admin/mail"

// mailAdminNotices maps the ?notice= values of /admin/mail to catalog keys.
var mailAdminNotices = map[string]string{
	"alias_added":    "mailui.admin.alias.added",
	"alias_removed":  "mailui.admin.alias.removed",
	"catchall_saved": "mailui.admin.catchall.saved",
}

// mailAdminData is the content of /admin/mail.
type mailAdminData struct {
	Domains []string
	// ExampleDomain is the first domain, for the hint of the alias form.
	ExampleDomain string
	Users         []accounts.User
	Aliases       []aliases.Alias
	CatchAlls     []mailCatchAllRow
	// Address and Login refill the alias form after an error.
	Address, Login string
	// HasQueue is false when the page has no queue to show.
	HasQueue bool
	Queue    []mailQueueRow
}

// mailCatchAllRow is a domain and its catch-all user, "" for none.
type mailCatchAllRow struct {
	Domain string
	Login  string
}

// mailQueueRow is a queued recipient with its last error in plain words.
type mailQueueRow struct {
	queue.Entry
	Reason string
}

// requireMailOwner returns the visit of the logged-in owner, or writes the
// login redirect, the 403 page or, without MailServices.Aliases, the 404
// page and returns nil.
func (h *Handler) requireMailOwner(w http.ResponseWriter, r *http.Request) *visit {
	v := (&adminPages{Handler: h}).requireOwner(w, r)
	if v != nil && h.mail.Aliases == nil {
		h.notFound(w, r)
		return nil
	}
	return v
}

func (h *Handler) mailAdminPage(w http.ResponseWriter, r *http.Request) {
	v := h.requireMailOwner(w, r)
	if v == nil {
		return
	}
	p, err := h.mailAdminPageData(r, v)
	if err != nil {
		h.internalError(w, v, "showing mail settings", err)
		return
	}
	if key, ok := mailAdminNotices[r.URL.Query().Get("notice")]; ok {
		p.Notice = p.T(key)
	}
	h.render(w, http.StatusOK, "mail_admin", p)
}

// mailAdminPageData collects the users, aliases, catch-alls and queue.
func (h *Handler) mailAdminPageData(r *http.Request, v *visit) (*page, error) {
	ctx := r.Context()
	p := h.newPage(v, "mailui.admin.title")
	d := mailAdminData{Domains: h.mail.Aliases.Domains(), HasQueue: h.mail.Queue != nil, ExampleDomain: "example.org"}
	if len(d.Domains) > 0 {
		d.ExampleDomain = d.Domains[0]
	}

	var err error
	if d.Users, err = h.accounts.Users(ctx); err != nil {
		return nil, err
	}
	if d.Aliases, err = h.mail.Aliases.List(ctx); err != nil {
		return nil, err
	}
	catchAlls, err := h.mail.Aliases.CatchAlls(ctx)
	if err != nil {
		return nil, err
	}
	for _, domain := range d.Domains {
		row := mailCatchAllRow{Domain: domain}
		for _, c := range catchAlls {
			if c.Domain == domain {
				row.Login = c.Login
			}
		}
		d.CatchAlls = append(d.CatchAlls, row)
	}

	if h.mail.Queue != nil {
		entries, err := h.mail.Queue.Entries(ctx)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			d.Queue = append(d.Queue, mailQueueRow{Entry: e, Reason: p.T(queueReasonKey(e))})
		}
	}
	p.Data = &d
	return p, nil
}

func (h *Handler) addMailAlias(w http.ResponseWriter, r *http.Request) {
	v := h.requireMailOwner(w, r)
	if v == nil {
		return
	}
	address := strings.TrimSpace(r.PostFormValue("address"))
	login := r.PostFormValue("login")

	err := h.mail.Aliases.Add(r.Context(), address, login)
	if err == nil {
		h.log.Info("mail alias added", "user", v.session.User.Name, "address", address, "login", login)
		http.Redirect(w, r, mailAdminPath+"?notice=alias_added", http.StatusSeeOther)
		return
	}
	key := mailAliasErrorKey(err)
	if key == "" {
		h.internalError(w, v, "adding mail alias", err)
		return
	}
	h.renderMailAdminError(w, r, v, "address", h.t(v.lang, key, "address", address, "login", login, "domains", strings.Join(h.mail.Aliases.Domains(), ", ")), address, login)
}

// mailAliasErrorKey returns the catalog key that explains err to the
// owner, or "" for an internal error.
func mailAliasErrorKey(err error) string {
	switch {
	case errors.Is(err, aliases.ErrExists):
		return "mailui.admin.alias.taken"
	case errors.Is(err, aliases.ErrUnknownLogin):
		return "mailui.admin.alias.unknown_user"
	case errors.Is(err, aliases.ErrInvalidAddress):
		return "mailui.admin.alias.invalid"
	}
	return ""
}

// renderMailAdminError shows the page again with the message at field,
// keeping what the owner typed.
func (h *Handler) renderMailAdminError(w http.ResponseWriter, r *http.Request, v *visit, field, message, address, login string) {
	p, err := h.mailAdminPageData(r, v)
	if err != nil {
		h.internalError(w, v, "showing mail settings", err)
		return
	}
	d := p.Data.(*mailAdminData)
	d.Address, d.Login = address, login
	p.Errors.add(field, message)
	h.render(w, http.StatusUnprocessableEntity, "mail_admin", p)
}

func (h *Handler) removeMailAlias(w http.ResponseWriter, r *http.Request) {
	v := h.requireMailOwner(w, r)
	if v == nil {
		return
	}
	address := r.PostFormValue("address")
	err := h.mail.Aliases.Remove(r.Context(), address)
	switch {
	case errors.Is(err, aliases.ErrNotFound):
		// Removed in another tab already: the result is the same.
	case err != nil:
		h.internalError(w, v, "removing mail alias", err)
		return
	default:
		h.log.Info("mail alias removed", "user", v.session.User.Name, "address", address)
	}
	http.Redirect(w, r, mailAdminPath+"?notice=alias_removed", http.StatusSeeOther)
}

// setMailCatchAll sets or, with an empty login, clears the catch-all of
// a domain.
func (h *Handler) setMailCatchAll(w http.ResponseWriter, r *http.Request) {
	v := h.requireMailOwner(w, r)
	if v == nil {
		return
	}
	domain := r.PostFormValue("domain")
	login := r.PostFormValue("login")

	var err error
	if login == "" {
		err = h.mail.Aliases.ClearCatchAll(r.Context(), domain)
	} else {
		err = h.mail.Aliases.SetCatchAll(r.Context(), domain, login)
	}
	if mailAliasErrorKey(err) != "" {
		msg := h.t(v.lang, "mailui.admin.catchall.invalid", "domain", domain, "login", login)
		h.renderMailAdminError(w, r, v, "catchall", msg, "", "")
		return
	}
	if err != nil {
		h.internalError(w, v, "setting mail catch-all", err)
		return
	}
	h.log.Info("mail catch-all set", "user", v.session.User.Name, "domain", domain, "login", login)
	http.Redirect(w, r, mailAdminPath+"?notice=catchall_saved#catchall", http.StatusSeeOther)
}

// queueReasonKey returns the catalog key that explains in plain words why
// e waits. The patterns match the error texts of appliance/mail/queue.
func queueReasonKey(e queue.Entry) string {
	msg := e.LastError
	switch {
	case msg == "":
		return "mailui.queue.reason.waiting"
	case strings.Contains(msg, "logging in to smarthost"):
		return "mailui.queue.reason.relay_login"
	case e.LastSmarthost && (strings.Contains(msg, "connecting to") || strings.Contains(msg, "greeting from") || strings.Contains(msg, "TLS")):
		return "mailui.queue.reason.relay_unreachable"
	case e.LastSmarthost:
		return "mailui.queue.reason.relay_rejected"
	case strings.Contains(msg, "MX"), strings.Contains(msg, "accepts no mail"):
		return "mailui.queue.reason.no_server"
	case strings.Contains(msg, "connecting to"), strings.Contains(msg, "greeting from"):
		return "mailui.queue.reason.unreachable"
	case strings.Contains(msg, "TLS"):
		return "mailui.queue.reason.tls"
	case strings.Contains(msg, "RCPT TO"), strings.Contains(msg, "MAIL FROM"), strings.Contains(msg, "DATA"), strings.Contains(msg, "end of data"):
		return "mailui.queue.reason.deferred"
	}
	return "mailui.queue.reason.other"
}
