package accounts

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// loginFunc is one login attempt with the given secret from an address.
type loginFunc func(secret string, internet bool) error

// checkBruteForce sends 100 wrong secrets from an internet address and
// checks that they are slowed down and then rejected unchecked. While the
// address is throttled, the right secret from it is rejected too, and the
// right secret from the LAN works at once.
func checkBruteForce(t *testing.T, env *testEnv, login loginFunc, right string) {
	t.Helper()
	var bad, throttled int
	var lastWait time.Duration
	for i := range 100 {
		err := login("wrong guess number "+strings.Repeat("x", i), true)
		var te *ThrottledError
		switch {
		case errors.Is(err, ErrBadCredentials):
			bad++
		case errors.As(err, &te):
			throttled++
			lastWait = te.RetryAfter
		default:
			t.Fatalf("attempt %d: got %v, want ErrBadCredentials or ErrThrottled", i+1, err)
		}
	}
	if bad != 5 || throttled != 95 {
		t.Fatalf("100 wrong attempts at once: %d checked and %d throttled, want 5 and 95", bad, throttled)
	}
	if lastWait != time.Second {
		t.Fatalf("wait after 5 failures = %v, want 1s", lastWait)
	}

	if err := login(right, true); !errors.Is(err, ErrThrottled) {
		t.Fatalf("right secret from the throttled internet address: got %v, want ErrThrottled", err)
	}
	if err := login(right, false); err != nil {
		t.Fatalf("right secret from the LAN during the attack: %v", err)
	}

	// Waiting out each delay allows one more guess, and the delays double.
	want := time.Second
	for i := range 12 {
		env.clock.Advance(want)
		if err := login("another wrong guess", true); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("guess %d after waiting %v: got %v, want ErrBadCredentials", i+1, want, err)
		}
		want = min(2*want, 15*time.Minute)
		err := login("another wrong guess", true)
		var te *ThrottledError
		if !errors.As(err, &te) || te.RetryAfter != want {
			t.Fatalf("guess right after guess %d: got %v, want a wait of %v", i+1, err, want)
		}
	}
	if err := login(right, false); err != nil {
		t.Fatalf("right secret from the LAN after the attack: %v", err)
	}
}

func TestBruteForcePassword(t *testing.T) {
	env := newTestEnv(t, Options{})
	env.createOwner(t)
	login := func(password string, internet bool) error {
		src := lanAddr
		if internet {
			src = internetAddr
		}
		_, err := env.store.CheckPassword(context.Background(), "anna", password, src, "https")
		return err
	}
	checkBruteForce(t, env, login, ownerPassword)

	logged := strings.Count(env.log.String(), `msg="login failed"`)
	if logged != 5+12 {
		t.Errorf("logged %d failed logins, want one line for each of the 17 checked ones", logged)
	}
	if strings.Contains(env.log.String(), "wrong guess") || strings.Contains(env.log.String(), ownerPassword) {
		t.Error("the log contains a password")
	}
}

func TestBruteForceAppPassword(t *testing.T) {
	env := newTestEnv(t, Options{})
	owner := env.createOwner(t)
	secret, _, err := env.store.CreateAppPassword(context.Background(), owner.ID, "phone", ScopeMail)
	if err != nil {
		t.Fatal(err)
	}
	login := func(s string, internet bool) error {
		src := lanAddr
		if internet {
			src = internetAddr
		}
		_, err := env.store.CheckAppPassword(context.Background(), "anna", s, src, "imap", ScopeMail)
		return err
	}
	checkBruteForce(t, env, login, secret)

	if strings.Contains(env.log.String(), secret) {
		t.Error("the log contains the app password")
	}
}

// TestStaleAppPasswordSparesWebLogin guards against a phone that polls
// with a revoked app password from throttling its owner's web login.
func TestStaleAppPasswordSparesWebLogin(t *testing.T) {
	env := newTestEnv(t, Options{})
	env.createOwner(t)
	ctx := context.Background()
	for range 20 {
		env.store.CheckAppPassword(ctx, "anna", "aaaa-bbbb-cccc-dddd-eeee-ffff-gggg", lanAddr, "imap", ScopeMail)
	}
	laptop := lanAddr.Next()
	if _, err := env.store.CheckPassword(ctx, "anna", ownerPassword, laptop, "https"); err != nil {
		t.Fatalf("web login from another LAN device: %v", err)
	}
}

// TestParallelGuessesBounded guards against parallel attempts that all pass
// the limiter before the first of them fails.
func TestParallelGuessesBounded(t *testing.T) {
	env := newTestEnv(t, Options{MaxConcurrentHashes: 1})
	env.createOwner(t)

	// Hold the only hash slot, so that every attempt passes the first
	// limiter check and then waits.
	env.store.hashSlots <- struct{}{}
	results := make(chan error, 50)
	for i := range 50 {
		go func() {
			_, err := env.store.CheckPassword(context.Background(), "anna", "parallel guess "+strings.Repeat("y", i), internetAddr, "https")
			results <- err
		}()
	}
	// NOTE: the sleep only makes it likely that all attempts are waiting.
	// If some are not, the test still passes but checks less.
	time.Sleep(200 * time.Millisecond)
	<-env.store.hashSlots

	bad := 0
	for range 50 {
		if errors.Is(<-results, ErrBadCredentials) {
			bad++
		}
	}
	if bad > 5 {
		t.Fatalf("%d of 50 parallel guesses were checked, want at most the 5 free ones", bad)
	}
}
