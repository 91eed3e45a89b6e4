package webui

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"

	"github.com/heimwolke/heimwolke/packages/setupcode"
)

const (
	// setupCodeThrottleKey is the account name under which the login
	// throttle counts wrong setup codes. The space keeps it apart from
	// every login name.
	setupCodeThrottleKey = "setup code"

	// maxSetupCodeFile caps the size of setup-code.txt.
	maxSetupCodeFile = 1024
)

// setupCode is the code from setup-code.txt on the boot partition, which
// the wizard requests before anything else. Whoever can read the SD card
// can set the box up, and a neighbour on a shared Wi-Fi cannot.
type setupCode struct {
	// sum is the SHA-256 of the normalized code. Comparing sums keeps the
	// compare in constant time whatever the length of the typed code.
	sum [sha256.Size]byte
	set bool
}

// readSetupCode reads the code from path. An empty path, a missing file or
// a file without a code means that no code is required.
func readSetupCode(path string, log *slog.Logger) (setupCode, error) {
	if path == "" {
		return setupCode{}, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return setupCode{}, nil
	}
	if err != nil {
		return setupCode{}, fmt.Errorf("reading setup code: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSetupCodeFile+1))
	if err != nil {
		return setupCode{}, fmt.Errorf("reading setup code from %s: %w", path, err)
	}
	if len(data) > maxSetupCodeFile {
		return setupCode{}, fmt.Errorf("setup code file %s is larger than %d bytes: put only the code in it", path, maxSetupCodeFile)
	}

	code := setupcode.Parse(data)
	if code == "" {
		log.Warn("setup code file contains no code; no code required", "path", path)
		return setupCode{}, nil
	}
	log.Info("setup code required", "path", path)
	return setupCode{sum: sha256.Sum256([]byte(code)), set: true}, nil
}

func (c setupCode) required() bool { return c.set }

// matches reports whether typed is the code.
func (c setupCode) matches(typed string) bool {
	sum := sha256.Sum256([]byte(setupcode.Normalize(typed)))
	return subtle.ConstantTimeCompare(sum[:], c.sum[:]) == 1
}

func (h *Handler) codeStep(w http.ResponseWriter, r *http.Request) {
	d := h.draftOf(r)
	if !h.wizard.code.required() || d.CodeOK {
		http.Redirect(w, r, wizardSteps[stepLanguage].Path, http.StatusSeeOther)
		return
	}
	h.renderCodeStep(w, visitOf(r), d, http.StatusOK, nil)
}

func (h *Handler) renderCodeStep(w http.ResponseWriter, v *visit, d draft, status int, errs formErrors) {
	p := h.wizardPage(v, d.Lang, stepCode)
	p.Errors = errs
	h.render(w, status, "setup_code", p)
}

// saveCodeStep checks the typed code. Wrong codes count in the login
// throttle, so that guessing slows down as it does for passwords.
func (h *Handler) saveCodeStep(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	d := h.draftOf(r)
	if !h.wizard.code.required() || d.CodeOK {
		http.Redirect(w, r, wizardSteps[stepLanguage].Path, http.StatusSeeOther)
		return
	}

	var errs formErrors
	if wait := h.limiter.Check(setupCodeThrottleKey, v.source); wait > 0 {
		h.log.Info("setup code throttled", "source", v.source, "wait", wait)
		w.Header().Set("Retry-After", retryAfter(wait))
		errs.add("setup_code", h.t(d.Lang, "setup.code.throttled", "wait", h.waitText(d.Lang, wait)))
		h.renderCodeStep(w, v, d, http.StatusTooManyRequests, errs)
		return
	}

	typed := r.PostForm.Get("setup_code")
	switch {
	case setupcode.Normalize(typed) == "":
		errs.add("setup_code", h.t(d.Lang, "validate.setup_code.empty"))
	case !h.wizard.code.matches(typed):
		h.limiter.Fail(setupCodeThrottleKey, v.source)
		h.log.Info("wrong setup code", "source", v.source)
		errs.add("setup_code", h.t(d.Lang, "validate.setup_code.wrong"))
	}
	if len(errs) > 0 {
		h.renderCodeStep(w, v, d, http.StatusUnprocessableEntity, errs)
		return
	}

	h.limiter.Succeed(setupCodeThrottleKey, v.source)
	h.log.Info("setup code accepted", "source", v.source)
	d.CodeOK = true
	h.drafts.put(v.visitor, d)
	http.Redirect(w, r, wizardSteps[stepLanguage].Path, http.StatusSeeOther)
}
