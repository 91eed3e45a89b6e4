package webui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// Resetter deletes the household's data for a factory reset.
type Resetter interface {
	// Reset deletes the data. It may leave some behind and report that
	// in its error.
	Reset(ctx context.Context) error
}

// FolderResetter deletes everything inside Dir and keeps Dir itself. On the
// box, Dir is /perm/heimwolke: the database, the files and the agent's
// settings.
type FolderResetter struct {
	Dir string
}

// Reset deletes every entry of Dir, continuing past failures, and then
// syncs Dir so that the deletions survive a power cut. It rejects an empty
// Dir and the root folder.
func (f FolderResetter) Reset(ctx context.Context) error {
	if f.Dir == "" {
		return errors.New("factory reset: data folder missing; set Options.DataDir")
	}
	dir, err := filepath.Abs(f.Dir)
	if err != nil {
		return fmt.Errorf("factory reset: %w", err)
	}
	if dir == filepath.Dir(dir) {
		return fmt.Errorf("factory reset: %s is the root folder, not a data folder; set Options.DataDir to the data folder", dir)
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("factory reset: reading data folder: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	if err := syncFolder(dir); err != nil {
		errs = append(errs, fmt.Errorf("syncing %s: %w", dir, err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("factory reset of %s: %w", dir, err)
	}
	return nil
}

func syncFolder(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// resetData is the content of the factory reset page.
type resetData struct {
	Available bool

	// Unavailable explains why the reset is not available, when it is not.
	Unavailable string

	BoxField inputField
}

// resetAvailable reports whether a factory reset can run: it needs the
// data folder and, to start afresh, a reboot.
func (a *adminPages) resetAvailable() bool {
	return a.resetter != nil && a.rebooter.Available()
}

// boxName returns the name that the owner types to confirm a factory reset:
// the household's domain, or heimwolke.local, the box's name on the LAN.
func (a *adminPages) boxName(ctx context.Context) string {
	return a.serviceNames(ctx).DAVHost
}

func (a *adminPages) resetPage(w http.ResponseWriter, r *http.Request) {
	v := a.requireOwner(w, r)
	if v == nil {
		return
	}
	a.renderReset(w, r, a.newPage(v, "admin.reset.title"), http.StatusOK, "")
}

func (a *adminPages) renderReset(w http.ResponseWriter, r *http.Request, p *page, status int, typedName string) {
	data := resetData{Available: a.resetAvailable()}
	switch {
	case data.Available:
	case a.dataDir == "":
		data.Unavailable = p.T("admin.reset.unavailable_no_dir")
	default:
		data.Unavailable = p.Tf("admin.reset.unavailable", "dir", a.dataDir)
	}
	data.BoxField = p.Input("reset_box_name", "text", typedName, "off")
	data.BoxField.Label = p.Tf("field.reset_box_name", "name", a.boxName(r.Context()))
	p.Data = data
	a.render(w, status, "admin_reset", p)
}

// reset deletes the household's data and restarts the box, once the owner
// has typed the box name and their password.
func (a *adminPages) reset(w http.ResponseWriter, r *http.Request) {
	v := a.requireOwner(w, r)
	if v == nil {
		return
	}
	p := a.newPage(v, "admin.reset.title")
	if !a.resetAvailable() {
		a.renderReset(w, r, p, http.StatusNotImplemented, "")
		return
	}
	typedName := strings.TrimSpace(r.PostForm.Get("reset_box_name"))
	if !a.checkResetForm(w, r, v, p, typedName) {
		return
	}
	if !a.resetMu.TryLock() {
		a.renderMessage(w, v, http.StatusConflict, "admin.reset.title", "admin.reset.running", "")
		return
	}
	defer a.resetMu.Unlock()

	user := v.session.User.Name
	a.log.Warn("factory reset requested", "user", user, "source", v.source, "data", a.dataDir)
	// The reset must not stop halfway because the browser went away.
	ctx := context.WithoutCancel(r.Context())
	if err := a.resetter.Reset(ctx); err != nil {
		a.log.Error("factory reset failed", "user", user, "err", err)
		a.renderMessage(w, v, http.StatusInternalServerError, "admin.reset.title", "admin.reset.failed", "")
		return
	}
	a.log.Warn("factory reset deleted the data; rebooting", "user", user, "data", a.dataDir)

	// The session went with the database.
	clearSessionCookie(w, v)
	v.session = nil
	if err := a.rebooter.Reboot(ctx); err != nil {
		a.log.Error("reboot after factory reset failed", "err", err)
		a.renderMessage(w, v, http.StatusBadGateway, "admin.reset.done.title", "admin.reset.reboot_failed", "")
		return
	}
	a.renderMessage(w, v, http.StatusOK, "admin.reset.done.title", "admin.reset.done", "")
}

// checkResetForm checks the box name and the owner's password. It renders
// the page with the problems and returns false when one is wrong.
func (a *adminPages) checkResetForm(w http.ResponseWriter, r *http.Request, v *visit, p *page, typedName string) bool {
	if !sameBoxName(typedName, a.boxName(r.Context())) {
		p.Errors.add("reset_box_name", p.Tf("admin.reset.box_name_wrong", "name", a.boxName(r.Context())))
	}
	password := r.PostForm.Get("reset_password")
	if password == "" {
		p.Errors.add("reset_password", p.T("validate.current_password.empty"))
	}
	if len(p.Errors) > 0 {
		a.renderReset(w, r, p, http.StatusUnprocessableEntity, typedName)
		return false
	}

	_, err := a.accounts.CheckPassword(r.Context(), v.session.User.Name, password, v.source, v.protocol())
	var throttled *accounts.ThrottledError
	switch {
	case err == nil, errors.Is(err, accounts.ErrTOTPRequired):
		// The password is right; a TOTP code is not needed within a session.
		return true
	case errors.As(err, &throttled):
		p.Errors.add("reset_password", a.t(v.lang, "login.throttled", "wait", a.waitText(v.lang, throttled.RetryAfter)))
		w.Header().Set("Retry-After", retryAfter(throttled.RetryAfter))
		a.renderReset(w, r, p, http.StatusTooManyRequests, typedName)
	case errors.Is(err, accounts.ErrBadCredentials):
		p.Errors.add("reset_password", p.T("admin.reset.password_wrong"))
		a.renderReset(w, r, p, http.StatusUnprocessableEntity, typedName)
	default:
		a.internalError(w, v, "checking password for factory reset", err)
	}
	return false
}

// sameBoxName compares host names as DNS does: without regard to ASCII case
// and to a trailing dot (RFC 4343 section 3).
func sameBoxName(typed, name string) bool {
	typed = strings.TrimSuffix(typed, ".")
	return typed != "" && strings.EqualFold(typed, strings.TrimSuffix(name, "."))
}
