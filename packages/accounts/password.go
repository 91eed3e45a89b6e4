package accounts

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// Argon2Params is the cost of an Argon2id hash (RFC 9106).
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over the memory
	Threads uint8  // lanes, computed in parallel
}

// defaultArgon2 is the cost of new password hashes unless Options.Argon2
// sets another: 64 MiB, 2 passes, 2 lanes.
//
// The box is a Raspberry Pi 3 with 1 GiB of RAM and four Cortex-A53 cores.
// 64 MiB per hash, with at most MaxConcurrentHashes (2) at once, keeps
// logins from taking more than an eighth of the RAM. Two lanes use two cores
// per hash, which shortens the wait without lowering the cost to an
// attacker. Only the web login pays this cost: mail, DAV and XMPP clients log
// in with app passwords, which need no slow hash. So a login may take about a
// second on the Pi.
//
// NOTE: the Pi 3 time is an estimate of 0.5 to 1 s, extrapolated from x86
// timings. Measure it on a Pi before raising the cost.
var defaultArgon2 = Argon2Params{Memory: 64 * 1024, Time: 2, Threads: 2}

const (
	argon2SaltLen = 16 // bytes
	argon2KeyLen  = 32 // bytes

	// Limits for parsing stored hashes. They reject strings that would
	// exhaust memory or time on the box, not only malformed ones.
	argon2MaxMemory  = 1 << 20 // KiB, 1 GiB
	argon2MaxTime    = 64
	argon2MaxThreads = 16
	argon2MinSaltLen = 8
	argon2MaxSaltLen = 64
	argon2MinKeyLen  = 16
	argon2MaxKeyLen  = 64

	passwordMinChars = 10
	passwordMaxBytes = 1024
)

func (p Argon2Params) validate() error {
	switch {
	case p.Threads < 1 || p.Threads > argon2MaxThreads:
		return &FieldError{"Argon2 threads", fmt.Sprintf("must be 1 to %d, not %d", argon2MaxThreads, p.Threads)}
	case p.Time < 1 || p.Time > argon2MaxTime:
		return &FieldError{"Argon2 time", fmt.Sprintf("must be 1 to %d, not %d", argon2MaxTime, p.Time)}
	case p.Memory < 8*uint32(p.Threads) || p.Memory > argon2MaxMemory:
		return &FieldError{"Argon2 memory", fmt.Sprintf("must be 8 KiB per thread to %d KiB, not %d KiB", argon2MaxMemory, p.Memory)}
	}
	return nil
}

// weakerThan reports whether a hash with cost p should be replaced by one
// with cost target. The lane count changes the hash but not its cost, so it
// is not compared.
func (p Argon2Params) weakerThan(target Argon2Params) bool {
	return p.Memory < target.Memory || p.Time < target.Time
}

// phc is a parsed Argon2id hash in the PHC string format:
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>, with salt and
// hash in base64 without padding.
type phc struct {
	params Argon2Params
	salt   []byte
	key    []byte
}

func (h phc) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.params.Memory, h.params.Time, h.params.Threads,
		base64.RawStdEncoding.EncodeToString(h.salt),
		base64.RawStdEncoding.EncodeToString(h.key))
}

// parsePHC parses a stored hash. It accepts only the canonical form that
// String writes, so that parsing and formatting round-trip.
func parsePHC(s string) (phc, error) {
	fields := strings.Split(s, "$")
	if len(fields) != 6 || fields[0] != "" {
		return phc{}, errors.New("not a PHC string: want $argon2id$v=19$m=..,t=..,p=..$salt$hash")
	}
	if fields[1] != "argon2id" {
		return phc{}, fmt.Errorf("unsupported algorithm %q, want argon2id", fields[1])
	}
	if fields[2] != "v="+strconv.Itoa(argon2.Version) {
		return phc{}, fmt.Errorf("unsupported version %q, want v=%d", fields[2], argon2.Version)
	}

	params, err := parseArgon2Params(fields[3])
	if err != nil {
		return phc{}, err
	}
	salt, err := decodePHCBase64("salt", fields[4], argon2MinSaltLen, argon2MaxSaltLen)
	if err != nil {
		return phc{}, err
	}
	key, err := decodePHCBase64("hash", fields[5], argon2MinKeyLen, argon2MaxKeyLen)
	if err != nil {
		return phc{}, err
	}
	return phc{params: params, salt: salt, key: key}, nil
}

// parseArgon2Params parses "m=65536,t=2,p=2" with the keys in this order.
func parseArgon2Params(s string) (Argon2Params, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return Argon2Params{}, fmt.Errorf("invalid parameters %q, want m=..,t=..,p=..", s)
	}

	var values [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		digits, ok := strings.CutPrefix(parts[i], name+"=")
		if !ok {
			return Argon2Params{}, fmt.Errorf("invalid parameters %q, want m=..,t=..,p=..", s)
		}
		v, err := strconv.ParseUint(digits, 10, 32)
		if err != nil || strconv.FormatUint(v, 10) != digits {
			return Argon2Params{}, fmt.Errorf("invalid parameter %s=%q, want a decimal number", name, digits)
		}
		values[i] = v
	}
	if values[2] > argon2MaxThreads {
		return Argon2Params{}, fmt.Errorf("invalid parameter p=%d, want at most %d", values[2], argon2MaxThreads)
	}

	p := Argon2Params{Memory: uint32(values[0]), Time: uint32(values[1]), Threads: uint8(values[2])}
	if err := p.validate(); err != nil {
		return Argon2Params{}, err
	}
	return p, nil
}

func decodePHCBase64(field, s string, minLen, maxLen int) ([]byte, error) {
	b, err := base64.RawStdEncoding.Strict().DecodeString(s)
	// The decoder skips CR and LF, so compare with the re-encoding to accept
	// only the canonical form.
	if err != nil || base64.RawStdEncoding.EncodeToString(b) != s {
		return nil, fmt.Errorf("invalid %s: want base64 without padding", field)
	}
	if len(b) < minLen || len(b) > maxLen {
		return nil, fmt.Errorf("invalid %s: %d bytes, want %d to %d", field, len(b), minLen, maxLen)
	}
	return b, nil
}

// newPasswordHash hashes password with a new random salt.
func newPasswordHash(password string, params Argon2Params) (phc, error) {
	salt := make([]byte, argon2SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return phc{}, fmt.Errorf("generating salt: %w", err)
	}
	h := phc{params: params, salt: salt}
	h.key = h.derive(password, argon2KeyLen)
	return h, nil
}

// newDummyHash returns a hash that no password matches, with the cost of
// a real one.
func newDummyHash(params Argon2Params) (phc, error) {
	h := phc{params: params, salt: make([]byte, argon2SaltLen), key: make([]byte, argon2KeyLen)}
	if _, err := rand.Read(h.salt); err != nil {
		return phc{}, fmt.Errorf("generating dummy hash: %w", err)
	}
	if _, err := rand.Read(h.key); err != nil {
		return phc{}, fmt.Errorf("generating dummy hash: %w", err)
	}
	return h, nil
}

func (h phc) derive(password string, keyLen int) []byte {
	p := h.params
	return argon2.IDKey([]byte(password), h.salt, p.Time, p.Memory, p.Threads, uint32(keyLen))
}

// matches reports whether password hashes to h, comparing in constant time.
func (h phc) matches(password string) bool {
	return subtle.ConstantTimeCompare(h.derive(password, len(h.key)), h.key) == 1
}

// normalizePassword applies the mapping and normalization rules of the
// OpaqueString profile (RFC 8265 section 4.2): non-ASCII spaces become
// U+0020, then Unicode NFC. The same characters typed on different systems
// then give the same hash.
func normalizePassword(password string) string {
	mapped := strings.Map(func(r rune) rune {
		if r > unicode.MaxASCII && unicode.Is(unicode.Zs, r) {
			return ' '
		}
		return r
	}, password)
	return norm.NFC.String(mapped)
}

// validatePassword checks a new, normalized password for the user name.
func validatePassword(password, userName string) error {
	switch {
	case !utf8.ValidString(password):
		return &FieldError{"password", "must be valid UTF-8"}
	case utf8.RuneCountInString(password) < passwordMinChars:
		return &FieldError{"password", fmt.Sprintf("must be at least %d characters long", passwordMinChars)}
	case len(password) > passwordMaxBytes:
		return &FieldError{"password", fmt.Sprintf("must be at most %d bytes long", passwordMaxBytes)}
	case strings.IndexFunc(password, unicode.IsControl) >= 0:
		// The OpaqueString profile's FreeformClass disallows them.
		return &FieldError{"password", "must not contain control characters"}
	case strings.EqualFold(password, userName):
		return &FieldError{"password", "must not be the user name"}
	}
	return nil
}

// acquireHashSlot waits until fewer than MaxConcurrentHashes Argon2id
// computations run, and returns the function that frees the slot.
func (s *Store) acquireHashSlot(ctx context.Context) (release func(), err error) {
	select {
	case s.hashSlots <- struct{}{}:
		return func() { <-s.hashSlots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// hashPassword validates and hashes a new password for userName.
func (s *Store) hashPassword(ctx context.Context, password, userName string) (string, error) {
	password = normalizePassword(password)
	if err := validatePassword(password, userName); err != nil {
		return "", err
	}

	release, err := s.acquireHashSlot(ctx)
	if err != nil {
		return "", err
	}
	defer release()

	h, err := newPasswordHash(password, s.opts.Argon2)
	if err != nil {
		return "", err
	}
	return h.String(), nil
}
