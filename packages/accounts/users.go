package accounts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Role is a user's role on the box.
type Role string

const (
	RoleOwner  Role = "owner"  // administers the box, at most one
	RoleMember Role = "member" // uses the services
)

// Language is the language of a user's web UI and messages.
type Language string

const (
	LanguageGerman  Language = "de"
	LanguageEnglish Language = "en"
)

const (
	nameMaxLen        = 64
	displayNameMaxLen = 100 // characters
)

// User is an account.
type User struct {
	ID          int64
	Name        string // login name, see NewUser.Name
	DisplayName string
	Role        Role
	Language    Language
	Created     time.Time
	TOTPEnabled bool
}

// NewUser is the input to CreateOwner and CreateMember.
type NewUser struct {
	// Name is the login name: 1 to 64 of a-z, 0-9, '.', '-' and '_',
	// beginning and ending with a letter or digit, without "..". Upper-case
	// ASCII letters are lowered. The name is also the local part of the
	// user's mail and XMPP address, which is why dots may not lead, trail
	// or repeat (dot-atom, RFC 5322 section 3.2.3). ReservedNames lists
	// the names that are rejected because the box's own mail uses them.
	Name string

	// DisplayName is any text up to 100 characters without control
	// characters, stored in Unicode NFC. Empty means Name.
	DisplayName string

	Language Language
	Password string
}

// CreateOwner creates the owner. It fails with ErrExists once an owner
// exists, even if the name differs.
func (s *Store) CreateOwner(ctx context.Context, nu NewUser) (*User, error) {
	return s.createUser(ctx, nu, RoleOwner)
}

// CreateMember creates a member.
func (s *Store) CreateMember(ctx context.Context, nu NewUser) (*User, error) {
	return s.createUser(ctx, nu, RoleMember)
}

func (s *Store) createUser(ctx context.Context, nu NewUser, role Role) (*User, error) {
	nu.Name = asciiLower(nu.Name)
	nu.DisplayName = normalizeDisplayName(nu.DisplayName, nu.Name)
	if err := validateNewUser(nu); err != nil {
		return nil, err
	}
	// Hash before taking the write lock: the hash takes far longer than
	// the insert.
	hash, err := s.hashPassword(ctx, nu.Password, nu.Name)
	if err != nil {
		return nil, err
	}

	u := &User{
		Name:        nu.Name,
		DisplayName: nu.DisplayName,
		Role:        role,
		Language:    nu.Language,
		Created:     time.Unix(s.now().Unix(), 0),
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := checkNewUserFree(ctx, tx, u); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO users (name, display_name, role, language, password_hash, created)
			VALUES (?, ?, ?, ?, ?, ?)`, u.Name, u.DisplayName, u.Role, u.Language, hash, u.Created.Unix())
		if err != nil {
			return err
		}
		u.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating %s %q: %w", role, u.Name, err)
	}
	return u, nil
}

// checkNewUserFree returns ErrExists if u's name is taken or u is a second
// owner. The schema enforces both, and this check gives the clearer error.
func checkNewUserFree(ctx context.Context, tx *sql.Tx, u *User) error {
	var nameTaken, ownerExists bool
	err := tx.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM users WHERE name = ?),
		EXISTS (SELECT 1 FROM users WHERE role = 'owner')`, u.Name).Scan(&nameTaken, &ownerExists)
	if err != nil {
		return err
	}
	if nameTaken {
		return fmt.Errorf("user name %q is taken, choose another: %w", u.Name, ErrExists)
	}
	if u.Role == RoleOwner && ownerExists {
		return fmt.Errorf("an owner exists already, create a member instead: %w", ErrExists)
	}
	return nil
}

// User returns the user with the given ID.
func (s *Store) User(ctx context.Context, id int64) (*User, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id)
	u, err := scanUser(row)
	if err != nil {
		return nil, fmt.Errorf("reading user %d: %w", id, err)
	}
	return u, nil
}

// UserByName returns the user with the given login name, compared without
// regard to ASCII case.
func (s *Store) UserByName(ctx context.Context, name string) (*User, error) {
	name = asciiLower(name)
	row := s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name)
	u, err := scanUser(row)
	if err != nil {
		return nil, fmt.Errorf("reading user %q: %w", name, err)
	}
	return u, nil
}

// Users returns all users, ordered by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	defer rows.Close()

	var users []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("listing users: %w", err)
		}
		users = append(users, *u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	return users, nil
}

// RevokeAccess locks a member out while their account row stays. It ends
// their web sessions, deletes their app passwords, replaces their password
// hash with one that no password matches, and turns TOTP off. Deleting a
// member calls it first, so that no client of theirs writes while the
// services remove their data. The owner cannot be locked out.
func (s *Store) RevokeAccess(ctx context.Context, id int64) error {
	// A hash of random bytes, so that the login check takes as long as
	// for a real password and fails like a wrong one.
	locked, err := newDummyHash(s.opts.Argon2)
	if err != nil {
		return fmt.Errorf("revoking access of user %d: %w", id, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := requireMember(ctx, tx, id, "locked out"); err != nil {
			return err
		}
		if err := deleteAccess(ctx, tx, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ?, totp_secret = NULL, totp_pending = NULL
			WHERE id = ?`, locked.String(), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("revoking access of user %d: %w", id, err)
	}
	return nil
}

// DeleteUser deletes a member together with their app passwords, sessions
// and TOTP secret. The owner cannot be deleted. The services keep their
// own data of the member, so delete that first, as
// webui.Options.DeleteUserData describes.
func (s *Store) DeleteUser(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := requireMember(ctx, tx, id, "deleted"); err != nil {
			return err
		}
		// The schema cascades these deletes too. Deleting them here keeps
		// that true on a connection without foreign_keys.
		if err := deleteAccess(ctx, tx, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("deleting user %d: %w", id, err)
	}
	return nil
}

// requireMember returns ErrNotFound when user id does not exist, and a
// FieldError naming action when user id is the owner.
func requireMember(ctx context.Context, tx *sql.Tx, id int64, action string) error {
	var role Role
	err := tx.QueryRowContext(ctx, `SELECT role FROM users WHERE id = ?`, id).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	if role == RoleOwner {
		return &FieldError{"user", "the owner cannot be " + action}
	}
	return nil
}

// deleteAccess deletes the app passwords and sessions of user id.
func deleteAccess(ctx context.Context, tx *sql.Tx, id int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM app_passwords WHERE user_id = ?`, id); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, id)
	return err
}

// SetPassword replaces a user's password. Sessions and app passwords stay
// valid. Call DeleteSessions to log the user out everywhere.
func (s *Store) SetPassword(ctx context.Context, id int64, password string) error {
	u, err := s.User(ctx, id)
	if err != nil {
		return fmt.Errorf("setting password: %w", err)
	}
	hash, err := s.hashPassword(ctx, password, u.Name)
	if err != nil {
		return fmt.Errorf("setting password of %q: %w", u.Name, err)
	}
	if err := s.updatePasswordHash(ctx, id, hash); err != nil {
		return fmt.Errorf("setting password of %q: %w", u.Name, err)
	}
	return nil
}

// SetProfile replaces a user's display name and language, with the rules
// of NewUser.
func (s *Store) SetProfile(ctx context.Context, id int64, displayName string, language Language) error {
	u, err := s.User(ctx, id)
	if err != nil {
		return fmt.Errorf("setting profile: %w", err)
	}
	displayName = normalizeDisplayName(displayName, u.Name)
	if err := errors.Join(validateDisplayName(displayName), validateLanguage(language)); err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE users SET display_name = ?, language = ? WHERE id = ?`, displayName, language, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("setting profile of %q: %w", u.Name, err)
	}
	return nil
}

func (s *Store) updatePasswordHash(ctx context.Context, id int64, hash string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, hash, id)
		if err != nil {
			return err
		}
		return requireOneRow(res)
	})
}

const userColumns = `id, name, display_name, role, language, created, totp_secret IS NOT NULL`

type rowScanner interface{ Scan(dest ...any) error }

func scanUser(row rowScanner) (*User, error) {
	var u User
	var created int64
	err := row.Scan(&u.ID, &u.Name, &u.DisplayName, &u.Role, &u.Language, &created, &u.TOTPEnabled)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	u.Created = time.Unix(created, 0)
	return &u, nil
}

// requireOneRow returns ErrNotFound unless res changed a row.
func requireOneRow(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

func validateNewUser(nu NewUser) error {
	return errors.Join(
		validateName(nu.Name),
		validateNotReserved(nu.Name),
		validateDisplayName(nu.DisplayName),
		validateLanguage(nu.Language),
	)
}

func validateName(name string) error {
	const rule = "must be 1 to 64 characters from a-z, 0-9, '.', '-' and '_', beginning and ending with a letter or digit, without \"..\""
	if name == "" || len(name) > nameMaxLen || strings.Contains(name, "..") {
		return &FieldError{"name", rule}
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		edge := i == 0 || i == len(name)-1
		if !alnum && (edge || c != '.' && c != '-' && c != '_') {
			return &FieldError{"name", rule}
		}
	}
	return nil
}

func validateDisplayName(displayName string) error {
	switch {
	case !utf8.ValidString(displayName):
		return &FieldError{"display name", "must be valid UTF-8"}
	case utf8.RuneCountInString(displayName) > displayNameMaxLen:
		return &FieldError{"display name", fmt.Sprintf("must be at most %d characters long", displayNameMaxLen)}
	case strings.IndexFunc(displayName, isLineBreakOrControl) >= 0:
		return &FieldError{"display name", "must not contain control characters or line breaks"}
	}
	return nil
}

func validateLanguage(language Language) error {
	if language != LanguageGerman && language != LanguageEnglish {
		return &FieldError{"language", fmt.Sprintf("must be %q or %q, not %q", LanguageGerman, LanguageEnglish, language)}
	}
	return nil
}

// isLineBreakOrControl reports runes that could end a mail header or log
// line when a display name is written into one.
func isLineBreakOrControl(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
}

func normalizeDisplayName(displayName, name string) string {
	displayName = strings.TrimSpace(norm.NFC.String(displayName))
	if displayName == "" {
		return name
	}
	return displayName
}

// asciiLower lowers A-Z only. strings.ToLower would also map, for example,
// the Kelvin sign U+212A to 'k', so that two spellings would name one user.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
