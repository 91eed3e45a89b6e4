package accounts

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestAppPasswordFormat(t *testing.T) {
	format := regexp.MustCompile(`^[a-km-np-z2-9]{4}(-[a-km-np-z2-9]{4}){6}$`)
	seen := map[string]bool{}
	for range 100 {
		secret, err := newAppPasswordSecret()
		if err != nil {
			t.Fatal(err)
		}
		if !format.MatchString(secret) {
			t.Fatalf("secret %q does not have 7 groups of 4 from the alphabet", secret)
		}
		if seen[secret] {
			t.Fatalf("secret %q generated twice", secret)
		}
		seen[secret] = true
		if _, ok := hashAppPassword(secret); !ok {
			t.Fatalf("hashAppPassword(%q) says malformed", secret)
		}
	}
	if len(appPasswordAlphabet) != 32 {
		t.Fatalf("alphabet has %d characters, want 32 (5 bits each)", len(appPasswordAlphabet))
	}
	if bits := appPasswordChars * 5; bits < 128 {
		t.Fatalf("secret has %d bits, want at least 128", bits)
	}
}

func TestAppPasswordInputForms(t *testing.T) {
	secret := "k7cq-2m9x-hwa4-t3ne-pz8r-fu6d-bj5s"
	want, _ := hashAppPassword(secret)
	for _, typed := range []string{
		"k7cq2m9xhwa4t3nepz8rfu6dbj5s",
		"K7CQ-2M9X-HWA4-T3NE-PZ8R-FU6D-BJ5S",
		"k7cq 2m9x hwa4 t3ne pz8r fu6d bj5s",
	} {
		got, ok := hashAppPassword(typed)
		if !ok || string(got) != string(want) {
			t.Errorf("hashAppPassword(%q) differs from the displayed form", typed)
		}
	}
	for _, bad := range []string{"", "k7cq-2m9x", "k7cq-2m9x-hwa4-t3ne-pz8r-fu6d-bj5s-aaaa", "k7cq-2m9x-hwa4-t3ne-pz8r-fu6d-bj5l", "k7cq-2m9x-hwa4-t3ne-pz8r-fu6d-bj50"} {
		if _, ok := hashAppPassword(bad); ok {
			t.Errorf("hashAppPassword(%q) says well-formed", bad)
		}
	}
}

func TestAppPasswordLifecycle(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)

	secret, ap, err := env.store.CreateAppPassword(ctx, owner.ID, "  Thunderbird on the laptop ", ScopeMail|ScopeDAV)
	if err != nil {
		t.Fatal(err)
	}
	if ap.Name != "Thunderbird on the laptop" || ap.Scope != ScopeMail|ScopeDAV || !ap.LastUsed.IsZero() {
		t.Fatalf("created %+v, want trimmed name, mail,dav, never used", ap)
	}

	u, err := env.store.CheckAppPassword(ctx, "anna", secret, lanAddr, "imap", ScopeMail)
	if err != nil {
		t.Fatalf("right app password: %v", err)
	}
	if u.ID != owner.ID {
		t.Fatalf("got user %d, want %d", u.ID, owner.ID)
	}
	if _, err := env.store.CheckAppPassword(ctx, "anna", secret, lanAddr, "xmpp", ScopeXMPP); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("scope xmpp with a mail,dav password: got %v, want ErrBadCredentials", err)
	}
	if _, err := env.store.CheckAppPassword(ctx, "anna", ownerPassword, lanAddr, "imap", ScopeMail); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("main password as app password: got %v, want ErrBadCredentials", err)
	}
	other, _ := newAppPasswordSecret()
	if _, err := env.store.CheckAppPassword(ctx, "anna", other, lanAddr, "imap", ScopeMail); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("unknown app password: got %v, want ErrBadCredentials", err)
	}
	if _, err := env.store.CheckAppPassword(ctx, "nobody", secret, lanAddr, "imap", ScopeMail); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("unknown user: got %v, want ErrBadCredentials", err)
	}
	if _, err := env.store.CheckAppPassword(ctx, "anna", secret, lanAddr, "imap", 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("scope 0: got %v, want ErrInvalid", err)
	}

	list, err := env.store.AppPasswords(ctx, owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != ap.ID || !list[0].LastUsed.Equal(env.clock.Now()) {
		t.Fatalf("AppPasswords = %+v, want one with last use %v", list, env.clock.Now())
	}

	if err := env.store.RevokeAppPassword(ctx, owner.ID, ap.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := env.store.CheckAppPassword(ctx, "anna", secret, lanAddr, "imap", ScopeMail); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("revoked app password: got %v, want ErrBadCredentials", err)
	}
	if err := env.store.RevokeAppPassword(ctx, owner.ID, ap.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second revoke: got %v, want ErrNotFound", err)
	}
}

func TestAppPasswordScopeAll(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)
	secret, _, err := env.store.CreateAppPassword(ctx, owner.ID, "phone", ScopeAll)
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range []Scope{ScopeMail, ScopeDAV, ScopeXMPP} {
		if _, err := env.store.CheckAppPassword(ctx, "anna", secret, lanAddr, "test", sc); err != nil {
			t.Errorf("scope %s with an all password: %v", sc, err)
		}
	}
}

func TestAppPasswordOtherUserCannotRevoke(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)
	ben := env.createMember(t, "ben")
	_, ap, err := env.store.CreateAppPassword(ctx, owner.ID, "phone", ScopeAll)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.store.RevokeAppPassword(ctx, ben.ID, ap.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke by another user: got %v, want ErrNotFound", err)
	}
	secret, _, err := env.store.CreateAppPassword(ctx, ben.ID, "laptop", ScopeAll)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.store.CheckAppPassword(ctx, "anna", secret, lanAddr, "imap", ScopeMail); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("ben's app password for anna: got %v, want ErrBadCredentials", err)
	}
}

// TestAppPasswordLastUsedPerMinute guards the SD card: a client that logs
// in every few seconds must not cause a write each time.
func TestAppPasswordLastUsedPerMinute(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)
	secret, ap, err := env.store.CreateAppPassword(ctx, owner.ID, "phone", ScopeMail)
	if err != nil {
		t.Fatal(err)
	}
	lastUsed := func() time.Time {
		t.Helper()
		list, err := env.store.AppPasswords(ctx, owner.ID)
		if err != nil || len(list) != 1 || list[0].ID != ap.ID {
			t.Fatalf("AppPasswords = %+v, %v", list, err)
		}
		return list[0].LastUsed
	}
	check := func() {
		t.Helper()
		if _, err := env.store.CheckAppPassword(ctx, "anna", secret, lanAddr, "imap", ScopeMail); err != nil {
			t.Fatal(err)
		}
	}

	first := env.clock.Now()
	check()
	if got := lastUsed(); !got.Equal(first) {
		t.Fatalf("last use = %v, want %v", got, first)
	}
	env.clock.Advance(59 * time.Second)
	check()
	if got := lastUsed(); !got.Equal(first) {
		t.Fatalf("last use after 59 s = %v, want unchanged %v", got, first)
	}
	env.clock.Advance(time.Second)
	check()
	if got, want := lastUsed(), first.Add(time.Minute); !got.Equal(want) {
		t.Fatalf("last use after 60 s = %v, want %v", got, want)
	}
}

func TestCreateAppPasswordValidation(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)
	tests := []struct {
		label string
		name  string
		scope Scope
		field string
	}{
		{"empty name", " ", ScopeMail, "app password name"},
		{"long name", strings.Repeat("n", 101), ScopeMail, "app password name"},
		{"newline", "a\nb", ScopeMail, "app password name"},
		{"no scope", "phone", 0, "scope"},
		{"unknown scope bit", "phone", 8, "scope"},
	}
	for _, tt := range tests {
		_, _, err := env.store.CreateAppPassword(ctx, owner.ID, tt.name, tt.scope)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%s: got %v, want a FieldError naming %q", tt.label, err, tt.field)
		}
	}
	if _, _, err := env.store.CreateAppPassword(ctx, 999, "phone", ScopeMail); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown user: got %v, want ErrNotFound", err)
	}
}

func TestAppPasswordLimitPerUser(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)
	for i := range appPasswordMaxCount {
		if _, _, err := env.store.CreateAppPassword(ctx, owner.ID, "device", ScopeMail); err != nil {
			t.Fatalf("app password %d: %v", i+1, err)
		}
	}
	if _, _, err := env.store.CreateAppPassword(ctx, owner.ID, "one too many", ScopeMail); !errors.Is(err, ErrInvalid) {
		t.Fatalf("app password %d: got %v, want ErrInvalid", appPasswordMaxCount+1, err)
	}
}

func TestScopeStringRoundTrip(t *testing.T) {
	tests := []struct {
		scope Scope
		text  string
	}{
		{ScopeMail, "mail"},
		{ScopeDAV, "dav"},
		{ScopeXMPP, "xmpp"},
		{ScopeMail | ScopeXMPP, "mail,xmpp"},
		{ScopeAll, "all"},
	}
	for _, tt := range tests {
		if got := tt.scope.String(); got != tt.text {
			t.Errorf("Scope(%d).String() = %q, want %q", tt.scope, got, tt.text)
		}
		got, err := ParseScope(tt.text)
		if err != nil || got != tt.scope {
			t.Errorf("ParseScope(%q) = %d, %v, want %d", tt.text, got, err, tt.scope)
		}
	}
	for _, bad := range []string{"", "imap", "mail,", "mail,imap"} {
		if _, err := ParseScope(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseScope(%q): got %v, want ErrInvalid", bad, err)
		}
	}
}
