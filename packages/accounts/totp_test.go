package accounts

import (
	"context"
	"errors"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// rfcSecret is the HMAC-SHA-1 key of the test vectors in RFC 4226 and 6238.
var rfcSecret = []byte("12345678901234567890")

func TestHOTPVectorsRFC4226(t *testing.T) {
	// RFC 4226 Appendix D.
	want := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	for counter, w := range want {
		if got := hotp(rfcSecret, uint64(counter), 6); got != w {
			t.Errorf("hotp(counter %d) = %s, want %s", counter, got, w)
		}
	}
}

func TestTOTPVectorsRFC6238(t *testing.T) {
	// RFC 6238 Appendix B, the SHA-1 rows, which use 8 digits.
	tests := []struct {
		unix int64
		step uint64
		want string
	}{
		{59, 0x1, "94287082"},
		{1111111109, 0x23523EC, "07081804"},
		{1111111111, 0x23523ED, "14050471"},
		{1234567890, 0x273EF07, "89005924"},
		{2000000000, 0x3F940AA, "69279037"},
		{20000000000, 0x27BC86AA, "65353130"},
	}
	for _, tt := range tests {
		now := time.Unix(tt.unix, 0)
		step := totpStep(now)
		if uint64(step) != tt.step {
			t.Errorf("totpStep(%d) = %#x, want %#x", tt.unix, step, tt.step)
		}
		if got := hotp(rfcSecret, uint64(step), 8); got != tt.want {
			t.Errorf("TOTP at %d = %s, want %s", tt.unix, got, tt.want)
		}
		// The 6-digit code is the last 6 digits of the 8-digit one.
		got, ok := matchTOTP(rfcSecret, tt.want[2:], now, -1)
		if !ok || got != step {
			t.Errorf("matchTOTP(%s at %d) = %d, %v, want %d, true", tt.want[2:], tt.unix, got, ok, step)
		}
	}
}

func TestMatchTOTPWindow(t *testing.T) {
	now := time.Unix(1111111111, 0)
	step := totpStep(now)
	for _, tt := range []struct {
		offset int64
		ok     bool
	}{{-2, false}, {-1, true}, {0, true}, {1, true}, {2, false}} {
		code := hotp(rfcSecret, uint64(step+tt.offset), 6)
		if _, ok := matchTOTP(rfcSecret, code, now, -1); ok != tt.ok {
			t.Errorf("code of step %+d: matched %v, want %v", tt.offset, ok, tt.ok)
		}
	}
	code := hotp(rfcSecret, uint64(step), 6)
	if _, ok := matchTOTP(rfcSecret, code[:3]+" "+code[3:], now, -1); !ok {
		t.Error("code with a space in the middle did not match")
	}
	if _, ok := matchTOTP(rfcSecret, code, now, step); ok {
		t.Error("code of the last used step matched, want it rejected as a replay")
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef"} {
		if _, ok := matchTOTP(rfcSecret, bad, now, -1); ok {
			t.Errorf("matchTOTP(%q) matched", bad)
		}
	}
}

// enableTOTP sets up TOTP for userID and returns its secret.
func enableTOTP(t *testing.T, env *testEnv, userID int64) []byte {
	t.Helper()
	ctx := context.Background()
	setup, err := env.store.StartTOTP(ctx, userID, "Heimwolke test")
	if err != nil {
		t.Fatal(err)
	}
	secret, err := totpBase32.DecodeString(setup.Secret)
	if err != nil {
		t.Fatal(err)
	}
	code := hotp(secret, uint64(totpStep(env.clock.Now())), 6)
	if err := env.store.EnableTOTP(ctx, userID, code); err != nil {
		t.Fatalf("EnableTOTP: %v", err)
	}
	return secret
}

func TestTOTPLoginAndReplay(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)
	secret := enableTOTP(t, env, owner.ID)

	u, err := env.store.CheckPassword(ctx, "anna", ownerPassword, internetAddr, "https")
	if !errors.Is(err, ErrTOTPRequired) || u == nil || u.ID != owner.ID || !u.TOTPEnabled {
		t.Fatalf("CheckPassword with TOTP: got %+v, %v, want the user and ErrTOTPRequired", u, err)
	}

	// The code that EnableTOTP used is spent already.
	spent := hotp(secret, uint64(totpStep(env.clock.Now())), 6)
	if _, err := env.store.VerifyTOTP(ctx, owner.ID, spent, internetAddr, "https"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("code used by EnableTOTP: got %v, want ErrBadCredentials", err)
	}

	env.clock.Advance(30 * time.Second)
	code := hotp(secret, uint64(totpStep(env.clock.Now())), 6)
	if _, err := env.store.VerifyTOTP(ctx, owner.ID, code, internetAddr, "https"); err != nil {
		t.Fatalf("fresh code: %v", err)
	}
	if _, err := env.store.VerifyTOTP(ctx, owner.ID, code, internetAddr, "https"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("same code again: got %v, want ErrBadCredentials", err)
	}
	// The previous step is within the window but older than the used one.
	env.clock.Advance(10 * time.Second)
	if _, err := env.store.VerifyTOTP(ctx, owner.ID, spent, internetAddr, "https"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("older code in the window: got %v, want ErrBadCredentials", err)
	}
	if !strings.Contains(env.log.String(), "reason=\"reused TOTP code\"") {
		t.Error("replay not logged as a reused TOTP code")
	}

	// Reopening keeps the last used step.
	env.reopen(t)
	if _, err := env.store.VerifyTOTP(ctx, owner.ID, code, internetAddr, "https"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("same code after reopen: got %v, want ErrBadCredentials", err)
	}
}

func TestTOTPSetupFlow(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)

	if err := env.store.EnableTOTP(ctx, owner.ID, "123456"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("EnableTOTP without StartTOTP: got %v, want ErrInvalid", err)
	}

	setup, err := env.store.StartTOTP(ctx, owner.ID, "Heimwolke familie-mueller.de")
	if err != nil {
		t.Fatal(err)
	}
	if len(setup.Secret) != 32 {
		t.Errorf("secret %q has %d characters, want 32 (160 bits in base32)", setup.Secret, len(setup.Secret))
	}
	u, err := url.Parse(setup.URL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/Heimwolke familie-mueller.de:anna" {
		t.Errorf("URL %s: want otpauth://totp/Heimwolke familie-mueller.de:anna", setup.URL)
	}
	if strings.Contains(setup.URL, "+") {
		t.Errorf("URL %s escapes a space as '+', want %%20", setup.URL)
	}
	q := u.Query()
	if q.Get("secret") != setup.Secret || q.Get("issuer") != "Heimwolke familie-mueller.de" ||
		q.Get("digits") != "6" || q.Get("period") != "30" || q.Get("algorithm") != "SHA1" {
		t.Errorf("URL query %v: want secret, issuer, SHA1, 6 digits, 30 s", q)
	}

	// Pending is not enabled.
	if _, err := env.store.CheckPassword(ctx, "anna", ownerPassword, lanAddr, "https"); err != nil {
		t.Fatalf("login with TOTP pending: got %v, want no TOTP step yet", err)
	}
	secret, _ := totpBase32.DecodeString(setup.Secret)
	wrong := hotp(secret, uint64(totpStep(env.clock.Now())+5), 6)
	if err := env.store.EnableTOTP(ctx, owner.ID, wrong); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("EnableTOTP with a wrong code: got %v, want ErrBadCredentials", err)
	}
	right := hotp(secret, uint64(totpStep(env.clock.Now())), 6)
	if err := env.store.EnableTOTP(ctx, owner.ID, right); err != nil {
		t.Fatal(err)
	}
	if got, _ := env.store.User(ctx, owner.ID); !got.TOTPEnabled {
		t.Fatal("TOTPEnabled false after EnableTOTP")
	}

	if err := env.store.DisableTOTP(ctx, owner.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := env.store.CheckPassword(ctx, "anna", ownerPassword, lanAddr, "https"); err != nil {
		t.Fatalf("login after DisableTOTP: %v", err)
	}
	if _, err := env.store.VerifyTOTP(ctx, owner.ID, right, lanAddr, "https"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("VerifyTOTP with TOTP off: got %v, want ErrInvalid", err)
	}
}

// TestTOTPMatchesOathtool checks the codes against oathtool, an independent
// TOTP implementation, with the secret as StartTOTP hands it to the user.
func TestTOTPMatchesOathtool(t *testing.T) {
	oathtool := testpeer.Require(t, "oathtool", "oathtool")
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)
	setup, err := env.store.StartTOTP(ctx, owner.ID, "")
	if err != nil {
		t.Fatal(err)
	}

	now := env.clock.Now().UTC().Format("2006-01-02 15:04:05 UTC")
	out, err := exec.Command(oathtool, "--totp", "-b", "--now", now, setup.Secret).Output()
	if err != nil {
		t.Fatalf("oathtool: %v", err)
	}
	code := strings.TrimSpace(string(out))
	if err := env.store.EnableTOTP(ctx, owner.ID, code); err != nil {
		t.Fatalf("EnableTOTP with oathtool's code %s: %v", code, err)
	}
}

// TestTOTPGuessingThrottled guards against a right password buying a fresh
// budget of TOTP guesses.
func TestTOTPGuessingThrottled(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)
	enableTOTP(t, env, owner.ID)

	throttled := false
	for range 20 {
		if _, err := env.store.CheckPassword(ctx, "anna", ownerPassword, internetAddr, "https"); errors.Is(err, ErrThrottled) {
			throttled = true
			break
		}
		_, err := env.store.VerifyTOTP(ctx, owner.ID, "000000", internetAddr, "https")
		if errors.Is(err, ErrThrottled) {
			throttled = true
			break
		}
	}
	if !throttled {
		t.Fatal("20 rounds of right password and wrong TOTP code were never throttled")
	}
}
