package webui

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// FuzzRulesAgreeWithAccounts guards the copies of the accounts package's
// rules in validate.go. A value that the form accepts must be accepted by
// the store, or the wizard would pass a step and then fail at apply. A value
// that the form rejects must be rejected by the store too.
func FuzzRulesAgreeWithAccounts(f *testing.F) {
	seeds := []struct{ name, displayName, password string }{
		{"anna", "Anna Müller", "korrekt pferd batterie"},
		{"Anna", "", "kurz"},
		{" anna.m ", "A\u0308nna", "AnnA-AnnA-AnnA"},
		{"a.b-c_d9", "Zeile\nzwei", "annaannaanna"},
		{"anna..m", "\u2028", "tab\tinside the password"},
		{".anna", "", "é\u00a0é\u00a0é\u00a0é\u00a0é\u00a0"},
		{"anna-", "", "e\u0301e\u0301e\u0301e\u0301e\u0301"},
		{"jürgen", "", "\x00nullbyte-password"},
		{"k\u212aelvin", "", "\xff\xfeinvalid utf-8 bytes"},
		{"x", "", "0123456789"},
		{"postmaster", "", "a long probe password"},
		{"Mailer-Daemon", "", "a long probe password"},
	}
	for _, s := range seeds {
		f.Add(s.name, s.displayName, s.password)
	}

	ctx := context.Background()
	store, err := accounts.Open(ctx, filepath.Join(f.TempDir(), "rules.db"),
		accounts.Options{Logger: slog.New(slog.DiscardHandler), Argon2: cheapArgon2})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	probe, err := store.CreateMember(ctx, accounts.NewUser{Name: "probe", Language: "en", Password: "a long probe password"})
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, name, displayName, password string) {
		name = normalizeLoginName(name)
		formOK := loginNameProblem(name) == ""
		_, err := store.CreateMember(ctx, accounts.NewUser{Name: name, Language: "en", Password: "a long probe password"})
		if storeOK := !errors.Is(err, accounts.ErrInvalid); formOK != storeOK {
			t.Errorf("login name %q: form accepts %v, store accepts %v (%v)", name, formOK, storeOK, err)
		}

		displayName = normalizeDisplayName(displayName)
		formOK = displayNameProblem(displayName) == ""
		err = store.SetProfile(ctx, probe.ID, displayName, accounts.LanguageEnglish)
		if storeOK := !errors.Is(err, accounts.ErrInvalid); formOK != storeOK {
			t.Errorf("display name %q: form accepts %v, store accepts %v (%v)", displayName, formOK, storeOK, err)
		}

		formOK = passwordProblem(password, probe.Name) == ""
		err = store.SetPassword(ctx, probe.ID, password)
		if storeOK := !errors.Is(err, accounts.ErrInvalid); formOK != storeOK {
			t.Errorf("password %q: form accepts %v, store accepts %v (%v)", password, formOK, storeOK, err)
		}
	})
}

func TestLoginNameReserved(t *testing.T) {
	for _, name := range []string{"postmaster", "abuse", "hostmaster", "webmaster", "mailer-daemon"} {
		if got := loginNameProblem(name); got != "validate.name.reserved" {
			t.Errorf("loginNameProblem(%q) = %q, want validate.name.reserved", name, got)
		}
	}
	if got := loginNameProblem("postmeister"); got != "" {
		t.Errorf("loginNameProblem(postmeister) = %q, want none", got)
	}
}
