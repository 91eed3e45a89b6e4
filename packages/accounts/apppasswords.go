package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Scope is the set of services an app password opens.
type Scope uint8

const (
	ScopeMail Scope = 1 << iota // SMTP submission and IMAP
	ScopeDAV                    // CalDAV, CardDAV and WebDAV
	ScopeXMPP                   // XMPP client logins

	ScopeAll = ScopeMail | ScopeDAV | ScopeXMPP
)

var scopeNames = []struct {
	scope Scope
	name  string
}{{ScopeMail, "mail"}, {ScopeDAV, "dav"}, {ScopeXMPP, "xmpp"}}

// String returns "all" or the scope names joined by commas, such as
// "mail,dav".
func (sc Scope) String() string {
	if sc == ScopeAll {
		return "all"
	}
	var names []string
	for _, n := range scopeNames {
		if sc&n.scope != 0 {
			names = append(names, n.name)
		}
	}
	if rest := sc &^ ScopeAll; rest != 0 {
		names = append(names, fmt.Sprintf("0x%x", uint8(rest)))
	}
	return strings.Join(names, ",")
}

// ParseScope parses the output of Scope.String.
func ParseScope(s string) (Scope, error) {
	if s == "all" {
		return ScopeAll, nil
	}
	var sc Scope
	for part := range strings.SplitSeq(s, ",") {
		found := false
		for _, n := range scopeNames {
			if part == n.name {
				sc |= n.scope
				found = true
			}
		}
		if !found {
			return 0, &FieldError{"scope", fmt.Sprintf("must be \"all\" or a comma-separated list of mail, dav and xmpp, not %q", s)}
		}
	}
	return sc, nil
}

// AppPassword describes an app password. The secret itself is shown once, by
// CreateAppPassword, and only its hash is stored.
type AppPassword struct {
	ID       int64
	UserID   int64
	Name     string // the user's label, such as "Thunderbird on the laptop"
	Scope    Scope
	Created  time.Time
	LastUsed time.Time // zero if never used; updated at most once a minute
}

// App password secrets are 28 characters from a 32-character alphabet, which
// gives 140 random bits, shown as 7 groups of 4 joined by '-', for example
// "k7cq-2m9x-hwa4-t3ne-pz8r-fu6d-bj5s". The alphabet is the lowercase letters
// and digits without 0, 1, l and o, which are easily confused. Lowercase is
// easier to type on a phone, and hashAppPassword accepts any case.
const (
	appPasswordAlphabet  = "abcdefghijkmnpqrstuvwxyz23456789"
	appPasswordChars     = 28
	appPasswordGroupLen  = 4
	appPasswordMaxCount  = 100 // per user
	appPasswordNameLimit = 100 // characters
	lastUsedGranularity  = time.Minute
)

// newAppPasswordSecret returns a new secret in its grouped form.
func newAppPasswordSecret() (string, error) {
	random := make([]byte, appPasswordChars)
	if _, err := rand.Read(random); err != nil {
		return "", fmt.Errorf("generating app password: %w", err)
	}
	var b strings.Builder
	for i, r := range random {
		if i > 0 && i%appPasswordGroupLen == 0 {
			b.WriteByte('-')
		}
		// 256 is a multiple of 32, so the low 5 bits are uniform.
		b.WriteByte(appPasswordAlphabet[r%32])
	}
	return b.String(), nil
}

// hashAppPassword returns the stored form of an app password as a user may
// type it: without regard to case, spaces and '-'. wellFormed is false when
// the secret cannot be one that newAppPasswordSecret made.
//
// A plain SHA-256 is enough here, unlike for the main password: the secret
// has 140 random bits, so guessing it from the hash takes about 2^139
// attempts, however fast each is. Salt and a slow hash defend chosen
// passwords against precomputed tables and dictionaries, and these are not
// chosen. A key for the hash would be stored next to it in the same
// database, so it would add nothing.
func hashAppPassword(secret string) (hash []byte, wellFormed bool) {
	normalized := asciiLower(strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, secret))

	sum := sha256.Sum256([]byte(normalized))
	if len(normalized) != appPasswordChars {
		return sum[:], false
	}
	for i := 0; i < len(normalized); i++ {
		if strings.IndexByte(appPasswordAlphabet, normalized[i]) < 0 {
			return sum[:], false
		}
	}
	return sum[:], true
}

// CreateAppPassword creates an app password for userID and returns its
// secret, which is shown to the user once and not stored. name must be 1 to
// 100 characters without control characters. A user may have at most 100.
func (s *Store) CreateAppPassword(ctx context.Context, userID int64, name string, scope Scope) (secret string, ap *AppPassword, err error) {
	name = strings.TrimSpace(norm.NFC.String(name))
	if err := validateAppPasswordName(name); err != nil {
		return "", nil, err
	}
	if scope == 0 || scope&^ScopeAll != 0 {
		return "", nil, &FieldError{"scope", fmt.Sprintf("must be a combination of mail, dav and xmpp, not %d", scope)}
	}

	secret, err = newAppPasswordSecret()
	if err != nil {
		return "", nil, err
	}
	hash, _ := hashAppPassword(secret)

	ap = &AppPassword{UserID: userID, Name: name, Scope: scope, Created: time.Unix(s.now().Unix(), 0)}
	err = s.write(ctx, func(tx *sql.Tx) error {
		var exists bool
		var count int
		err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = ?),
			(SELECT count(*) FROM app_passwords WHERE user_id = ?)`, userID, userID).Scan(&exists, &count)
		if err != nil {
			return err
		}
		if !exists {
			return ErrNotFound
		}
		if count >= appPasswordMaxCount {
			return &FieldError{"app password", fmt.Sprintf("a user may have at most %d, revoke unused ones first", appPasswordMaxCount)}
		}

		res, err := tx.ExecContext(ctx, `INSERT INTO app_passwords (user_id, name, scope, hash, created) VALUES (?, ?, ?, ?, ?)`,
			userID, name, scope, hash, ap.Created.Unix())
		if err != nil {
			return err
		}
		ap.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return "", nil, fmt.Errorf("creating app password for user %d: %w", userID, err)
	}
	return secret, ap, nil
}

// AppPasswords returns the app passwords of userID, oldest first.
func (s *Store) AppPasswords(ctx context.Context, userID int64) ([]AppPassword, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, user_id, name, scope, created, last_used
		FROM app_passwords WHERE user_id = ? ORDER BY id`, userID)
	if err != nil {
		return nil, fmt.Errorf("listing app passwords of user %d: %w", userID, err)
	}
	defer rows.Close()

	var list []AppPassword
	for rows.Next() {
		var ap AppPassword
		var created int64
		var lastUsed sql.NullInt64
		if err := rows.Scan(&ap.ID, &ap.UserID, &ap.Name, &ap.Scope, &created, &lastUsed); err != nil {
			return nil, fmt.Errorf("listing app passwords of user %d: %w", userID, err)
		}
		ap.Created = time.Unix(created, 0)
		if lastUsed.Valid {
			ap.LastUsed = time.Unix(lastUsed.Int64, 0)
		}
		list = append(list, ap)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing app passwords of user %d: %w", userID, err)
	}
	return list, nil
}

// RevokeAppPassword deletes the app password id of userID. It returns
// ErrNotFound when userID has no such app password, so one user cannot
// revoke another's.
func (s *Store) RevokeAppPassword(ctx context.Context, userID, id int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM app_passwords WHERE id = ? AND user_id = ?`, id, userID)
		if err != nil {
			return err
		}
		return requireOneRow(res)
	})
	if err != nil {
		return fmt.Errorf("revoking app password %d of user %d: %w", id, userID, err)
	}
	return nil
}

// appPasswordHash is an app password as CheckAppPassword compares it.
type appPasswordHash struct {
	id       int64
	hash     []byte
	scope    Scope
	lastUsed sql.NullInt64
}

func (s *Store) appPasswordHashes(ctx context.Context, userID int64) ([]appPasswordHash, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, hash, scope, last_used FROM app_passwords WHERE user_id = ?`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()

	var list []appPasswordHash
	for rows.Next() {
		var h appPasswordHash
		if err := rows.Scan(&h.id, &h.hash, &h.scope, &h.lastUsed); err != nil {
			return nil, err
		}
		list = append(list, h)
	}
	return list, rows.Err()
}

// touchAppPassword sets the last use of h to now, unless it was set less
// than a minute ago: a mail client logs in every few minutes, and each write
// wears the SD card. A failure is logged, not returned, because the login
// itself succeeded.
func (s *Store) touchAppPassword(ctx context.Context, h *appPasswordHash) {
	now := s.now().Unix()
	cutoff := now - int64(lastUsedGranularity/time.Second)
	if h.lastUsed.Valid && h.lastUsed.Int64 > cutoff {
		return
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE app_passwords SET last_used = ?
			WHERE id = ? AND (last_used IS NULL OR last_used <= ?)`, now, h.id, cutoff)
		return err
	})
	if err != nil {
		s.logger.Warn("recording app password use failed", "app_password_id", h.id, "err", err)
	}
}

func validateAppPasswordName(name string) error {
	switch {
	case name == "":
		return &FieldError{"app password name", "must not be empty, name the device or program, such as \"Thunderbird on the laptop\""}
	case !utf8.ValidString(name):
		return &FieldError{"app password name", "must be valid UTF-8"}
	case utf8.RuneCountInString(name) > appPasswordNameLimit:
		return &FieldError{"app password name", fmt.Sprintf("must be at most %d characters long", appPasswordNameLimit)}
	case strings.IndexFunc(name, isLineBreakOrControl) >= 0:
		return &FieldError{"app password name", "must not contain control characters or line breaks"}
	}
	return nil
}
