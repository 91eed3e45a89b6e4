package webui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/control"
)

// settingsTimeout bounds the request that sends the settings to the agent.
const settingsTimeout = 15 * time.Second

// applyRun is the outcome of apply for a draft.
type applyRun struct {
	// At is when apply last ran, zero before the first time.
	At time.Time
	// AccountsCreated means that the owner and every member exist. Apply
	// then creates no accounts again, and the owner and members steps
	// change nothing.
	AccountsCreated bool
	// SettingsSent means that the agent accepted the settings.
	SettingsSent bool

	// Domain is the domain sent in ASCII, empty without one, and Services
	// the services sent. The progress page checks the agent's status
	// against them.
	Domain   string
	Services control.ServiceSettings

	// Issues explain why the last apply stopped, empty after a success.
	Issues []applyIssue
}

// applyIssue is a reason why apply stopped, with what to do about it.
type applyIssue struct {
	// Step is the progress step that failed: "accounts" or "settings".
	Step string
	// Message is the translated explanation and next action.
	Message string
	// Detail is a message from the agent in English, or empty.
	Detail string
	// FixStep is the wizard step to correct, or -1 when no entry is at
	// fault.
	FixStep int
	// Retry means that pressing apply again may succeed without changes.
	Retry bool
}

// applySetup creates the accounts of the draft and sends the settings to
// the agent, then shows the progress page. The setup is complete only after
// the household presses "finish" there, so that a failure here can still be
// corrected in the wizard. A second apply skips the accounts that the first
// created.
func (h *Handler) applySetup(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	h.applyMu.Lock()
	defer h.applyMu.Unlock()

	if h.setup.Complete() {
		h.renderSetupComplete(w, v)
		return
	}
	d := h.draftOf(r)
	if !needSteps(w, r, d, stepSummary) {
		return
	}

	run, err := h.runApply(r.Context(), v, d)
	if err != nil {
		h.internalError(w, v, "creating accounts", err)
		return
	}
	d.Apply = run
	h.drafts.put(v.visitor, d)
	http.Redirect(w, r, "/setup/progress", http.StatusSeeOther)
}

// runApply does the work of apply and records how far it got. An error is
// internal; what the household can fix is in the run's issues.
func (h *Handler) runApply(ctx context.Context, v *visit, d draft) (applyRun, error) {
	settings := settingsOf(d)
	run := applyRun{At: h.now(), AccountsCreated: d.Apply.AccountsCreated, Domain: settings.Domain, Services: settings.Services}
	if err := settings.Validate(); err != nil {
		// Every step checks its fields, so this is a defect of the wizard.
		// The household can still save the step again.
		h.log.Error("wizard assembled invalid settings", "err", err)
		run.Issues = h.settingsIssues(d.Lang, "setup.progress.settings.invalid", err)
		return run, nil
	}

	if !run.AccountsCreated {
		issue, err := h.createAccounts(ctx, v, d)
		if err != nil {
			return run, err
		}
		if issue != nil {
			run.Issues = []applyIssue{*issue}
			return run, nil
		}
		run.AccountsCreated = true
	}

	run.Issues = h.sendSettings(ctx, v, d.Lang, settings)
	run.SettingsSent = len(run.Issues) == 0
	return run, nil
}

// settingsOf assembles the agent's settings from a draft whose steps are
// all saved.
//
// NOTE: the ACME contact address is the owner's mailbox on the box itself,
// which cannot receive the certificate authority's notices while the box is
// unreachable.
func settingsOf(d draft) control.Settings {
	dns, domain := d.Domain.dnsSettings()
	s := control.Settings{
		SchemaVersion: control.SchemaVersion,
		Domain:        domain,
		Language:      d.Lang,
		DNS:           dns,
		Updates:       control.UpdateSettings{Automatic: true, Channel: d.Updates.Channel, Hour: d.Updates.Hour},
		Router:        control.RouterSettings{PortMapping: d.Router.PortMapping},
		Mail:          d.Mail.settings(),
		Services:      d.Services,
	}
	if domain != "" {
		s.ACME.Email = d.Owner.Name + "@" + domain
	}
	return s
}

// createAccounts creates the owner and the members of the draft. An issue
// means that the household must change an entry; an error is internal.
func (h *Handler) createAccounts(ctx context.Context, v *visit, d draft) (*applyIssue, error) {
	owner, problem, err := h.createOwner(ctx, v, d)
	if err != nil {
		return nil, fmt.Errorf("creating owner: %w", err)
	}
	if problem != "" {
		return &applyIssue{Step: "accounts", Message: problem, FixStep: stepOwner}, nil
	}
	for _, m := range d.Members {
		if err := h.createMember(ctx, m); err != nil {
			return nil, err
		}
	}
	if err := h.dropStaleMembers(ctx, d); err != nil {
		return nil, err
	}
	h.log.Info("setup accounts created", "owner", owner.Name, "members", len(d.Members), "source", v.source)
	return nil, nil
}

// sendSettings sends the settings to the agent and returns what went wrong,
// nothing when the agent accepted them.
func (h *Handler) sendSettings(ctx context.Context, v *visit, lang string, s control.Settings) []applyIssue {
	ctx, cancel := context.WithTimeout(ctx, settingsTimeout)
	defer cancel()
	err := h.wizard.agent.PutSettings(ctx, s)
	if err == nil {
		h.log.Info("setup settings sent to the agent", "domain", s.Domain, "dns_provider", s.DNS.Provider, "source", v.source)
		return nil
	}
	// The error carries the socket path and the agent's messages, which
	// package control words with field names and never with a secret's
	// value.
	h.log.Warn("sending setup settings to the agent failed", "source", v.source, "err", err)
	return h.agentIssues(lang, err)
}

// agentIssues explains an error of the control API client to the
// household: which entry to correct, or what to do with the box.
func (h *Handler) agentIssues(lang string, err error) []applyIssue {
	issue := applyIssue{Step: "settings", FixStep: -1, Retry: true}
	var apiErr *control.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Code == control.CodeInvalid && len(apiErr.Problems) > 0:
		return h.settingsIssues(lang, "setup.progress.agent.invalid", &control.ValidationError{Problems: apiErr.Problems})
	case errors.As(err, &apiErr) && apiErr.Code == control.CodeBusy:
		issue.Message = h.t(lang, "setup.progress.agent.busy")
	case errors.As(err, &apiErr) && (apiErr.Code == control.CodeUnsupportedSchema || apiErr.Code == control.CodeBadJSON || apiErr.Code == control.CodeNotFound):
		issue.Message = h.t(lang, "setup.progress.agent.version")
		issue.Detail = apiErr.Message
	case errors.As(err, &apiErr):
		issue.Message = h.t(lang, "setup.progress.agent.failed")
		issue.Detail = apiErr.Message
	case errors.Is(err, context.DeadlineExceeded):
		issue.Message = h.t(lang, "setup.progress.agent.timeout", "n", int(settingsTimeout/time.Second))
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
		issue.Message = h.t(lang, "setup.progress.agent.down")
	default:
		issue.Message = h.t(lang, "setup.progress.agent.unreachable")
	}
	return []applyIssue{issue}
}

// settingsIssues turns the invalid fields of the settings into issues with
// the message of messageKey, each pointing at the wizard step of its field.
func (h *Handler) settingsIssues(lang, messageKey string, err error) []applyIssue {
	var validation *control.ValidationError
	if !errors.As(err, &validation) {
		return []applyIssue{{Step: "settings", Message: h.t(lang, messageKey), Detail: err.Error(), FixStep: -1}}
	}
	var issues []applyIssue
	for _, p := range validation.Problems {
		issues = append(issues, applyIssue{
			Step:    "settings",
			Message: h.t(lang, messageKey),
			Detail:  p.Field + ": " + p.Message,
			FixStep: stepOfSettingsField(p.Field),
		})
	}
	return issues
}

// stepOfSettingsField returns the wizard step where the household enters
// the settings field, a dotted path such as "dns.token", or -1.
func stepOfSettingsField(field string) int {
	section, _, _ := strings.Cut(field, ".")
	switch section {
	case "language":
		return stepLanguage
	case "domain", "dns", "acme":
		return stepDomain
	case "router":
		return stepRouter
	case "mail":
		return stepMail
	case "services":
		return stepServices
	case "updates":
		return stepUpdates
	}
	return -1
}

// finishSetup marks the setup complete and logs the owner in. It needs an
// apply that created the accounts and sent the settings; DNS, certificate
// and services may still be on their way, and the agent carries on with
// them.
func (h *Handler) finishSetup(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	h.applyMu.Lock()
	defer h.applyMu.Unlock()

	if h.setup.Complete() {
		h.renderSetupComplete(w, v)
		return
	}
	d := h.draftOf(r)
	if !d.Apply.AccountsCreated || !d.Apply.SettingsSent {
		http.Redirect(w, r, "/setup/progress", http.StatusSeeOther)
		return
	}
	owner, err := h.accounts.UserByName(r.Context(), d.Owner.Name)
	if err != nil {
		h.internalError(w, v, "looking up owner to finish setup", err)
		return
	}

	if err := h.setup.MarkComplete(r.Context(), h.now()); err != nil {
		h.internalError(w, v, "completing setup", err)
		return
	}
	h.drafts.drop()
	h.log.Info("setup completed", "owner", owner.Name, "members", len(d.Members), "domain", d.Apply.Domain, "source", v.source)

	if err := h.startSession(w, r, v, owner); err != nil {
		h.internalError(w, v, "logging in owner after setup", err)
		return
	}
	http.Redirect(w, r, "/account?notice=setup_done", http.StatusSeeOther)
}

// createOwner creates the draft's owner. When an owner exists already, an
// earlier apply stopped before it marked the setup complete, and the owner
// is taken over if the draft has its name and password. A problem that is
// not empty is the message for the user about what to change.
func (h *Handler) createOwner(ctx context.Context, v *visit, d draft) (owner *accounts.User, problem string, err error) {
	owner, err = h.accounts.CreateOwner(ctx, accounts.NewUser{
		Name:        d.Owner.Name,
		DisplayName: d.Owner.DisplayName,
		Language:    accounts.Language(d.Lang),
		Password:    d.Owner.password,
	})
	switch {
	case err == nil:
		return owner, "", nil
	case errors.Is(err, accounts.ErrExists):
		return h.resumeOwner(ctx, v, d)
	case errors.Is(err, accounts.ErrInvalid):
		h.log.Warn("owner rejected by the accounts store", "err", err)
		return nil, h.t(d.Lang, "setup.apply.invalid"), nil
	}
	return nil, "", err
}

// resumeOwner returns the existing owner if it has the draft's owner name
// and password.
func (h *Handler) resumeOwner(ctx context.Context, v *visit, d draft) (*accounts.User, string, error) {
	users, err := h.accounts.Users(ctx)
	if err != nil {
		return nil, "", err
	}
	i := slices.IndexFunc(users, func(u accounts.User) bool { return u.Role == accounts.RoleOwner })
	if i < 0 {
		// The name belongs to a member, which only an interrupted apply
		// with another owner name can have created.
		return nil, h.t(d.Lang, "validate.name.taken", "name", d.Owner.Name), nil
	}
	existing := users[i]
	interrupted := h.t(d.Lang, "setup.apply.owner_exists", "name", existing.Name)
	if existing.Name != d.Owner.Name {
		h.log.Info("setup apply rejected: another owner exists", "owner", existing.Name, "draft_owner", d.Owner.Name, "source", v.source)
		return nil, interrupted, nil
	}

	_, err = h.accounts.CheckPassword(ctx, d.Owner.Name, d.Owner.password, v.source, v.protocol())
	var throttled *accounts.ThrottledError
	switch {
	case err == nil, errors.Is(err, accounts.ErrTOTPRequired):
		h.log.Info("resuming interrupted setup", "owner", existing.Name, "source", v.source)
		return &existing, "", nil
	case errors.As(err, &throttled):
		return nil, h.t(d.Lang, "login.throttled", "wait", h.waitText(d.Lang, throttled.RetryAfter)), nil
	case errors.Is(err, accounts.ErrBadCredentials):
		return nil, interrupted, nil
	}
	return nil, "", err
}

// dropStaleMembers deletes the members that an interrupted apply created
// but the draft no longer lists, for example after heimwolke restarted and
// the household walked the wizard again. No member could log in yet,
// because the setup was not complete.
func (h *Handler) dropStaleMembers(ctx context.Context, d draft) error {
	users, err := h.accounts.Users(ctx)
	if err != nil {
		return fmt.Errorf("listing members from an interrupted setup: %w", err)
	}
	for _, u := range users {
		if u.Role != accounts.RoleMember || slices.ContainsFunc(d.Members, func(m person) bool { return m.Name == u.Name }) {
			continue
		}
		if h.deleteUserData != nil {
			if err := h.deleteUserData(ctx, u.Name); err != nil {
				return fmt.Errorf("deleting data of member %q from an interrupted setup: %w", u.Name, err)
			}
		}
		if err := h.accounts.DeleteUser(ctx, u.ID); err != nil {
			return fmt.Errorf("deleting member %q from an interrupted setup: %w", u.Name, err)
		}
		h.log.Info("member from an interrupted setup deleted", "user", u.Name, "user_id", u.ID)
	}
	return nil
}

// createMember creates a member of the draft, or skips one that an
// interrupted apply created already.
func (h *Handler) createMember(ctx context.Context, m person) error {
	_, err := h.accounts.CreateMember(ctx, accounts.NewUser{
		Name:        m.Name,
		DisplayName: m.DisplayName,
		Language:    accounts.Language(m.Language),
		Password:    m.password,
	})
	if errors.Is(err, accounts.ErrExists) {
		u, lookupErr := h.accounts.UserByName(ctx, m.Name)
		if lookupErr == nil && u.Role == accounts.RoleMember {
			// The draft's password and profile win, because the household
			// entered them last.
			h.log.Info("member exists from an interrupted setup, taking the draft's password", "user", m.Name)
			if err := h.accounts.SetPassword(ctx, u.ID, m.password); err != nil {
				return fmt.Errorf("setting password of member %q from an interrupted setup: %w", m.Name, err)
			}
			if err := h.accounts.SetProfile(ctx, u.ID, m.DisplayName, accounts.Language(m.Language)); err != nil {
				return fmt.Errorf("setting profile of member %q from an interrupted setup: %w", m.Name, err)
			}
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("creating member %q: %w", m.Name, err)
	}
	return nil
}
