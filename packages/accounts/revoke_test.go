package accounts

import (
	"context"
	"errors"
	"testing"
)

func TestRevokeAccessLocksMemberOut(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	env.createOwner(t)
	ben := env.createMember(t, "ben")
	enableTOTP(t, env, ben.ID)
	secret, _, err := env.store.CreateAppPassword(ctx, ben.ID, "phone", ScopeAll)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := env.store.CreateSession(ctx, ben.ID)
	if err != nil {
		t.Fatal(err)
	}

	if err := env.store.RevokeAccess(ctx, ben.ID); err != nil {
		t.Fatalf("RevokeAccess: %v", err)
	}

	got, err := env.store.User(ctx, ben.ID)
	if err != nil {
		t.Fatalf("ben after RevokeAccess: %v, want the account kept", err)
	}
	if got.TOTPEnabled {
		t.Error("TOTP still enabled after RevokeAccess")
	}
	if _, err := env.store.CheckPassword(ctx, "ben", memberPassword, lanAddr, "https"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old password after RevokeAccess: got %v, want ErrBadCredentials", err)
	}
	if _, err := env.store.CheckAppPassword(ctx, "ben", secret, lanAddr, "imap", ScopeMail); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("app password after RevokeAccess: got %v, want ErrBadCredentials", err)
	}
	if _, err := env.store.Session(ctx, token); !errors.Is(err, ErrNotFound) {
		t.Errorf("session after RevokeAccess: got %v, want ErrNotFound", err)
	}
	if aps, err := env.store.AppPasswords(ctx, ben.ID); err != nil || len(aps) != 0 {
		t.Errorf("app passwords after RevokeAccess: got %d (%v), want 0", len(aps), err)
	}
}

func TestRevokeAccessRejectsOwner(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)
	if err := env.store.RevokeAccess(ctx, owner.ID); !errors.Is(err, ErrInvalid) {
		t.Fatalf("RevokeAccess(owner): got %v, want ErrInvalid", err)
	}
	if _, err := env.store.CheckPassword(ctx, "anna", ownerPassword, lanAddr, "https"); err != nil {
		t.Errorf("owner login after a rejected RevokeAccess: %v", err)
	}
	if err := env.store.RevokeAccess(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("RevokeAccess(999): got %v, want ErrNotFound", err)
	}
}

// TestDeletedNameStartsEmpty guards against a new member inheriting the
// app passwords or TOTP secret of a deleted member with the same name.
func TestDeletedNameStartsEmpty(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	env.createOwner(t)
	old := env.createMember(t, "ben")
	enableTOTP(t, env, old.ID)
	if _, _, err := env.store.CreateAppPassword(ctx, old.ID, "phone", ScopeAll); err != nil {
		t.Fatal(err)
	}
	if err := env.store.DeleteUser(ctx, old.ID); err != nil {
		t.Fatal(err)
	}

	ben := env.createMember(t, "ben")
	if ben.TOTPEnabled {
		t.Error("new ben has TOTP enabled, want off")
	}
	if aps, err := env.store.AppPasswords(ctx, ben.ID); err != nil || len(aps) != 0 {
		t.Errorf("new ben's app passwords: got %d (%v), want 0", len(aps), err)
	}
}
