package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

const (
	sessionTokenLen = 32 // bytes, 256 bits
	csrfSecretLen   = 32 // bytes
)

// Session is a logged-in web UI session.
type Session struct {
	User     User
	Created  time.Time
	LastSeen time.Time // updated at most once a minute

	// Expires is when the session ends unless it is used before: the
	// earlier of LastSeen plus the idle timeout and Created plus the
	// lifetime.
	Expires time.Time

	csrfSecret []byte
}

// CSRFToken returns the session's CSRF token for forms and request headers.
// It stays the same for the life of the session.
func (s *Session) CSRFToken() string {
	return base64.RawURLEncoding.EncodeToString(s.csrfSecret)
}

// ValidCSRF reports whether token is the session's CSRF token, comparing in
// constant time.
func (s *Session) ValidCSRF(token string) bool {
	return subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRFToken())) == 1
}

// CreateSession starts a web session for userID and returns its token for
// the session cookie. Only a hash of the token is stored. It also deletes
// expired sessions of all users.
func (s *Store) CreateSession(ctx context.Context, userID int64) (token string, session *Session, err error) {
	raw := make([]byte, sessionTokenLen)
	csrf := make([]byte, csrfSecretLen)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, fmt.Errorf("generating session token: %w", err)
	}
	if _, err := rand.Read(csrf); err != nil {
		return "", nil, fmt.Errorf("generating CSRF secret: %w", err)
	}
	hash := sha256.Sum256(raw)
	now := time.Unix(s.now().Unix(), 0)

	var u *User
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := s.deleteExpiredSessions(ctx, tx, now); err != nil {
			return err
		}
		u, err = scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, userID))
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO sessions (token_hash, user_id, csrf_secret, created, last_seen)
			VALUES (?, ?, ?, ?, ?)`, hash[:], userID, csrf, now.Unix(), now.Unix())
		return err
	})
	if err != nil {
		return "", nil, fmt.Errorf("creating session for user %d: %w", userID, err)
	}

	session = &Session{User: *u, Created: now, LastSeen: now, csrfSecret: csrf}
	session.Expires = s.sessionExpiry(session)
	return base64.RawURLEncoding.EncodeToString(raw), session, nil
}

// Session returns the session with the given token, or ErrNotFound when
// there is none or it expired. It records the use.
func (s *Store) Session(ctx context.Context, token string) (*Session, error) {
	hash, ok := sessionTokenHash(token)
	if !ok {
		return nil, ErrNotFound
	}

	var session Session
	var created, lastSeen int64
	var userCreated int64
	u := &session.User
	err := s.db.QueryRowContext(ctx, `SELECT s.created, s.last_seen, s.csrf_secret,
			u.id, u.name, u.display_name, u.role, u.language, u.created, u.totp_secret IS NOT NULL
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = ?`, hash).
		Scan(&created, &lastSeen, &session.csrfSecret,
			&u.ID, &u.Name, &u.DisplayName, &u.Role, &u.Language, &userCreated, &u.TOTPEnabled)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading session: %w", err)
	}
	u.Created = time.Unix(userCreated, 0)
	session.Created = time.Unix(created, 0)
	session.LastSeen = time.Unix(lastSeen, 0)
	session.Expires = s.sessionExpiry(&session)

	now := s.now()
	if !now.Before(session.Expires) {
		if err := s.deleteSessionHash(ctx, hash); err != nil {
			return nil, fmt.Errorf("deleting expired session: %w", err)
		}
		return nil, ErrNotFound
	}
	if err := s.touchSession(ctx, &session, hash, now); err != nil {
		return nil, fmt.Errorf("recording session use: %w", err)
	}
	return &session, nil
}

// DeleteSession ends the session with the given token (logout). Ending a
// session that does not exist is not an error.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	hash, ok := sessionTokenHash(token)
	if !ok {
		return nil
	}
	if err := s.deleteSessionHash(ctx, hash); err != nil {
		return fmt.Errorf("deleting session: %w", err)
	}
	return nil
}

// DeleteSessions ends all sessions of userID ("log out everywhere").
func (s *Store) DeleteSessions(ctx context.Context, userID int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
		return err
	})
	if err != nil {
		return fmt.Errorf("deleting sessions of user %d: %w", userID, err)
	}
	return nil
}

func (s *Store) sessionExpiry(session *Session) time.Time {
	idle := session.LastSeen.Add(s.opts.SessionIdleTimeout)
	absolute := session.Created.Add(s.opts.SessionLifetime)
	if idle.Before(absolute) {
		return idle
	}
	return absolute
}

// touchSession moves the session's last use to now, at most once a minute
// to spare the SD card.
func (s *Store) touchSession(ctx context.Context, session *Session, hash []byte, now time.Time) error {
	if now.Sub(session.LastSeen) < lastUsedGranularity {
		return nil
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE sessions SET last_seen = ? WHERE token_hash = ?`, now.Unix(), hash)
		return err
	})
	if err != nil {
		return err
	}
	session.LastSeen = time.Unix(now.Unix(), 0)
	session.Expires = s.sessionExpiry(session)
	return nil
}

func (s *Store) deleteSessionHash(ctx context.Context, hash []byte) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE token_hash = ?`, hash)
		return err
	})
}

func (s *Store) deleteExpiredSessions(ctx context.Context, tx *sql.Tx, now time.Time) error {
	idleCutoff := now.Add(-s.opts.SessionIdleTimeout).Unix()
	lifetimeCutoff := now.Add(-s.opts.SessionLifetime).Unix()
	_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE last_seen <= ? OR created <= ?`, idleCutoff, lifetimeCutoff)
	return err
}

// sessionTokenHash returns the stored hash of token, or false when token is
// not a token that CreateSession made.
func sessionTokenHash(token string) ([]byte, bool) {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(raw) != sessionTokenLen {
		return nil, false
	}
	hash := sha256.Sum256(raw)
	return hash[:], true
}
