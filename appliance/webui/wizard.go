package webui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// wizardStep is one page of the setup wizard.
type wizardStep struct {
	Path  string
	Title string // catalog key
}

// wizardSteps lists the wizard's pages in order.
//
// TODO: the steps domain, router, mail, services and updates belong between
// members and summary. They send their settings to heimwolke-agent over the
// control API, which this wizard does not use yet.
var wizardSteps = []wizardStep{
	{"/setup/language", "setup.language.title"},
	{"/setup/owner", "setup.owner.title"},
	{"/setup/members", "setup.members.title"},
	{"/setup/summary", "setup.summary.title"},
}

const (
	stepLanguage = iota
	stepOwner
	stepMembers
	stepSummary
)

// wizardProgress places a page in the wizard.
type wizardProgress struct {
	Number, Total int
}

func (h *Handler) wizardPage(v *visit, lang string, step int) *page {
	p := h.newPage(v, wizardSteps[step].Title)
	p.Lang = lang
	p.Step = &wizardProgress{Number: step + 1, Total: len(wizardSteps)}
	p.Version = h.version
	return p
}

func (h *Handler) draftOf(r *http.Request) draft {
	return h.drafts.get(visitOf(r).visitor, r.Header.Get("Accept-Language"))
}

// wizardStart sends the visitor to the first step that lacks something.
func (h *Handler) wizardStart(w http.ResponseWriter, r *http.Request) {
	d := h.draftOf(r)
	step := stepSummary
	switch {
	case !d.LangChosen:
		step = stepLanguage
	case !d.ownerReady():
		step = stepOwner
	}
	http.Redirect(w, r, wizardSteps[step].Path, http.StatusSeeOther)
}

// languageOption is one radio button or select option.
type languageOption struct {
	Code, Name string
	Selected   bool
}

func languageOptions(selected string) []languageOption {
	return []languageOption{
		{"de", "Deutsch", selected == "de"},
		{"en", "English", selected == "en"},
	}
}

func (h *Handler) languageStep(w http.ResponseWriter, r *http.Request) {
	h.renderLanguageStep(w, visitOf(r), h.draftOf(r), http.StatusOK, nil)
}

func (h *Handler) renderLanguageStep(w http.ResponseWriter, v *visit, d draft, status int, errs formErrors) {
	p := h.wizardPage(v, d.Lang, stepLanguage)
	// The first page greets the household, as the first-boot page did.
	p.Title = "firstboot.title"
	p.Errors = errs
	p.Data = languageOptions(d.Lang)
	h.render(w, status, "setup_language", p)
}

func (h *Handler) saveLanguageStep(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	d := h.draftOf(r)
	lang := r.PostForm.Get("lang")
	if lang != "de" && lang != "en" {
		var errs formErrors
		errs.add("lang-de", h.t(d.Lang, "validate.language"))
		h.renderLanguageStep(w, v, d, http.StatusUnprocessableEntity, errs)
		return
	}
	d.Lang = lang
	d.LangChosen = true
	h.drafts.put(v.visitor, d)
	http.Redirect(w, r, wizardSteps[stepOwner].Path, http.StatusSeeOther)
}

func (h *Handler) ownerStep(w http.ResponseWriter, r *http.Request) {
	h.renderOwnerStep(w, visitOf(r), h.draftOf(r), http.StatusOK, nil)
}

func (h *Handler) renderOwnerStep(w http.ResponseWriter, v *visit, d draft, status int, errs formErrors) {
	p := h.wizardPage(v, d.Lang, stepOwner)
	p.Errors = errs
	p.Data = d.Owner
	h.render(w, status, "setup_owner", p)
}

// saveOwnerStep keeps what was entered in the draft even when a field is
// invalid, so that the form shows it again, and keeps a valid password
// while other fields are wrong.
func (h *Handler) saveOwnerStep(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	d := h.draftOf(r)
	f := r.PostForm
	d.Owner.DisplayName = normalizeDisplayName(f.Get("display_name"))

	var errs formErrors
	d.Owner.Name = h.checkLoginName(&errs, d.Lang, f.Get("name"), d.Members)
	h.checkDisplayName(&errs, d.Lang, d.Owner.DisplayName)
	h.takePassword(&errs, d.Lang, &d.Owner, f.Get("password"), f.Get("password2"))
	h.drafts.put(v.visitor, d)

	if len(errs) > 0 {
		h.renderOwnerStep(w, v, d, http.StatusUnprocessableEntity, errs)
		return
	}
	http.Redirect(w, r, wizardSteps[stepMembers].Path, http.StatusSeeOther)
}

// checkLoginName adds the problem of the login name typed to errs,
// including a name that one of others has. It returns the normalized name
// when it is valid, and the name as typed, without surrounding spaces,
// when it is not.
func (h *Handler) checkLoginName(errs *formErrors, lang, typed string, others []person) string {
	name := normalizeLoginName(typed)
	if key := loginNameProblem(name); key != "" {
		errs.add("name", h.t(lang, key, "n", len(name)))
		return strings.TrimSpace(typed)
	}
	for _, o := range others {
		if o.Name == name {
			errs.add("name", h.t(lang, "validate.name.taken", "name", name))
			return name
		}
	}
	return name
}

func (h *Handler) checkDisplayName(errs *formErrors, lang, displayName string) {
	if key := displayNameProblem(displayName); key != "" {
		errs.add("display_name", h.t(lang, key, "n", len([]rune(displayName))))
	}
}

// takePassword checks the password fields of a wizard form for p. Both
// fields empty keep the password that p has, if it is still valid for p's
// name. A new password replaces it only when it is valid and both fields
// match.
func (h *Handler) takePassword(errs *formErrors, lang string, p *person, password, repeated string) {
	if password == "" && repeated == "" {
		if p.password == "" {
			errs.add("password", h.t(lang, "validate.password.empty"))
			return
		}
		if key := passwordProblem(p.password, p.Name); key != "" {
			p.password = ""
			errs.add("password", h.t(lang, key, "n", 0))
		}
		return
	}
	if h.checkNewPassword(errs, lang, "password", password, repeated, p.Name) {
		p.password = password
	}
}

// membersData is the content of the members step.
type membersData struct {
	Members   []person
	New       person
	Languages []languageOption
	Full      bool
}

func (h *Handler) membersStep(w http.ResponseWriter, r *http.Request) {
	d := h.draftOf(r)
	if !d.ownerReady() {
		http.Redirect(w, r, wizardSteps[stepOwner].Path, http.StatusSeeOther)
		return
	}
	h.renderMembersStep(w, visitOf(r), d, http.StatusOK, nil)
}

func (h *Handler) renderMembersStep(w http.ResponseWriter, v *visit, d draft, status int, errs formErrors) {
	p := h.wizardPage(v, d.Lang, stepMembers)
	p.Errors = errs
	newLang := d.NewMember.Language
	if newLang == "" {
		newLang = d.Lang
	}
	p.Data = membersData{
		Members:   d.Members,
		New:       d.NewMember,
		Languages: languageOptions(newLang),
		Full:      len(d.Members) >= maxMembers,
	}
	h.render(w, status, "setup_members", p)
}

// saveMembersStep handles the three buttons of the members step: "remove"
// a listed member, "add" the member in the form, and "next", which adds the
// member in the form too unless the form is empty.
func (h *Handler) saveMembersStep(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	d := h.draftOf(r)
	if !d.ownerReady() {
		http.Redirect(w, r, wizardSteps[stepOwner].Path, http.StatusSeeOther)
		return
	}

	f := r.PostForm
	action := f.Get("action")
	if action == "remove" {
		d.Members = slices.DeleteFunc(d.Members, func(m person) bool { return m.Name == f.Get("member") })
		h.drafts.put(v.visitor, d)
		http.Redirect(w, r, wizardSteps[stepMembers].Path, http.StatusSeeOther)
		return
	}

	formEmpty := f.Get("name") == "" && f.Get("display_name") == "" && f.Get("password") == "" && f.Get("password2") == ""
	if action == "next" && formEmpty {
		d.NewMember = person{}
		h.drafts.put(v.visitor, d)
		http.Redirect(w, r, wizardSteps[stepSummary].Path, http.StatusSeeOther)
		return
	}

	m := d.NewMember
	m.DisplayName = normalizeDisplayName(f.Get("display_name"))
	m.Language = f.Get("language")
	var errs formErrors
	if len(d.Members) >= maxMembers {
		errs.add("name", h.t(d.Lang, "validate.members.limit", "n", maxMembers))
	}
	m.Name = h.checkLoginName(&errs, d.Lang, f.Get("name"), append([]person{d.Owner}, d.Members...))
	h.checkDisplayName(&errs, d.Lang, m.DisplayName)
	if m.Language != "de" && m.Language != "en" {
		errs.add("language", h.t(d.Lang, "validate.language"))
	}
	h.takePassword(&errs, d.Lang, &m, f.Get("password"), f.Get("password2"))

	if len(errs) > 0 {
		d.NewMember = m
		h.drafts.put(v.visitor, d)
		h.renderMembersStep(w, v, d, http.StatusUnprocessableEntity, errs)
		return
	}
	d.Members = append(d.Members, m)
	d.NewMember = person{}
	h.drafts.put(v.visitor, d)

	next := wizardSteps[stepMembers].Path
	if action == "next" {
		next = wizardSteps[stepSummary].Path
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handler) summaryStep(w http.ResponseWriter, r *http.Request) {
	d := h.draftOf(r)
	if !d.ownerReady() {
		http.Redirect(w, r, wizardSteps[stepOwner].Path, http.StatusSeeOther)
		return
	}
	h.renderSummaryStep(w, visitOf(r), d, http.StatusOK, nil)
}

func (h *Handler) renderSummaryStep(w http.ResponseWriter, v *visit, d draft, status int, errs formErrors) {
	p := h.wizardPage(v, d.Lang, stepSummary)
	p.Errors = errs
	p.Data = d
	h.render(w, status, "setup_summary", p)
}

// applySetup creates the accounts of the draft, marks the setup complete
// and logs the owner in.
func (h *Handler) applySetup(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	h.applyMu.Lock()
	defer h.applyMu.Unlock()

	if h.setup.Complete() {
		h.renderSetupComplete(w, v)
		return
	}
	d := h.draftOf(r)
	if !d.ownerReady() {
		http.Redirect(w, r, wizardSteps[stepOwner].Path, http.StatusSeeOther)
		return
	}

	owner, problem, err := h.createOwner(r.Context(), v, d)
	if err != nil {
		h.internalError(w, v, "creating owner", err)
		return
	}
	if problem != "" {
		var errs formErrors
		errs.add("apply", problem)
		h.renderSummaryStep(w, v, d, http.StatusConflict, errs)
		return
	}
	for _, m := range d.Members {
		if err := h.createMember(r.Context(), m); err != nil {
			h.internalError(w, v, "creating member", err)
			return
		}
	}
	if err := h.setup.MarkComplete(r.Context(), h.now()); err != nil {
		h.internalError(w, v, "completing setup", err)
		return
	}
	h.drafts.drop()
	h.log.Info("setup completed", "owner", owner.Name, "members", len(d.Members), "source", v.source)

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
			h.log.Info("member exists from an interrupted setup", "user", m.Name)
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("creating member %q: %w", m.Name, err)
	}
	return nil
}
