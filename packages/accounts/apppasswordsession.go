package accounts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
)

// CheckAppPasswordID is CheckAppPassword that also returns the id of the
// app password that matched. A protocol session that stays open, such as
// IMAP, keeps the id and calls AppPasswordActive later to learn whether
// the app password was revoked or the user deleted. It returns
// ErrBadCredentials also when the app password was revoked during the
// check.
func (s *Store) CheckAppPasswordID(ctx context.Context, name, secret string, source netip.Addr, protocol string, scope Scope) (*User, int64, error) {
	u, err := s.CheckAppPassword(ctx, name, secret, source, protocol, scope)
	if err != nil {
		return nil, 0, err
	}
	// The secrets are random, so no two app passwords have the same hash.
	hash, _ := hashAppPassword(secret)
	var id int64
	err = s.db.QueryRowContext(ctx, `SELECT id FROM app_passwords WHERE user_id = ? AND hash = ?`, u.ID, hash).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, ErrBadCredentials
	}
	if err != nil {
		return nil, 0, fmt.Errorf("finding the app password of %q: %w", u.Name, err)
	}
	return u, id, nil
}

// AppPasswordActive reports whether the user userID still exists and still
// has the app password id. It is false once the app password is revoked
// or the user deleted, and an error only when the database fails.
func (s *Store) AppPasswordActive(ctx context.Context, userID, id int64) (bool, error) {
	var active bool
	err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM app_passwords a JOIN users u ON u.id = a.user_id
		WHERE a.id = ? AND a.user_id = ?)`, id, userID).Scan(&active)
	if err != nil {
		return false, fmt.Errorf("checking app password %d of user %d: %w", id, userID, err)
	}
	return active, nil
}
