package accounts

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// loginAttempt is the account, source and protocol of one login check, for
// the limiter and the log.
type loginAttempt struct {
	// limiterKey is the account as authlimit counts it. App password
	// failures count under their own key, so that a phone that polls with
	// a revoked app password does not throttle its owner's web login.
	limiterKey string
	name       string // login name as given, ASCII-lowered
	source     netip.Addr
	protocol   string
}

func newLoginAttempt(name string, source netip.Addr, protocol string) loginAttempt {
	name = asciiLower(strings.TrimSpace(name))
	return loginAttempt{limiterKey: name, name: name, source: source, protocol: protocol}
}

// CheckPassword checks the main password of the user name, for the web
// login. source is the client's address and protocol a short name for the
// log, such as "https". source must be the real client address, for the
// LAN exemption described at authlimit.Limiter.IsLAN.
//
// It returns the user, or ErrBadCredentials, or a *ThrottledError when too
// many logins failed. When the password is right and the user has TOTP
// enabled, it returns the user together with ErrTOTPRequired, and the login
// is complete only after VerifyTOTP accepts a code. A stored hash that is
// weaker than Options.Argon2 is replaced.
func (s *Store) CheckPassword(ctx context.Context, name, password string, source netip.Addr, protocol string) (*User, error) {
	a := newLoginAttempt(name, source, protocol)
	if err := s.throttle(a); err != nil {
		return nil, err
	}

	release, err := s.acquireHashSlot(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	// Check again, because attempts that held the slots meanwhile may have
	// failed. Without this, many parallel attempts would all pass the first
	// check.
	if err := s.throttle(a); err != nil {
		return nil, err
	}

	u, stored, err := s.passwordHash(ctx, a.name)
	if errors.Is(err, ErrNotFound) {
		s.dummyHash.matches(password) // take as long as for a known user
		return nil, s.fail(a, "unknown user")
	}
	if err != nil {
		return nil, fmt.Errorf("checking password of %q: %w", a.name, err)
	}

	password = normalizePassword(password)
	if len(password) > passwordMaxBytes || !stored.matches(password) {
		return nil, s.fail(a, "wrong password")
	}
	s.rehashIfWeak(ctx, u, stored, password)

	if u.TOTPEnabled {
		// Only VerifyTOTP resets the limiter. Otherwise every right
		// password would buy a fresh budget of TOTP guesses.
		return u, ErrTOTPRequired
	}
	s.succeed(a)
	return u, nil
}

// CheckAppPassword checks an app password of the user name for a protocol
// login: mail, DAV or XMPP. scope is the service that the client logs in to,
// and the app password must cover it. source and protocol are as for
// CheckPassword; protocol names the wire protocol, such as "imap".
//
// It returns the user, or ErrBadCredentials, or a *ThrottledError when too
// many logins failed. The app password's last use is updated at most once a
// minute.
func (s *Store) CheckAppPassword(ctx context.Context, name, secret string, source netip.Addr, protocol string, scope Scope) (*User, error) {
	if scope == 0 || scope&^ScopeAll != 0 {
		return nil, &FieldError{"scope", fmt.Sprintf("must be a combination of mail, dav and xmpp, not %d", scope)}
	}
	a := newLoginAttempt(name, source, protocol)
	a.limiterKey = "app-password:" + a.name
	if err := s.throttle(a); err != nil {
		return nil, err
	}

	hash, wellFormed := hashAppPassword(secret)
	u, err := s.UserByName(ctx, a.name)
	if errors.Is(err, ErrNotFound) {
		return nil, s.fail(a, "unknown user")
	}
	if err != nil {
		return nil, fmt.Errorf("checking app password of %q: %w", a.name, err)
	}
	if !wellFormed {
		return nil, s.fail(a, "malformed app password")
	}

	candidates, err := s.appPasswordHashes(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("checking app password of %q: %w", a.name, err)
	}
	var match *appPasswordHash
	for i := range candidates {
		// Compare with every candidate, so that the time does not tell
		// which one matched.
		if subtle.ConstantTimeCompare(candidates[i].hash, hash) == 1 {
			match = &candidates[i]
		}
	}
	if match == nil {
		return nil, s.fail(a, "wrong app password")
	}
	if match.scope&scope != scope {
		return nil, s.fail(a, fmt.Sprintf("app password %d lacks scope %s", match.id, scope))
	}

	s.touchAppPassword(ctx, match)
	s.succeed(a)
	return u, nil
}

// VerifyTOTP completes a web login after CheckPassword returned
// ErrTOTPRequired for userID. It accepts each code once, and it is throttled
// like CheckPassword, with the same limiter key. It returns the user, or
// ErrBadCredentials, or a *ThrottledError.
func (s *Store) VerifyTOTP(ctx context.Context, userID int64, code string, source netip.Addr, protocol string) (*User, error) {
	u, err := s.User(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("verifying TOTP code: %w", err)
	}
	a := newLoginAttempt(u.Name, source, protocol)
	if err := s.throttle(a); err != nil {
		return nil, err
	}

	var secret []byte
	var lastStep int64
	err = s.db.QueryRowContext(ctx, `SELECT totp_secret, totp_last_step FROM users WHERE id = ?`, userID).Scan(&secret, &lastStep)
	if err != nil {
		return nil, fmt.Errorf("verifying TOTP code of %q: %w", u.Name, err)
	}
	if secret == nil {
		return nil, &FieldError{"totp", fmt.Sprintf("user %q has not enabled TOTP", u.Name)}
	}

	step, ok := matchTOTP(secret, code, s.now(), lastStep)
	if !ok {
		if _, reused := matchTOTP(secret, code, s.now(), -1); reused {
			return nil, s.fail(a, "reused TOTP code")
		}
		return nil, s.fail(a, "wrong TOTP code")
	}
	if err := s.advanceTOTPStep(ctx, userID, step); errors.Is(err, ErrNotFound) {
		// A concurrent login accepted this step or a later one first.
		return nil, s.fail(a, "reused TOTP code")
	} else if err != nil {
		return nil, fmt.Errorf("verifying TOTP code of %q: %w", u.Name, err)
	}

	s.succeed(a)
	return u, nil
}

// advanceTOTPStep records step as used, or returns ErrNotFound when it is not
// later than the last used step.
func (s *Store) advanceTOTPStep(ctx context.Context, userID, step int64) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?`, step, userID, step)
		if err != nil {
			return err
		}
		return requireOneRow(res)
	})
}

// passwordHash returns the user with the given login name and their parsed
// password hash.
func (s *Store) passwordHash(ctx context.Context, name string) (*User, phc, error) {
	var stored string
	var u User
	var created int64
	err := s.db.QueryRowContext(ctx, `SELECT `+userColumns+`, password_hash FROM users WHERE name = ?`, name).
		Scan(&u.ID, &u.Name, &u.DisplayName, &u.Role, &u.Language, &created, &u.TOTPEnabled, &stored)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, phc{}, ErrNotFound
	}
	if err != nil {
		return nil, phc{}, err
	}
	u.Created = time.Unix(created, 0)

	h, err := parsePHC(stored)
	if err != nil {
		// The message describes the format and never contains the hash.
		return nil, phc{}, fmt.Errorf("stored password hash is invalid, set a new password: %w", err)
	}
	return &u, h, nil
}

// rehashIfWeak replaces the hash of u's password when its cost is below
// Options.Argon2. A failure is logged, not returned, because the login
// itself succeeded.
func (s *Store) rehashIfWeak(ctx context.Context, u *User, stored phc, password string) {
	if !stored.params.weakerThan(s.opts.Argon2) {
		return
	}
	h, err := newPasswordHash(password, s.opts.Argon2)
	if err == nil {
		// Only replace the hash that was checked, not one that a
		// concurrent SetPassword wrote.
		err = s.write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?`,
				h.String(), u.ID, stored.String())
			return err
		})
	}
	if err != nil {
		s.logger.Warn("rehashing password failed", "user", u.Name, "err", err)
		return
	}
	s.logger.Info("rehashed password with higher cost", "user", u.Name,
		"memory_kib", s.opts.Argon2.Memory, "time", s.opts.Argon2.Time, "threads", s.opts.Argon2.Threads)
}

// throttle returns a *ThrottledError when the limiter makes a wait.
func (s *Store) throttle(a loginAttempt) error {
	wait := s.limiter.Check(a.limiterKey, a.source)
	if wait == 0 {
		return nil
	}
	// Debug, not Warn: a client that keeps retrying would flood the log,
	// and its failures are logged already.
	s.logger.Debug("login throttled", "user", loggableName(a.name), "source", a.source,
		"protocol", a.protocol, "retry_after", wait)
	return &ThrottledError{RetryAfter: wait}
}

// fail counts and logs a failed login and returns ErrBadCredentials. The
// reason goes to the log only, never to the client.
func (s *Store) fail(a loginAttempt, reason string) error {
	s.limiter.Fail(a.limiterKey, a.source)
	s.logger.Warn("login failed", "user", loggableName(a.name), "source", a.source,
		"protocol", a.protocol, "reason", reason)
	return ErrBadCredentials
}

func (s *Store) succeed(a loginAttempt) {
	s.limiter.Succeed(a.limiterKey, a.source)
	s.logger.Debug("login succeeded", "user", a.name, "source", a.source, "protocol", a.protocol)
}

// loggableName returns name if it is a valid login name, else a
// placeholder: users sometimes type their password into the name field,
// and a password rarely fits the name rules.
func loggableName(name string) string {
	if validateName(name) != nil {
		return "(invalid name)"
	}
	return name
}

// CheckSecret runs check, which compares a secret that is not a user's
// password (such as a share link's password), under the same throttle and
// hash slots as the logins. key names the secret, such as "share:12", and
// the throttle counts it apart from every account. It returns nil when
// check reports a match, else ErrBadCredentials or a *ThrottledError.
func (s *Store) CheckSecret(ctx context.Context, key string, source netip.Addr, protocol string, check func() bool) error {
	a := loginAttempt{limiterKey: "secret:" + key, name: key, source: source, protocol: protocol}
	if err := s.throttle(a); err != nil {
		return err
	}
	release, err := s.acquireHashSlot(ctx)
	if err != nil {
		return err
	}
	defer release()
	if err := s.throttle(a); err != nil {
		return err
	}
	if !check() {
		s.limiter.Fail(a.limiterKey, a.source)
		s.logger.Warn("secret check failed", "key", key, "source", source, "protocol", protocol)
		return ErrBadCredentials
	}
	s.succeed(a)
	return nil
}
