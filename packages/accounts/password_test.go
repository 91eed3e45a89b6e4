package accounts

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

func TestPasswordRoundTrip(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)

	u, err := env.store.CheckPassword(ctx, "anna", ownerPassword, lanAddr, "https")
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	if u.ID != owner.ID {
		t.Fatalf("got user %d, want %d", u.ID, owner.ID)
	}
	if _, err := env.store.CheckPassword(ctx, " Anna ", ownerPassword, lanAddr, "https"); err != nil {
		t.Errorf("name with case and spaces: %v", err)
	}

	for _, wrong := range []string{"", "correct horse battery stapler", strings.ToUpper(ownerPassword), strings.Repeat("x", 2000)} {
		if _, err := env.store.CheckPassword(ctx, "anna", wrong, lanAddr, "https"); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("wrong password %.20q: got %v, want ErrBadCredentials", wrong, err)
		}
	}
}

func TestUnknownUserSameError(t *testing.T) {
	env := newTestEnv(t, Options{})
	env.createOwner(t)
	_, errUnknown := env.store.CheckPassword(context.Background(), "nobody", ownerPassword, lanAddr, "https")
	_, errWrong := env.store.CheckPassword(context.Background(), "anna", "wrong password", lanAddr, "https")
	if !errors.Is(errUnknown, ErrBadCredentials) || !errors.Is(errWrong, ErrBadCredentials) {
		t.Fatalf("got %v and %v, want ErrBadCredentials for both", errUnknown, errWrong)
	}
	if errUnknown.Error() != errWrong.Error() {
		t.Fatalf("unknown user says %q, wrong password says %q, want the same", errUnknown, errWrong)
	}
}

func TestPasswordNormalizedNFC(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	_, err := env.store.CreateOwner(ctx, NewUser{Name: "anna", Language: LanguageGerman, Password: "Gr\u00fc\u00dfe aus K\u00f6ln"})
	if err != nil {
		t.Fatal(err)
	}
	// The same text in NFD and with a no-break space.
	if _, err := env.store.CheckPassword(ctx, "anna", "Gru\u0308\u00dfe\u00a0aus Ko\u0308ln", lanAddr, "https"); err != nil {
		t.Fatalf("NFD spelling of the password: %v", err)
	}
}

func TestSetPasswordReplacesOld(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)
	if err := env.store.SetPassword(ctx, owner.ID, "a brand new passphrase"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.store.CheckPassword(ctx, "anna", ownerPassword, lanAddr, "https"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old password: got %v, want ErrBadCredentials", err)
	}
	if _, err := env.store.CheckPassword(ctx, "anna", "a brand new passphrase", lanAddr, "https"); err != nil {
		t.Errorf("new password: %v", err)
	}
	if err := env.store.SetPassword(ctx, owner.ID, "short"); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetPassword(short): got %v, want ErrInvalid", err)
	}
	if err := env.store.SetPassword(ctx, 999, ownerPassword); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetPassword(999): got %v, want ErrNotFound", err)
	}
}

func TestRehashWhenWeaker(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	owner := env.createOwner(t)
	before := storedHash(t, env, owner.ID)

	stronger := Argon2Params{Memory: 128, Time: 2, Threads: 1}
	env.opts.Argon2 = stronger
	env.reopen(t)
	if _, err := env.store.CheckPassword(ctx, "anna", "wrong password", lanAddr, "https"); !errors.Is(err, ErrBadCredentials) {
		t.Fatal(err)
	}
	if got := storedHash(t, env, owner.ID); got != before {
		t.Fatalf("a failed login changed the hash to %s", got)
	}

	if _, err := env.store.CheckPassword(ctx, "anna", ownerPassword, lanAddr, "https"); err != nil {
		t.Fatal(err)
	}
	after := storedHash(t, env, owner.ID)
	h, err := parsePHC(after)
	if err != nil {
		t.Fatalf("rehashed value: %v", err)
	}
	if h.params != stronger {
		t.Fatalf("rehashed params = %+v, want %+v", h.params, stronger)
	}
	if _, err := env.store.CheckPassword(ctx, "anna", ownerPassword, lanAddr, "https"); err != nil {
		t.Fatalf("login after rehash: %v", err)
	}
	if !strings.Contains(env.log.String(), "rehashed password") {
		t.Error("rehash was not logged")
	}

	// Going back to cheaper parameters keeps the stronger hash.
	env.opts.Argon2 = cheapArgon2
	env.reopen(t)
	if _, err := env.store.CheckPassword(ctx, "anna", ownerPassword, lanAddr, "https"); err != nil {
		t.Fatal(err)
	}
	if got := storedHash(t, env, owner.ID); got != after {
		t.Fatal("a login with lower configured cost replaced the stronger hash")
	}
}

func storedHash(t *testing.T, env *testEnv, id int64) string {
	t.Helper()
	var s string
	if err := env.store.db.QueryRow(`SELECT password_hash FROM users WHERE id = ?`, id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoredHashFormat(t *testing.T) {
	h, err := newPasswordHash("pw", Argon2Params{Memory: 65536, Time: 2, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	s := h.String()
	if !strings.HasPrefix(s, "$argon2id$v=19$m=65536,t=2,p=2$") {
		t.Fatalf("hash %q lacks the PHC prefix", s)
	}
	if got := len(strings.Split(s, "$")[4]); got != 22 {
		t.Errorf("salt is %d base64 characters, want 22 (16 bytes)", got)
	}
	if got := len(strings.Split(s, "$")[5]); got != 43 {
		t.Errorf("hash is %d base64 characters, want 43 (32 bytes)", got)
	}
}

// TestArgon2KnownAnswer pins the hash to an independent implementation. The
// expected string is the output of the argon2 program (the reference C
// implementation, Debian package argon2 0~20171227):
// echo -n password | argon2 somesalt -id -t 2 -k 65536 -p 1 -l 32 -e
func TestArgon2KnownAnswer(t *testing.T) {
	const want = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	h, err := parsePHC(want)
	if err != nil {
		t.Fatal(err)
	}
	if !h.matches("password") {
		t.Fatal("password does not match the reference hash")
	}
	if h.matches("Password") {
		t.Fatal("Password matches the reference hash of password")
	}
}

// TestArgon2MatchesReferenceProgram hashes with the reference C
// implementation and checks that our parser and hash agree, for several
// costs and lane counts.
func TestArgon2MatchesReferenceProgram(t *testing.T) {
	argon2Program := testpeer.Require(t, "argon2", "argon2")
	tests := []struct {
		password, salt string
		params         Argon2Params
	}{
		{"correct horse battery staple", "0123456789abcdef", Argon2Params{Memory: 1024, Time: 1, Threads: 1}},
		{"Grüße aus Köln", "saltsaltsaltsalt", Argon2Params{Memory: 4096, Time: 3, Threads: 2}},
		{"p", "eightchr", Argon2Params{Memory: 256, Time: 2, Threads: 4}},
	}
	for _, tt := range tests {
		cmd := exec.Command(argon2Program, tt.salt, "-id", "-e",
			"-t", strconv.Itoa(int(tt.params.Time)),
			"-k", strconv.Itoa(int(tt.params.Memory)),
			"-p", strconv.Itoa(int(tt.params.Threads)),
			"-l", "32")
		cmd.Stdin = strings.NewReader(tt.password)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %v", cmd.Args, err)
		}
		encoded := strings.TrimSpace(string(out))

		h, err := parsePHC(encoded)
		if err != nil {
			t.Fatalf("parsePHC(%q from argon2): %v", encoded, err)
		}
		if h.params != tt.params {
			t.Errorf("params of %q = %+v, want %+v", encoded, h.params, tt.params)
		}
		if !h.matches(tt.password) {
			t.Errorf("%q does not match the argon2 program's hash %q", tt.password, encoded)
		}
		if got := h.String(); got != encoded {
			t.Errorf("formatting gives %q, argon2 wrote %q", got, encoded)
		}
	}
}

func TestParsePHCRejects(t *testing.T) {
	const good = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	if _, err := parsePHC(good); err != nil {
		t.Fatalf("parsePHC(good) = %v", err)
	}
	bad := []string{
		"",
		"password",
		"$argon2id",
		"$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2d$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=16$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$t=2,m=65536,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=065536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=+65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=65536,t=0,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=65536,t=2,p=0$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=65536,t=2,p=256$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=7,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=4294967295,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=99999999999,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=65536,t=2,p=1,x=3$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=65536,t=2$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ=$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=65536,t=2,p=1$c29tZ\nXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPd",
		"$argon2id$v=19$m=65536,t=2,p=1$c29tZQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1a",
		"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc$",
		"x$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=65536,t=2,p=1$c29t-XNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
	}
	for _, s := range bad {
		if h, err := parsePHC(s); err == nil {
			t.Errorf("parsePHC(%q) = %+v, want an error", s, h.params)
		}
	}
}

// FuzzParsePHC checks that the parser of stored hashes never panics and
// accepts only strings that it formats back unchanged.
func FuzzParsePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c")
	f.Add("$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc")
	f.Add("$argon2id$v=19$m=65536,t=2,p=1$$")
	f.Add("$$$$$")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parsePHC(s)
		if err != nil {
			return
		}
		if got := h.String(); got != s {
			t.Fatalf("parsePHC(%q) formats back as %q", s, got)
		}
		if err := h.params.validate(); err != nil {
			t.Fatalf("parsePHC(%q) accepted invalid params: %v", s, err)
		}
	})
}

// BenchmarkHashDefaultCost measures one Argon2id hash with the default cost.
func BenchmarkHashDefaultCost(b *testing.B) {
	for b.Loop() {
		if _, err := newPasswordHash(ownerPassword, defaultArgon2); err != nil {
			b.Fatal(err)
		}
	}
}
