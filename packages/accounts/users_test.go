package accounts

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestCreateUserValidation(t *testing.T) {
	valid := NewUser{Name: "anna", DisplayName: "Anna", Language: LanguageGerman, Password: ownerPassword}
	tests := []struct {
		name  string
		edit  func(*NewUser)
		field string
	}{
		{"empty name", func(u *NewUser) { u.Name = "" }, "name"},
		{"long name", func(u *NewUser) { u.Name = strings.Repeat("a", 65) }, "name"},
		{"space in name", func(u *NewUser) { u.Name = "anna b" }, "name"},
		{"umlaut in name", func(u *NewUser) { u.Name = "jürgen" }, "name"},
		{"at sign in name", func(u *NewUser) { u.Name = "anna@example.org" }, "name"},
		{"leading dot", func(u *NewUser) { u.Name = ".anna" }, "name"},
		{"trailing dash", func(u *NewUser) { u.Name = "anna-" }, "name"},
		{"double dot", func(u *NewUser) { u.Name = "an..na" }, "name"},
		{"dot-dot name", func(u *NewUser) { u.Name = ".." }, "name"},
		{"slash in name", func(u *NewUser) { u.Name = "a/b" }, "name"},
		{"postmaster name", func(u *NewUser) { u.Name = "postmaster" }, "name"},
		{"upper-case Abuse name", func(u *NewUser) { u.Name = "Abuse" }, "name"},
		{"mailer-daemon name", func(u *NewUser) { u.Name = "mailer-daemon" }, "name"},
		{"long display name", func(u *NewUser) { u.DisplayName = strings.Repeat("ö", 101) }, "display name"},
		{"newline in display name", func(u *NewUser) { u.DisplayName = "Anna\nBcc: x" }, "display name"},
		{"invalid UTF-8 display name", func(u *NewUser) { u.DisplayName = "Anna \xff" }, "display name"},
		{"language fr", func(u *NewUser) { u.Language = "fr" }, "language"},
		{"empty language", func(u *NewUser) { u.Language = "" }, "language"},
		{"short password", func(u *NewUser) { u.Password = "kurz12345" }, "password"},
		{"long password", func(u *NewUser) { u.Password = strings.Repeat("x", 1025) }, "password"},
		{"password is name", func(u *NewUser) { u.Name = "annabelle12"; u.Password = "AnnaBelle12" }, "password"},
		{"control in password", func(u *NewUser) { u.Password = "abc\x00defghijk" }, "password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, Options{})
			nu := valid
			tt.edit(&nu)
			_, err := env.store.CreateMember(context.Background(), nu)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("got %v, want a FieldError for %q", err, tt.field)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %q does not name the field %q", err, tt.field)
			}
		})
	}
}

// TestReservedNameRule guards against a member named postmaster, who
// would receive the box's reports and complaints: the error must state why
// the name is rejected, and the owner may not take the name either.
func TestReservedNameRule(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	for _, name := range ReservedNames() {
		_, err := env.store.CreateOwner(ctx, NewUser{Name: name, Language: LanguageGerman, Password: ownerPassword})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "name" {
			t.Fatalf("CreateOwner(%q): got %v, want a FieldError for name", name, err)
		}
		if !strings.Contains(fe.Rule, "reserved") || !strings.Contains(fe.Rule, "choose another") {
			t.Errorf("CreateOwner(%q): rule %q does not say that the name is reserved and to choose another", name, fe.Rule)
		}
	}
	for _, name := range []string{"hostmaster", "WebMaster", "Security", "MAILER-DAEMON"} {
		if !IsReservedName(name) {
			t.Errorf("IsReservedName(%q) = false, want true", name)
		}
	}
	for _, name := range []string{"anna", "postmaster2", "abuse.team"} {
		if IsReservedName(name) {
			t.Errorf("IsReservedName(%q) = true, want false", name)
		}
	}
}

func TestCreateUserReportsEveryField(t *testing.T) {
	env := newTestEnv(t, Options{})
	_, err := env.store.CreateMember(context.Background(), NewUser{Name: "-", DisplayName: "a\tb", Language: "xx", Password: ownerPassword})
	for _, field := range []string{"invalid name", "invalid display name", "invalid language"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("got %v, want it to contain %q", err, field)
		}
	}
}

func TestNameRuleMessage(t *testing.T) {
	err := validateName("Anna!")
	for _, want := range []string{"a-z", "0-9", "'.'", "'-'", "'_'", "64"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("name error %q does not mention %s", err, want)
		}
	}
}

func TestValidNames(t *testing.T) {
	for _, name := range []string{"a", "anna", "anna.mueller", "a_b-c.d", "42", strings.Repeat("z", 64)} {
		if err := validateName(name); err != nil {
			t.Errorf("validateName(%q) = %v, want nil", name, err)
		}
	}
}

func TestCreateUserNormalizes(t *testing.T) {
	env := newTestEnv(t, Options{})
	// "Jürgen" with a combining diaeresis (NFD), as macOS may send it.
	u, err := env.store.CreateMember(context.Background(), NewUser{
		Name: "Juergen", DisplayName: "  Ju\u0308rgen  ", Language: LanguageGerman, Password: memberPassword,
	})
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "juergen" {
		t.Errorf("name = %q, want juergen", u.Name)
	}
	if u.DisplayName != "J\u00fcrgen" {
		t.Errorf("display name = %q, want NFC \"J\\u00fcrgen\"", u.DisplayName)
	}

	u2, err := env.store.CreateMember(context.Background(), NewUser{Name: "ben", Language: LanguageEnglish, Password: memberPassword})
	if err != nil {
		t.Fatal(err)
	}
	if u2.DisplayName != "ben" {
		t.Errorf("empty display name became %q, want the login name", u2.DisplayName)
	}
}

func TestSingleOwner(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)
	if owner.Role != RoleOwner {
		t.Fatalf("role = %q, want owner", owner.Role)
	}

	_, err := env.store.CreateOwner(ctx, NewUser{Name: "zweite", Language: LanguageGerman, Password: ownerPassword})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second CreateOwner: got %v, want ErrExists", err)
	}

	// The schema enforces it too, for writers that skip the check.
	_, err = env.store.db.Exec(`INSERT INTO users (name, display_name, role, language, password_hash, created)
		VALUES ('mallory', 'M', 'owner', 'en', 'x', 0)`)
	if err == nil {
		t.Fatal("inserting a second owner row succeeded, want a unique constraint error")
	}

	if _, err := env.store.CreateMember(ctx, NewUser{Name: "ben", Language: LanguageEnglish, Password: memberPassword}); err != nil {
		t.Fatalf("CreateMember after owner: %v", err)
	}
}

func TestCreateUserNameTaken(t *testing.T) {
	env := newTestEnv(t, Options{})
	env.createOwner(t)
	_, err := env.store.CreateMember(context.Background(), NewUser{Name: "ANNA", Language: LanguageEnglish, Password: memberPassword})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("got %v, want ErrExists", err)
	}
	if !strings.Contains(err.Error(), `"anna"`) {
		t.Fatalf("error %q does not name the user", err)
	}
}

func TestUserLookups(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)
	env.createMember(t, "ben")
	env.createMember(t, "carla")

	got, err := env.store.UserByName(ctx, "Anna")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != owner.ID || got.DisplayName != "Anna Müller" || got.Language != LanguageGerman {
		t.Fatalf("UserByName(Anna) = %+v, want %+v", got, owner)
	}
	if !got.Created.Equal(env.clock.Now()) {
		t.Errorf("created = %v, want %v", got.Created, env.clock.Now())
	}

	users, err := env.store.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Name)
	}
	if got := strings.Join(names, ","); got != "anna,ben,carla" {
		t.Fatalf("Users = %s, want anna,ben,carla", got)
	}

	if _, err := env.store.User(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("User(999): got %v, want ErrNotFound", err)
	}
	if _, err := env.store.UserByName(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("UserByName(nobody): got %v, want ErrNotFound", err)
	}
}

func TestDeleteUserCascades(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	env.createOwner(t)
	ben := env.createMember(t, "ben")
	secret, _, err := env.store.CreateAppPassword(ctx, ben.ID, "phone", ScopeAll)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := env.store.CreateSession(ctx, ben.ID)
	if err != nil {
		t.Fatal(err)
	}

	if err := env.store.DeleteUser(ctx, ben.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}

	for _, table := range []string{"app_passwords", "sessions"} {
		var n int
		if err := env.store.db.QueryRow(`SELECT count(*) FROM `+table+` WHERE user_id = ?`, ben.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s has %d rows of the deleted user, want 0", table, n)
		}
	}
	if _, err := env.store.Session(ctx, token); !errors.Is(err, ErrNotFound) {
		t.Errorf("Session of deleted user: got %v, want ErrNotFound", err)
	}
	if _, err := env.store.CheckAppPassword(ctx, "ben", secret, lanAddr, "imap", ScopeMail); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("app password of deleted user: got %v, want ErrBadCredentials", err)
	}
	if err := env.store.DeleteUser(ctx, ben.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteUser: got %v, want ErrNotFound", err)
	}
}

func TestDeleteOwnerRejected(t *testing.T) {
	env := newTestEnv(t, Options{})
	owner := env.createOwner(t)
	err := env.store.DeleteUser(context.Background(), owner.ID)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("DeleteUser(owner): got %v, want ErrInvalid", err)
	}
}

func TestUserIDsNotReused(t *testing.T) {
	env := newTestEnv(t, Options{})
	env.createOwner(t)
	ben := env.createMember(t, "ben")
	if err := env.store.DeleteUser(context.Background(), ben.ID); err != nil {
		t.Fatal(err)
	}
	carla := env.createMember(t, "carla")
	if carla.ID == ben.ID {
		t.Fatalf("new user got the deleted user's ID %d", ben.ID)
	}
}

func TestSetProfile(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)
	if err := env.store.SetProfile(ctx, owner.ID, "Anna M.", LanguageEnglish); err != nil {
		t.Fatal(err)
	}
	got, err := env.store.User(ctx, owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.DisplayName != "Anna M." || got.Language != LanguageEnglish {
		t.Fatalf("after SetProfile: %+v, want Anna M. and en", got)
	}
	err = env.store.SetProfile(ctx, owner.ID, "x", "nl")
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "language" {
		t.Fatalf("SetProfile(nl): got %v, want a FieldError for language", err)
	}
}
