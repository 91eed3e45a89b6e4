package webui

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// peopleData is the content of the people page.
type peopleData struct {
	Users []accounts.User

	// New refills the form that adds a member after an error.
	New       newMemberForm
	Languages []languageOption
}

// newMemberForm is the typed content of the form that adds a member,
// without the passwords.
type newMemberForm struct {
	Name, DisplayName, Language string
}

func (a *adminPages) peoplePage(w http.ResponseWriter, r *http.Request) {
	v := a.requireOwner(w, r)
	if v == nil {
		return
	}
	p := a.newPage(v, "admin.people.title")
	p.Notice = a.adminNotice(v.lang, r)
	a.renderPeople(w, r, p, http.StatusOK, newMemberForm{Language: v.lang})
}

// renderPeople lists the users and renders the people page with form in
// the form that adds a member.
func (a *adminPages) renderPeople(w http.ResponseWriter, r *http.Request, p *page, status int, form newMemberForm) {
	users, err := a.accounts.Users(r.Context())
	if err != nil {
		a.internalError(w, visitOf(r), "listing users", err)
		return
	}
	p.Data = peopleData{Users: users, New: form, Languages: languageOptions(form.Language)}
	a.render(w, status, "admin_people", p)
}

// addMember creates a member from the form on the people page.
func (a *adminPages) addMember(w http.ResponseWriter, r *http.Request) {
	v := a.requireOwner(w, r)
	if v == nil {
		return
	}
	p := a.newPage(v, "admin.people.title")
	form, password, ok := a.checkNewMember(&p.Errors, v.lang, r)
	if !ok {
		a.renderPeople(w, r, p, http.StatusUnprocessableEntity, form)
		return
	}

	_, err := a.accounts.CreateMember(r.Context(), accounts.NewUser{
		Name:        form.Name,
		DisplayName: form.DisplayName,
		Language:    accounts.Language(form.Language),
		Password:    password,
	})
	if errors.Is(err, accounts.ErrExists) {
		p.Errors.add("name", p.Tf("validate.name.taken", "name", form.Name))
		a.renderPeople(w, r, p, http.StatusUnprocessableEntity, form)
		return
	}
	if err != nil {
		a.internalError(w, v, "creating member", err)
		return
	}
	a.log.Info("member added", "user", form.Name, "by", v.session.User.Name, "source", v.source)
	http.Redirect(w, r, "/admin/people?notice=member_added", http.StatusSeeOther)
}

// checkNewMember checks the form that adds a member with the rules of the
// accounts package, adding each problem to errs. It returns the form to
// refill the page with, the password, and whether all fields are valid.
func (a *adminPages) checkNewMember(errs *formErrors, lang string, r *http.Request) (newMemberForm, string, bool) {
	f := r.PostForm
	form := newMemberForm{
		Name:        normalizeLoginName(f.Get("name")),
		DisplayName: normalizeDisplayName(f.Get("display_name")),
		Language:    f.Get("language"),
	}
	if key := loginNameProblem(form.Name); key != "" {
		errs.add("name", a.t(lang, key, "n", len(form.Name), "name", form.Name))
		form.Name = strings.TrimSpace(f.Get("name"))
	}
	if key := displayNameProblem(form.DisplayName); key != "" {
		errs.add("display_name", a.t(lang, key, "n", len([]rune(form.DisplayName))))
	}
	password := f.Get("password")
	a.checkNewPassword(errs, lang, "password", password, f.Get("password2"), form.Name)
	if form.Language != "de" && form.Language != "en" {
		errs.add("language", a.t(lang, "validate.language"))
		form.Language = lang
	}
	return form, password, len(*errs) == 0
}

// deleteMemberData is the content of the page that confirms the deletion
// of a member and lists what goes and what stays.
type deleteMemberData struct {
	Name   string // display name
	Login  string
	Action string
}

// deleteMember shows the confirmation page first. After the confirmation,
// it revokes the member's logins, has the services delete the member's
// data (Options.DeleteUserData), and then deletes the account. When the
// services fail, the account stays, so that the owner can try again.
func (a *adminPages) deleteMember(w http.ResponseWriter, r *http.Request) {
	v := a.requireOwner(w, r)
	if v == nil {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		a.notFound(w, r)
		return
	}
	user, err := a.accounts.User(r.Context(), id)
	if errors.Is(err, accounts.ErrNotFound) {
		a.notFound(w, r)
		return
	}
	if err != nil {
		a.internalError(w, v, "reading user to delete", err)
		return
	}
	if user.Role == accounts.RoleOwner {
		a.renderMessage(w, v, http.StatusConflict, "admin.people.delete.title", "admin.people.delete_owner", "/admin/people")
		return
	}
	if !confirmed(r) {
		p := a.newPage(v, "admin.people.delete.title")
		p.Data = deleteMemberData{Name: user.DisplayName, Login: user.Name, Action: r.URL.Path}
		a.render(w, http.StatusOK, "admin_people_delete", p)
		return
	}

	if !a.deleteMemberAccess(w, r, v, user) {
		return
	}
	err = a.accounts.DeleteUser(r.Context(), id)
	if errors.Is(err, accounts.ErrNotFound) {
		// Deleted meanwhile, for example from another browser.
		http.Redirect(w, r, "/admin/people?notice=member_deleted", http.StatusSeeOther)
		return
	}
	if err != nil {
		a.internalError(w, v, "deleting member", err)
		return
	}
	a.log.Info("member deleted", "user", user.Name, "user_id", id, "by", v.session.User.Name, "source", v.source)
	// Mail that arrived for the member between the cleanup and the
	// account's deletion would wait for the next member of that name, so
	// the cleanup runs once more now that no service accepts the name.
	if a.deleteUserData != nil {
		if err := a.deleteUserData(r.Context(), user.Name); err != nil {
			a.log.Error("second cleanup of deleted member's data failed", "user", user.Name, "user_id", id, "err", err)
		}
	}
	http.Redirect(w, r, "/admin/people?notice=member_deleted", http.StatusSeeOther)
}

// deleteMemberAccess revokes the logins of user and then runs the
// services' cleanup. Revoking first keeps the member's clients from
// writing while their data goes. It reports whether both succeeded, and
// otherwise has written the error page.
func (a *adminPages) deleteMemberAccess(w http.ResponseWriter, r *http.Request, v *visit, user *accounts.User) bool {
	err := a.accounts.RevokeAccess(r.Context(), user.ID)
	if errors.Is(err, accounts.ErrNotFound) {
		http.Redirect(w, r, "/admin/people?notice=member_deleted", http.StatusSeeOther)
		return false
	}
	if err != nil {
		a.internalError(w, v, "revoking access of member to delete", err)
		return false
	}
	if a.deleteUserData == nil {
		return true
	}

	if err := a.deleteUserData(r.Context(), user.Name); err != nil {
		a.log.Error("deleting member data failed, account kept", "user", user.Name, "user_id", user.ID,
			"by", v.session.User.Name, "err", err)
		p := a.newPage(v, "admin.people.delete.title")
		p.Data = messageData{
			Text:     p.Tf("admin.people.delete.failed", "name", user.DisplayName, "login", user.Name, "error", err.Error()),
			LinkHref: "/admin/people",
			LinkText: p.T("ui.continue"),
		}
		a.render(w, http.StatusInternalServerError, "message", p)
		return false
	}
	return true
}
