package accounts

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"
	"time"
)

func TestSessionRoundTrip(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)

	token, created, err := env.store.CreateSession(ctx, owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 32 {
		t.Fatalf("token %q: want 32 bytes in unpadded base64url", token)
	}

	got, err := env.store.Session(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if got.User.ID != owner.ID || got.User.Name != "anna" {
		t.Fatalf("session user = %+v, want anna", got.User)
	}
	if got.CSRFToken() != created.CSRFToken() || len(got.csrfSecret) != 32 {
		t.Fatal("CSRF token differs between CreateSession and Session")
	}
	if !got.ValidCSRF(created.CSRFToken()) {
		t.Error("ValidCSRF rejects the session's own token")
	}
	if got.ValidCSRF("") || got.ValidCSRF(token) {
		t.Error("ValidCSRF accepts an empty token or the session token")
	}

	var stored int
	if err := env.store.db.QueryRow(`SELECT count(*) FROM sessions WHERE token_hash = ?`, raw).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 0 {
		t.Fatal("the raw token is stored, want only its hash")
	}

	for _, bad := range []string{"", "nonsense", token + "A", base64.RawURLEncoding.EncodeToString(make([]byte, 32))} {
		if _, err := env.store.Session(ctx, bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("Session(%q): got %v, want ErrNotFound", bad, err)
		}
	}
}

func TestSessionCSRFDiffers(t *testing.T) {
	env := newTestEnv(t, Options{})
	owner := env.createOwner(t)
	_, a, err := env.store.CreateSession(context.Background(), owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := env.store.CreateSession(context.Background(), owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.CSRFToken() == b.CSRFToken() {
		t.Fatal("two sessions share a CSRF token")
	}
	if a.ValidCSRF(b.CSRFToken()) {
		t.Fatal("a session accepts another session's CSRF token")
	}
}

func TestSessionIdleExpiry(t *testing.T) {
	env := newTestEnv(t, Options{SessionIdleTimeout: time.Hour, SessionLifetime: 24 * time.Hour})
	ctx := context.Background()
	owner := env.createOwner(t)
	token, _, err := env.store.CreateSession(ctx, owner.ID)
	if err != nil {
		t.Fatal(err)
	}

	// Used every 50 minutes, it stays alive past the idle timeout.
	for i := range 5 {
		env.clock.Advance(50 * time.Minute)
		if _, err := env.store.Session(ctx, token); err != nil {
			t.Fatalf("use %d after 50 min idle: %v", i+1, err)
		}
	}

	env.clock.Advance(time.Hour)
	if _, err := env.store.Session(ctx, token); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after an hour idle: got %v, want ErrNotFound", err)
	}
	var n int
	if err := env.store.db.QueryRow(`SELECT count(*) FROM sessions`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d expired sessions left in the table, want 0", n)
	}
}

func TestSessionAbsoluteExpiry(t *testing.T) {
	env := newTestEnv(t, Options{SessionIdleTimeout: time.Hour, SessionLifetime: 3 * time.Hour})
	ctx := context.Background()
	owner := env.createOwner(t)
	token, created, err := env.store.CreateSession(ctx, owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := env.clock.Now().Add(time.Hour); !created.Expires.Equal(want) {
		t.Errorf("Expires = %v, want %v", created.Expires, want)
	}

	for range 5 {
		env.clock.Advance(30 * time.Minute)
		if _, err := env.store.Session(ctx, token); err != nil {
			t.Fatalf("at %v: %v", env.clock.Now(), err)
		}
	}
	env.clock.Advance(29 * time.Minute)
	got, err := env.store.Session(ctx, token)
	if err != nil {
		t.Fatalf("one minute before the lifetime ends: %v", err)
	}
	if want := created.Created.Add(3 * time.Hour); !got.Expires.Equal(want) {
		t.Errorf("Expires near the end = %v, want the absolute end %v", got.Expires, want)
	}
	env.clock.Advance(time.Minute)
	if _, err := env.store.Session(ctx, token); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after 3 h in constant use: got %v, want ErrNotFound", err)
	}
}

func TestSessionLastSeenPerMinute(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)
	token, created, err := env.store.CreateSession(ctx, owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(30 * time.Second)
	got, err := env.store.Session(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastSeen.Equal(created.LastSeen) {
		t.Fatalf("last seen moved to %v after 30 s, want unchanged", got.LastSeen)
	}
	env.clock.Advance(30 * time.Second)
	got, err = env.store.Session(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastSeen.Equal(env.clock.Now()) {
		t.Fatalf("last seen = %v after 60 s, want %v", got.LastSeen, env.clock.Now())
	}
}

func TestDeleteSessions(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)
	ben := env.createMember(t, "ben")

	var annaTokens []string
	for range 3 {
		token, _, err := env.store.CreateSession(ctx, owner.ID)
		if err != nil {
			t.Fatal(err)
		}
		annaTokens = append(annaTokens, token)
	}
	benToken, _, err := env.store.CreateSession(ctx, ben.ID)
	if err != nil {
		t.Fatal(err)
	}

	if err := env.store.DeleteSession(ctx, annaTokens[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := env.store.Session(ctx, annaTokens[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted session: got %v, want ErrNotFound", err)
	}
	if _, err := env.store.Session(ctx, annaTokens[1]); err != nil {
		t.Fatalf("other session after DeleteSession: %v", err)
	}
	if err := env.store.DeleteSession(ctx, annaTokens[0]); err != nil {
		t.Fatalf("deleting a deleted session: %v", err)
	}

	if err := env.store.DeleteSessions(ctx, owner.ID); err != nil {
		t.Fatal(err)
	}
	for i, token := range annaTokens {
		if _, err := env.store.Session(ctx, token); !errors.Is(err, ErrNotFound) {
			t.Errorf("anna's session %d after DeleteSessions: got %v, want ErrNotFound", i, err)
		}
	}
	if _, err := env.store.Session(ctx, benToken); err != nil {
		t.Errorf("ben's session after anna logged out everywhere: %v", err)
	}
}

func TestCreateSessionUnknownUser(t *testing.T) {
	env := newTestEnv(t, Options{})
	if _, _, err := env.store.CreateSession(context.Background(), 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}
