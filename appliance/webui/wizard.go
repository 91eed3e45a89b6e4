package webui

import (
	"net/http"
	"slices"
	"strings"
)

// wizardStep is one page of the setup wizard.
type wizardStep struct {
	Path  string
	Title string // catalog key
}

// Steps of the wizard, in order. The code step is left out when no setup
// code is required.
const (
	stepCode = iota
	stepLanguage
	stepOwner
	stepMembers
	stepDomain
	stepRouter
	stepMail
	stepServices
	stepUpdates
	stepSummary
	stepCount
)

// wizardSteps lists the wizard's pages by step.
var wizardSteps = [stepCount]wizardStep{
	stepCode:     {"/setup/code", "setup.code.title"},
	stepLanguage: {"/setup/language", "setup.language.title"},
	stepOwner:    {"/setup/owner", "setup.owner.title"},
	stepMembers:  {"/setup/members", "setup.members.title"},
	stepDomain:   {"/setup/domain", "setup.domain.title"},
	stepRouter:   {"/setup/router", "setup.router.title"},
	stepMail:     {"/setup/mail", "setup.mail.title"},
	stepServices: {"/setup/services", "setup.services.title"},
	stepUpdates:  {"/setup/updates", "setup.updates.title"},
	stepSummary:  {"/setup/summary", "setup.summary.title"},
}

// wizardProgress places a page in the wizard.
type wizardProgress struct {
	Number, Total int
}

func (h *Handler) wizardPage(v *visit, lang string, step int) *page {
	first := stepLanguage
	if h.wizard.code.required() {
		first = stepCode
	}
	p := h.newPage(v, wizardSteps[step].Title)
	p.Lang = lang
	p.Step = &wizardProgress{Number: step - first + 1, Total: stepCount - first}
	p.Version = h.version
	return p
}

func (h *Handler) draftOf(r *http.Request) draft {
	return h.drafts.get(visitOf(r).visitor, r.Header.Get("Accept-Language"))
}

// wizardStart sends the visitor to the first step that lacks something.
func (h *Handler) wizardStart(w http.ResponseWriter, r *http.Request) {
	d := h.draftOf(r)
	var step int
	switch {
	case h.wizard.code.required() && !d.CodeOK:
		step = stepCode
	case !d.LangChosen:
		step = stepLanguage
	default:
		step = missingStep(d, stepSummary)
		if step != stepOwner && !d.Saved[stepMembers] {
			step = stepMembers
		}
	}
	http.Redirect(w, r, wizardSteps[step].Path, http.StatusSeeOther)
}

// missingStep returns the first step that the page of step needs and that
// lacks something, or step itself when none does. Every page from the
// members step on needs the owner. The summary and apply also need every
// step from domain to updates, but not the optional members step.
func missingStep(d draft, step int) int {
	if step > stepOwner && !d.ownerReady() {
		return stepOwner
	}
	if step == stepSummary {
		for s := stepDomain; s < stepSummary; s++ {
			if !d.Saved[s] {
				return s
			}
		}
	}
	return step
}

// needSteps redirects to the step that the page of step needs first and
// returns false, or returns true when nothing is missing.
func needSteps(w http.ResponseWriter, r *http.Request, d draft, step int) bool {
	if missing := missingStep(d, step); missing != step {
		http.Redirect(w, r, wizardSteps[missing].Path, http.StatusSeeOther)
		return false
	}
	return true
}

// nextStep redirects to the step after step.
func nextStep(w http.ResponseWriter, r *http.Request, step int) {
	http.Redirect(w, r, wizardSteps[step+1].Path, http.StatusSeeOther)
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

// ownerData is the content of the owner step.
type ownerData struct {
	Owner person
	// Locked means that apply has created the accounts, so that changes
	// here would no longer take effect.
	Locked bool
}

func (h *Handler) renderOwnerStep(w http.ResponseWriter, v *visit, d draft, status int, errs formErrors) {
	p := h.wizardPage(v, d.Lang, stepOwner)
	p.Errors = errs
	p.Data = ownerData{Owner: d.Owner, Locked: d.Apply.AccountsCreated}
	h.render(w, status, "setup_owner", p)
}

// saveOwnerStep keeps what was entered in the draft even when a field is
// invalid, so that the form shows it again, and keeps a valid password
// while other fields are wrong. Once apply has created the accounts, the
// step changes nothing.
func (h *Handler) saveOwnerStep(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	d := h.draftOf(r)
	if d.Apply.AccountsCreated {
		nextStep(w, r, stepOwner)
		return
	}
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
		errs.add("name", h.t(lang, key, "n", len(name), "name", name))
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
	// Locked means that apply has created the accounts.
	Locked bool
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
		Locked:    d.Apply.AccountsCreated,
	}
	h.render(w, status, "setup_members", p)
}

// saveMembersStep handles the three buttons of the members step: "remove"
// a listed member, "add" the member in the form, and "next", which adds the
// member in the form too unless the form is empty. Once apply has created
// the accounts, only "next" remains.
func (h *Handler) saveMembersStep(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	d := h.draftOf(r)
	if !d.ownerReady() {
		http.Redirect(w, r, wizardSteps[stepOwner].Path, http.StatusSeeOther)
		return
	}

	f := r.PostForm
	action := f.Get("action")
	if d.Apply.AccountsCreated {
		h.membersLocked(w, r, v, d, action)
		return
	}
	if action == "remove" {
		d.Members = slices.DeleteFunc(d.Members, func(m person) bool { return m.Name == f.Get("member") })
		h.drafts.put(v.visitor, d)
		http.Redirect(w, r, wizardSteps[stepMembers].Path, http.StatusSeeOther)
		return
	}

	formEmpty := f.Get("name") == "" && f.Get("display_name") == "" && f.Get("password") == "" && f.Get("password2") == ""
	if action == "next" && formEmpty {
		d.NewMember = person{}
		d.Saved[stepMembers] = true
		h.drafts.put(v.visitor, d)
		nextStep(w, r, stepMembers)
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
	if m.Name != d.NewMember.Name {
		// A kept password belongs to the name it was entered for: a new
		// name must come with its own.
		m.password = ""
	}
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
	if action != "next" {
		h.drafts.put(v.visitor, d)
		http.Redirect(w, r, wizardSteps[stepMembers].Path, http.StatusSeeOther)
		return
	}
	d.Saved[stepMembers] = true
	h.drafts.put(v.visitor, d)
	nextStep(w, r, stepMembers)
}

// membersLocked handles the members step after apply has created the
// accounts: "next" moves on, and anything else shows the page again, which
// explains why it no longer changes the members.
func (h *Handler) membersLocked(w http.ResponseWriter, r *http.Request, v *visit, d draft, action string) {
	if action != "next" {
		http.Redirect(w, r, wizardSteps[stepMembers].Path, http.StatusSeeOther)
		return
	}
	d.Saved[stepMembers] = true
	h.drafts.put(v.visitor, d)
	nextStep(w, r, stepMembers)
}

func (h *Handler) summaryStep(w http.ResponseWriter, r *http.Request) {
	d := h.draftOf(r)
	if !needSteps(w, r, d, stepSummary) {
		return
	}
	p := h.wizardPage(visitOf(r), d.Lang, stepSummary)
	p.Data = h.summaryOf(d)
	h.render(w, http.StatusOK, "setup_summary", p)
}
