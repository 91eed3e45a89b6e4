package webui

import (
	"errors"
	"net/http"
	"time"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// notices maps the ?notice= values that redirects carry to catalog keys.
// Only these are shown, so a link cannot put arbitrary text on a page.
var notices = map[string]string{
	"setup_done":            "setup.done",
	"logged_out":            "notice.logged_out",
	"logged_out_everywhere": "notice.logged_out_everywhere",
	"totp_expired":          "login.totp.expired",
	"password_changed":      "notice.password_changed",
	"app_password_revoked":  "notice.app_password_revoked",
}

func (h *Handler) notice(lang string, r *http.Request) string {
	key, ok := notices[r.URL.Query().Get("notice")]
	if !ok {
		return ""
	}
	return h.t(lang, key)
}

// loginData is the content of the login page.
type loginData struct {
	Name string
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	if v.session != nil {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return
	}
	p := h.loginPageData(v, "")
	p.Notice = h.notice(v.lang, r)
	h.render(w, http.StatusOK, "login", p)
}

func (h *Handler) loginPageData(v *visit, name string) *page {
	p := h.newPage(v, "login.title")
	other := "de"
	if v.lang == "de" {
		other = "en"
	}
	p.LanguageSwitch = "/login?lang=" + other
	p.Data = loginData{Name: name}
	return p
}

// login checks the login form. A user with TOTP continues at /login/totp.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	name := normalizeLoginName(r.PostForm.Get("login_name"))
	user, err := h.accounts.CheckPassword(r.Context(), name, r.PostForm.Get("login_password"), v.source, v.protocol())

	var throttled *accounts.ThrottledError
	switch {
	case err == nil:
		if err := h.startSession(w, r, v, user); err != nil {
			h.internalError(w, v, "creating session", err)
			return
		}
		http.Redirect(w, r, "/account", http.StatusSeeOther)
	case errors.Is(err, accounts.ErrTOTPRequired):
		h.pending.put(v.visitor, user.ID)
		http.Redirect(w, r, "/login/totp", http.StatusSeeOther)
	case errors.As(err, &throttled):
		p := h.loginPageData(v, name)
		h.renderThrottled(w, "login", p, "login_password", throttled.RetryAfter)
	case errors.Is(err, accounts.ErrBadCredentials):
		p := h.loginPageData(v, name)
		p.Errors.add("login_password", p.T("login.failed"))
		h.render(w, http.StatusOK, "login", p)
	default:
		h.internalError(w, v, "checking password", err)
	}
}

// renderThrottled renders the page name as a 429 response with Retry-After
// and, on field, a message with the time to wait.
func (h *Handler) renderThrottled(w http.ResponseWriter, name string, p *page, field string, wait time.Duration) {
	p.Errors.add(field, h.t(p.Lang, "login.throttled", "wait", h.waitText(p.Lang, wait)))
	w.Header().Set("Retry-After", retryAfter(wait))
	h.render(w, http.StatusTooManyRequests, name, p)
}

func (h *Handler) totpPage(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	if _, ok := h.pending.get(v.visitor); !ok {
		http.Redirect(w, r, "/login?notice=totp_expired", http.StatusSeeOther)
		return
	}
	h.render(w, http.StatusOK, "login_totp", h.newPage(v, "login.totp.title"))
}

// verifyTOTP completes a login that the password step left pending.
func (h *Handler) verifyTOTP(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	userID, ok := h.pending.get(v.visitor)
	if !ok {
		http.Redirect(w, r, "/login?notice=totp_expired", http.StatusSeeOther)
		return
	}
	user, err := h.accounts.VerifyTOTP(r.Context(), userID, r.PostForm.Get("code"), v.source, v.protocol())

	var throttled *accounts.ThrottledError
	switch {
	case err == nil:
		h.pending.delete(v.visitor)
		if err := h.startSession(w, r, v, user); err != nil {
			h.internalError(w, v, "creating session", err)
			return
		}
		http.Redirect(w, r, "/account", http.StatusSeeOther)
	case errors.As(err, &throttled):
		h.renderThrottled(w, "login_totp", h.newPage(v, "login.totp.title"), "code", throttled.RetryAfter)
	case errors.Is(err, accounts.ErrBadCredentials):
		p := h.newPage(v, "login.totp.title")
		p.Errors.add("code", p.T("login.totp.failed"))
		h.render(w, http.StatusOK, "login_totp", p)
	case errors.Is(err, accounts.ErrNotFound):
		h.pending.delete(v.visitor)
		http.Redirect(w, r, "/login?notice=totp_expired", http.StatusSeeOther)
	default:
		h.internalError(w, v, "verifying TOTP code", err)
	}
}

// logout ends this browser's session.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	if v.session != nil {
		if err := h.accounts.DeleteSession(r.Context(), v.sessionToken); err != nil {
			h.internalError(w, v, "deleting session", err)
			return
		}
		h.log.Info("web logout", "user", v.session.User.Name, "source", v.source)
	}
	clearSessionCookie(w, v)
	http.Redirect(w, r, "/login?notice=logged_out", http.StatusSeeOther)
}

// logoutEverywhere ends every session of the user. App passwords stay
// valid.
func (h *Handler) logoutEverywhere(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	if v.session == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	if err := h.accounts.DeleteSessions(r.Context(), v.session.User.ID); err != nil {
		h.internalError(w, v, "deleting sessions", err)
		return
	}
	h.log.Info("web logout on all devices", "user", v.session.User.Name, "source", v.source)
	clearSessionCookie(w, v)
	http.Redirect(w, r, "/login?notice=logged_out_everywhere", http.StatusSeeOther)
}

const (
	// pendingLoginLifetime is how long the TOTP step waits for its code
	// after the password was right.
	pendingLoginLifetime = 5 * time.Minute
	maxPendingLogins     = 1000
)

// pendingLogins remembers, per visitor cookie, the user whose password was
// right and whose TOTP code is still missing.
type pendingLogins = expiringMap[int64]

func newPendingLogins(now func() time.Time) *pendingLogins {
	return newExpiringMap[int64](now, pendingLoginLifetime, maxPendingLogins)
}
