package accounts

import (
	"context"
	"errors"
	"testing"
)

func TestAppPasswordActive(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	env.createOwner(t)
	ben := env.createMember(t, "ben")
	laptop, _, err := env.store.CreateAppPassword(ctx, ben.ID, "laptop", ScopeMail)
	if err != nil {
		t.Fatal(err)
	}
	phone, phoneAP, err := env.store.CreateAppPassword(ctx, ben.ID, "phone", ScopeMail)
	if err != nil {
		t.Fatal(err)
	}

	u, id, err := env.store.CheckAppPasswordID(ctx, "ben", phone, lanAddr, "imap", ScopeMail)
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != ben.ID || id != phoneAP.ID {
		t.Fatalf("CheckAppPasswordID = user %d, app password %d; want %d, %d", u.ID, id, ben.ID, phoneAP.ID)
	}
	if _, _, err := env.store.CheckAppPasswordID(ctx, "ben", "wrong", lanAddr, "imap", ScopeMail); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("CheckAppPasswordID with a wrong secret: got %v, want ErrBadCredentials", err)
	}
	_, laptopID, err := env.store.CheckAppPasswordID(ctx, "ben", laptop, lanAddr, "imap", ScopeMail)
	if err != nil {
		t.Fatal(err)
	}

	if active, err := env.store.AppPasswordActive(ctx, ben.ID, phoneAP.ID); !active || err != nil {
		t.Errorf("AppPasswordActive before revoking = %v, %v; want true, nil", active, err)
	}
	if err := env.store.RevokeAppPassword(ctx, ben.ID, phoneAP.ID); err != nil {
		t.Fatal(err)
	}
	if active, err := env.store.AppPasswordActive(ctx, ben.ID, phoneAP.ID); active || err != nil {
		t.Errorf("AppPasswordActive after revoking = %v, %v; want false, nil", active, err)
	}
	if active, err := env.store.AppPasswordActive(ctx, ben.ID, laptopID); !active || err != nil {
		t.Errorf("AppPasswordActive of the other app password = %v, %v; want true, nil", active, err)
	}
	if active, err := env.store.AppPasswordActive(ctx, ben.ID+1, laptopID); active || err != nil {
		t.Errorf("AppPasswordActive with another user's id = %v, %v; want false, nil", active, err)
	}

	if err := env.store.DeleteUser(ctx, ben.ID); err != nil {
		t.Fatal(err)
	}
	if active, err := env.store.AppPasswordActive(ctx, ben.ID, laptopID); active || err != nil {
		t.Errorf("AppPasswordActive after deleting the user = %v, %v; want false, nil", active, err)
	}
}
