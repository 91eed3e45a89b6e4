package webui

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// totpNotices maps the ?done= values of the TOTP page to catalog keys.
var totpNotices = map[string]string{
	"enabled":  "totp.notice.enabled",
	"disabled": "totp.notice.disabled",
}

// totpData is the content of the TOTP page.
type totpData struct {
	Enabled bool

	// Setup is the pending secret, nil when no setup is under way.
	Setup *totpSetupView
}

// totpSetupView shows a pending TOTP secret.
type totpSetupView struct {
	// Secret is the base32 secret in groups of four, for typing it in.
	Secret string
	QR     *qrImage
}

func (d *devicePages) totpPage(w http.ResponseWriter, r *http.Request) {
	v := requireSession(w, r)
	if v == nil {
		return
	}
	p := d.newPage(v, "totp.title")
	if key, ok := totpNotices[r.URL.Query().Get("done")]; ok {
		p.Notice = p.T(key)
	}
	d.renderTOTP(w, v, p, http.StatusOK)
}

// renderTOTP renders the TOTP page for the state of v's user: enabled, a
// setup under way, or neither.
func (d *devicePages) renderTOTP(w http.ResponseWriter, v *visit, p *page, status int) {
	user := v.session.User
	data := totpData{Enabled: user.TOTPEnabled}
	if setup, ok := d.totpSetups.get(totpSetupKey(user.ID)); ok && !user.TOTPEnabled {
		qr, err := newQRImage(setup.URL)
		if err != nil {
			d.internalError(w, v, "making TOTP QR code", err)
			return
		}
		data.Setup = &totpSetupView{Secret: groupInFours(setup.Secret), QR: qr}
		allowDataImages(w)
	}
	p.Data = data
	d.render(w, status, "totp", p)
}

// startTOTP makes a new pending secret. A user whose TOTP is enabled turns
// it off first, so that a second secret never replaces the first unnoticed.
func (d *devicePages) startTOTP(w http.ResponseWriter, r *http.Request) {
	v := requireSession(w, r)
	if v == nil {
		return
	}
	user := v.session.User
	if user.TOTPEnabled {
		http.Redirect(w, r, "/account/totp", http.StatusSeeOther)
		return
	}
	setup, err := d.accounts.StartTOTP(r.Context(), user.ID, d.totpIssuer(r.Context()))
	if err != nil {
		d.internalError(w, v, "starting TOTP setup", err)
		return
	}
	d.totpSetups.put(totpSetupKey(user.ID), *setup)
	http.Redirect(w, r, "/account/totp#totp-setup", http.StatusSeeOther)
}

// enableTOTP confirms the pending secret with a code from the app.
func (d *devicePages) enableTOTP(w http.ResponseWriter, r *http.Request) {
	v := requireSession(w, r)
	if v == nil {
		return
	}
	user := v.session.User
	p := d.newPage(v, "totp.title")
	key := totpSetupKey(user.ID)
	if _, ok := d.totpSetups.get(key); !ok || user.TOTPEnabled {
		p.Errors.add("start-totp", p.T("totp.restart"))
		d.renderTOTP(w, v, p, http.StatusConflict)
		return
	}

	code := strings.ReplaceAll(r.PostForm.Get("code"), " ", "")
	if code == "" {
		p.Errors.add("code", p.T("totp.code.empty"))
		d.renderTOTP(w, v, p, http.StatusUnprocessableEntity)
		return
	}
	err := d.accounts.EnableTOTP(r.Context(), user.ID, code)
	switch {
	case errors.Is(err, accounts.ErrBadCredentials):
		p.Errors.add("code", p.T("totp.code.wrong"))
		d.renderTOTP(w, v, p, http.StatusUnprocessableEntity)
		return
	case errors.Is(err, accounts.ErrInvalid):
		// Another browser started a new setup, so the secret on this
		// page is not the pending one any more.
		d.totpSetups.delete(key)
		p.Errors.add("start-totp", p.T("totp.restart"))
		d.renderTOTP(w, v, p, http.StatusConflict)
		return
	case err != nil:
		d.internalError(w, v, "enabling TOTP", err)
		return
	}

	d.totpSetups.delete(key)
	d.log.Info("totp enabled", "user", user.Name, "source", v.source)
	http.Redirect(w, r, "/account/totp?done=enabled", http.StatusSeeOther)
}

// disableTOTP turns TOTP off after checking the password.
func (d *devicePages) disableTOTP(w http.ResponseWriter, r *http.Request) {
	v := requireSession(w, r)
	if v == nil {
		return
	}
	user := v.session.User
	p := d.newPage(v, "totp.title")
	password := r.PostForm.Get("totp_password")
	if password == "" {
		p.Errors.add("totp_password", p.T("totp.password.empty"))
		d.renderTOTP(w, v, p, http.StatusUnprocessableEntity)
		return
	}

	_, err := d.accounts.CheckPassword(r.Context(), user.Name, password, v.source, v.protocol())
	var throttled *accounts.ThrottledError
	switch {
	case err == nil, errors.Is(err, accounts.ErrTOTPRequired):
		// The password is right, and the session replaces the code.
	case errors.As(err, &throttled):
		p.Errors.add("totp_password", d.t(v.lang, "login.throttled", "wait", d.waitText(v.lang, throttled.RetryAfter)))
		w.Header().Set("Retry-After", retryAfter(throttled.RetryAfter))
		d.renderTOTP(w, v, p, http.StatusTooManyRequests)
		return
	case errors.Is(err, accounts.ErrBadCredentials):
		p.Errors.add("totp_password", p.T("totp.password.wrong"))
		d.renderTOTP(w, v, p, http.StatusUnprocessableEntity)
		return
	default:
		d.internalError(w, v, "checking password", err)
		return
	}

	if err := d.accounts.DisableTOTP(r.Context(), user.ID); err != nil {
		d.internalError(w, v, "disabling TOTP", err)
		return
	}
	d.totpSetups.delete(totpSetupKey(user.ID))
	d.log.Info("totp disabled", "user", user.Name, "source", v.source)
	http.Redirect(w, r, "/account/totp?done=disabled", http.StatusSeeOther)
}

// totpIssuer names the box in authenticator apps: "Heimwolke" and the
// domain once there is one.
func (d *devicePages) totpIssuer(ctx context.Context) string {
	names := d.serviceNames(ctx)
	if names.LANOnly() {
		return "Heimwolke"
	}
	return "Heimwolke " + names.Domain
}

func totpSetupKey(userID int64) string { return strconv.FormatInt(userID, 10) }

// groupInFours inserts a space after every four characters of s.
func groupInFours(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}
