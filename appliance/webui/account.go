package webui

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// accountData is the content of the member page.
type accountData struct {
	AppPasswords []appPasswordRow

	// NewSecret is an app password that was just created, shown once.
	NewSecret *newSecret

	// AppName and Scopes refill the app password form after an error.
	AppName string
	Scopes  map[string]bool
}

type appPasswordRow struct {
	ID       int64
	Name     string
	Services string
	Created  time.Time
	LastUsed time.Time // zero: never used
}

type newSecret struct {
	Name, Secret string
}

// scopeNames pairs each app password scope with its form value, which is
// also the catalog key suffix.
var scopeNames = []struct {
	scope accounts.Scope
	name  string
}{{accounts.ScopeMail, "mail"}, {accounts.ScopeDAV, "dav"}, {accounts.ScopeXMPP, "xmpp"}}

// requireSession returns the visit, or redirects to the login and returns
// nil.
func requireSession(w http.ResponseWriter, r *http.Request) *visit {
	v := visitOf(r)
	if v.session == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	return v
}

func (h *Handler) accountPage(w http.ResponseWriter, r *http.Request) {
	v := requireSession(w, r)
	if v == nil {
		return
	}
	p := h.newPage(v, "account.title")
	p.Notice = h.notice(v.lang, r)
	data := defaultAccountForm()
	if id := r.URL.Query().Get("created"); id != "" {
		data.NewSecret = h.secrets.take(id, v.session.User.ID)
	}
	h.renderAccount(w, r, p, http.StatusOK, data)
}

// renderAccount lists the user's app passwords into data and renders the
// member page.
func (h *Handler) renderAccount(w http.ResponseWriter, r *http.Request, p *page, status int, data accountData) {
	v := visitOf(r)
	list, err := h.accounts.AppPasswords(r.Context(), v.session.User.ID)
	if err != nil {
		h.internalError(w, v, "listing app passwords", err)
		return
	}
	for _, ap := range list {
		data.AppPasswords = append(data.AppPasswords, appPasswordRow{
			ID:       ap.ID,
			Name:     ap.Name,
			Services: h.services(p.Lang, ap.Scope),
			Created:  ap.Created,
			LastUsed: ap.LastUsed,
		})
	}
	p.Data = data
	h.render(w, status, "account", p)
}

// services names the services of scope in lang.
func (h *Handler) services(lang string, scope accounts.Scope) string {
	var names []string
	for _, s := range scopeNames {
		if scope&s.scope != 0 {
			names = append(names, h.t(lang, "scope."+s.name+".short"))
		}
	}
	return strings.Join(names, ", ")
}

// changePassword replaces the password after checking the current one, and
// then ends every other session of the user.
func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request) {
	v := requireSession(w, r)
	if v == nil {
		return
	}
	user := v.session.User
	f := r.PostForm
	current := f.Get("current_password")

	p := h.newPage(v, "account.title")
	if current == "" {
		p.Errors.add("current_password", p.T("validate.current_password.empty"))
	}
	h.checkNewPassword(&p.Errors, v.lang, "new_password", f.Get("new_password"), f.Get("new_password2"), user.Name)
	if len(p.Errors) > 0 {
		h.renderAccount(w, r, p, http.StatusUnprocessableEntity, defaultAccountForm())
		return
	}

	_, err := h.accounts.CheckPassword(r.Context(), user.Name, current, v.source, v.protocol())
	var throttled *accounts.ThrottledError
	switch {
	case err == nil, errors.Is(err, accounts.ErrTOTPRequired):
		// The password is right; a TOTP code is not needed within a session.
	case errors.As(err, &throttled):
		p.Errors.add("current_password", h.t(v.lang, "login.throttled", "wait", h.waitText(v.lang, throttled.RetryAfter)))
		w.Header().Set("Retry-After", retryAfter(throttled.RetryAfter))
		h.renderAccount(w, r, p, http.StatusTooManyRequests, defaultAccountForm())
		return
	case errors.Is(err, accounts.ErrBadCredentials):
		p.Errors.add("current_password", p.T("account.password.wrong"))
		h.renderAccount(w, r, p, http.StatusUnprocessableEntity, defaultAccountForm())
		return
	default:
		h.internalError(w, v, "checking password", err)
		return
	}

	if err := h.accounts.SetPassword(r.Context(), user.ID, f.Get("new_password")); err != nil {
		h.internalError(w, v, "setting password", err)
		return
	}
	// Someone who knew the old password may hold a session; end them all
	// and start a new one for this browser.
	if err := h.accounts.DeleteSessions(r.Context(), user.ID); err != nil {
		h.internalError(w, v, "deleting sessions after password change", err)
		return
	}
	h.log.Info("password changed", "user", user.Name, "source", v.source)
	if err := h.startSession(w, r, v, &user); err != nil {
		h.internalError(w, v, "creating session", err)
		return
	}
	http.Redirect(w, r, "/account?notice=password_changed", http.StatusSeeOther)
}

// defaultAccountForm returns the app password form with mail and DAV
// ticked. Chat stays unticked because the box has no chat server yet.
func defaultAccountForm() accountData {
	return accountData{Scopes: map[string]bool{"mail": true, "dav": true}}
}

// createAppPassword creates an app password and sends the browser to the
// member page, which shows the secret once.
func (h *Handler) createAppPassword(w http.ResponseWriter, r *http.Request) {
	v := requireSession(w, r)
	if v == nil {
		return
	}
	user := v.session.User
	name := normalizeDisplayName(r.PostForm.Get("app_name"))
	data := accountData{AppName: name, Scopes: map[string]bool{}}
	var scope accounts.Scope
	for _, value := range r.PostForm["scope"] {
		for _, s := range scopeNames {
			if value == s.name {
				scope |= s.scope
				data.Scopes[s.name] = true
			}
		}
	}

	p := h.newPage(v, "account.title")
	if key := appPasswordNameProblem(name); key != "" {
		p.Errors.add("app_name", h.t(v.lang, key, "n", len([]rune(name))))
	}
	if scope == 0 {
		p.Errors.add("scope-mail", p.T("validate.scope.empty"))
	}
	if len(p.Errors) > 0 {
		h.renderAccount(w, r, p, http.StatusUnprocessableEntity, data)
		return
	}

	secret, ap, err := h.accounts.CreateAppPassword(r.Context(), user.ID, name, scope)
	if errors.Is(err, accounts.ErrInvalid) {
		// Only the limit of app passwords per user is left to break.
		p.Errors.add("app_name", p.T("validate.app_password.limit"))
		h.renderAccount(w, r, p, http.StatusUnprocessableEntity, data)
		return
	}
	if err != nil {
		h.internalError(w, v, "creating app password", err)
		return
	}
	h.log.Info("app password created", "user", user.Name, "app_password_id", ap.ID, "scope", ap.Scope.String())
	id := h.secrets.put(user.ID, ap.Name, secret)
	http.Redirect(w, r, "/account?created="+id+"#new-app-password", http.StatusSeeOther)
}

func (h *Handler) revokeAppPassword(w http.ResponseWriter, r *http.Request) {
	v := requireSession(w, r)
	if v == nil {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		h.notFound(w, r)
		return
	}
	err = h.accounts.RevokeAppPassword(r.Context(), v.session.User.ID, id)
	if errors.Is(err, accounts.ErrNotFound) {
		h.notFound(w, r)
		return
	}
	if err != nil {
		h.internalError(w, v, "revoking app password", err)
		return
	}
	h.log.Info("app password revoked", "user", v.session.User.Name, "app_password_id", id)
	http.Redirect(w, r, "/account?notice=app_password_revoked", http.StatusSeeOther)
}

const (
	// secretFlashLifetime is how long a new app password waits in memory
	// for the page that shows it.
	secretFlashLifetime = 10 * time.Minute
	maxSecretFlashes    = 1000
)

// secretFlashes holds new app passwords between the POST that creates one
// and the GET that shows it, so that reloading the page neither shows it
// again nor creates another. Each is taken once.
type secretFlashes struct {
	m *expiringMap[secretFlash]
}

type secretFlash struct {
	userID int64
	name   string
	secret string
}

func newSecretFlashes(now func() time.Time) *secretFlashes {
	// Only a flood of creations fills the map. A dropped secret's app
	// password stays listed, and its owner revokes it.
	return &secretFlashes{m: newExpiringMap[secretFlash](now, secretFlashLifetime, maxSecretFlashes)}
}

// put stores secret for userID and returns the id that take needs.
func (s *secretFlashes) put(userID int64, name, secret string) string {
	raw := make([]byte, 16)
	rand.Read(raw)
	id := base64.RawURLEncoding.EncodeToString(raw)
	s.m.put(id, secretFlash{userID: userID, name: name, secret: secret})
	return id
}

// take returns and deletes the secret with id if it belongs to userID.
func (s *secretFlashes) take(id string, userID int64) *newSecret {
	f, ok := s.m.get(id)
	if !ok || f.userID != userID {
		return nil
	}
	s.m.delete(id)
	return &newSecret{Name: f.name, Secret: f.secret}
}
