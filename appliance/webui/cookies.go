package webui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/i18n"
)

const (
	sessionCookie  = "heimwolke_session"
	visitorCookie  = "heimwolke_visitor"
	languageCookie = "heimwolke_lang"

	visitorTokenLen = 32 // bytes
	visitorLifetime = 24 * time.Hour
)

// setCookie sets an HttpOnly, SameSite=Lax cookie for the whole site.
// maxAge 0 makes it end with the browser session, and -1 deletes it.
//
// The cookie is Secure only when the request came over TLS. Before the box
// has a certificate, the wizard and the login run over plain HTTP on the
// LAN, and browsers drop a Secure cookie that a plain HTTP response sets.
// Off the LAN, ServeHTTP serves plain HTTP not at all.
func setCookie(w http.ResponseWriter, v *visit, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		Secure:   v.tls,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

// visitorCookie returns the request's visitor cookie, or sets a new one and
// returns that.
func (h *Handler) visitorCookie(w http.ResponseWriter, r *http.Request, v *visit) string {
	if c, err := r.Cookie(visitorCookie); err == nil && validVisitorToken(c.Value) {
		return c.Value
	}
	raw := make([]byte, visitorTokenLen)
	rand.Read(raw)
	token := base64.RawURLEncoding.EncodeToString(raw)
	setCookie(w, v, visitorCookie, token, int(visitorLifetime/time.Second))
	return token
}

func validVisitorToken(s string) bool {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(raw) == visitorTokenLen
}

// visitorCSRF returns the CSRF token for forms shown to visitor without a
// session: an HMAC of the visitor cookie, which another site can neither
// read nor compute.
func (h *Handler) visitorCSRF(visitor string) string {
	mac := hmac.New(sha256.New, h.csrfKey)
	mac.Write([]byte("csrf\x00" + visitor))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (h *Handler) validVisitorCSRF(visitor, token string) bool {
	return hmac.Equal([]byte(token), []byte(h.visitorCSRF(visitor)))
}

// csrfToken returns the CSRF token for the forms of a page.
func (h *Handler) csrfToken(v *visit) string {
	if v.session != nil {
		return v.session.CSRFToken()
	}
	return h.visitorCSRF(v.visitor)
}

// loadSession looks up the session cookie. A cookie whose session ended is
// ignored, and a failed lookup is logged and treated the same way.
func (h *Handler) loadSession(r *http.Request, v *visit) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return
	}
	session, err := h.accounts.Session(r.Context(), c.Value)
	if err != nil {
		if !errors.Is(err, accounts.ErrNotFound) {
			h.log.Error("reading session", "source", v.source, "err", err)
		}
		return
	}
	v.session = session
	v.sessionToken = c.Value
}

// startSession logs user in: it creates a session and sets its cookie.
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, v *visit, user *accounts.User) error {
	token, session, err := h.accounts.CreateSession(r.Context(), user.ID)
	if err != nil {
		return err
	}
	setCookie(w, v, sessionCookie, token, 0)
	v.session = session
	v.sessionToken = token
	h.log.Info("web login", "user", user.Name, "source", v.source, "protocol", v.protocol())
	return nil
}

func clearSessionCookie(w http.ResponseWriter, v *visit) {
	setCookie(w, v, sessionCookie, "", -1)
}

// pageLanguage returns the language of the page. Before the setup is
// complete, it is the wizard draft's; after it, the logged-in user's.
// Otherwise a ?lang= choice wins and is remembered in a cookie, then the
// cookie, then the browser's Accept-Language.
func (h *Handler) pageLanguage(w http.ResponseWriter, r *http.Request, v *visit, complete bool) string {
	if !complete {
		return h.drafts.language(v.visitor, r.Header.Get("Accept-Language"))
	}
	if v.session != nil {
		return string(v.session.User.Language)
	}
	if choice := r.URL.Query().Get("lang"); choice == "de" || choice == "en" {
		setCookie(w, v, languageCookie, choice, 365*24*3600)
		return choice
	}
	choice := ""
	if c, err := r.Cookie(languageCookie); err == nil {
		choice = c.Value
	}
	return i18n.Negotiate(choice, r.Header.Get("Accept-Language"))
}
