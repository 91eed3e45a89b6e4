package webui

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// dataDeleter records the calls of Options.DeleteUserData and fails
// while err is set.
type dataDeleter struct {
	env    *adminEnv
	err    error
	logins []string

	// accountKept records, per call, whether the account still existed.
	accountKept []bool
}

func (d *dataDeleter) deleteUserData(ctx context.Context, login string) error {
	d.logins = append(d.logins, login)
	_, err := d.env.accounts.UserByName(ctx, login)
	d.accountKept = append(d.accountKept, err == nil)
	return d.err
}

func newDeleterEnv(t *testing.T) (*adminEnv, *dataDeleter) {
	t.Helper()
	d := &dataDeleter{}
	env := newAdminEnv(t, func(o *Options) { o.DeleteUserData = d.deleteUserData })
	d.env = env
	return env, d
}

func TestPeopleDeleteConfirmationLists(t *testing.T) {
	env, d := newDeleterEnv(t)
	deletePath := "/admin/people/" + strconv.FormatInt(env.userID(t, "ben"), 10) + "/delete"

	env.owner.get("/admin/people")
	res := env.owner.post(deletePath, form())
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res,
		"Ben (ben) löschen?",
		env.message("admin.people.delete.removed.mail", "name", "Ben", "login", "ben"),
		env.message("admin.people.delete.removed.files", "name", "Ben"),
		env.message("admin.people.delete.removed.calendars", "name", "Ben"),
		env.message("admin.people.delete.removed.links", "name", "Ben"),
		env.message("admin.people.delete.removed.login", "name", "Ben"),
		env.message("admin.people.delete.kept.shared", "name", "Ben"),
		"nicht rückgängig",
		`name="confirm" value="yes"`, `action="`+deletePath+`"`)
	if len(d.logins) != 0 {
		t.Errorf("DeleteUserData calls before the confirmation: %v, want none", d.logins)
	}
}

func TestPeopleDeleteRunsServicesFirst(t *testing.T) {
	env, d := newDeleterEnv(t)
	ben := newBrowser(t, env.h, otherLANAddr)
	logIn(t, ben, "ben", memberPassword)
	benID := env.userID(t, "ben")
	deletePath := "/admin/people/" + strconv.FormatInt(benID, 10) + "/delete"

	env.owner.get("/admin/people")
	wantRedirect(t, env.owner.post(deletePath, form("confirm", "yes")), "/admin/people?notice=member_deleted")

	// The second call sweeps what arrived while the first one ran.
	if len(d.logins) != 2 || d.logins[0] != "ben" || d.logins[1] != "ben" {
		t.Fatalf("DeleteUserData calls: got %v, want [ben ben]", d.logins)
	}
	if !d.accountKept[0] {
		t.Error("first DeleteUserData ran after the account was deleted, want before")
	}
	if d.accountKept[1] {
		t.Error("second DeleteUserData ran before the account was deleted, want after")
	}
	if _, err := env.accounts.User(context.Background(), benID); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("ben after the deletion: got %v, want ErrNotFound", err)
	}
	wantRedirect(t, ben.get("/account"), "/login")
}

// TestPeopleDeleteFailureKeepsAccount guards against deleting the account
// while the services still hold the member's data, which a new member of
// the same name would then inherit.
func TestPeopleDeleteFailureKeepsAccount(t *testing.T) {
	env, d := newDeleterEnv(t)
	ben := newBrowser(t, env.h, otherLANAddr)
	logIn(t, ben, "ben", memberPassword)
	benID := env.userID(t, "ben")
	deletePath := "/admin/people/" + strconv.FormatInt(benID, 10) + "/delete"
	d.err = errors.New("deleting files of \"ben\": removing home folder: permission denied")

	env.owner.get("/admin/people")
	res := env.owner.post(deletePath, form("confirm", "yes"))
	wantStatus(t, res, http.StatusInternalServerError)
	wantBody(t, res, "Ben (ben) ließ sich nicht ganz löschen", "removing home folder: permission denied", `href="/admin/people"`)

	if _, err := env.accounts.User(context.Background(), benID); err != nil {
		t.Fatalf("ben after a failed cleanup: %v, want the account kept", err)
	}
	wantRedirect(t, ben.get("/account"), "/login")
	res = ben.submit("/login", "/login", form("login_name", "ben", "login_password", memberPassword))
	if res.status == http.StatusSeeOther && res.header.Get("Location") == "/account" {
		t.Error("ben logged in after a failed deletion, want the login revoked")
	}

	d.err = nil
	env.owner.get("/admin/people")
	wantRedirect(t, env.owner.post(deletePath, form("confirm", "yes")), "/admin/people?notice=member_deleted")
	if len(d.logins) != 3 {
		t.Errorf("DeleteUserData calls after the retry: got %d, want 3 (failed, retried, swept)", len(d.logins))
	}
	if _, err := env.accounts.User(context.Background(), benID); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("ben after the retry: got %v, want ErrNotFound", err)
	}
}
