package accounts

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// TOTPSetup is a pending TOTP secret in the two forms that authenticator
// apps read.
type TOTPSetup struct {
	// Secret is the key in base32 without padding, for typing it in.
	Secret string

	// URL is the otpauth:// URI for a QR code, in the key URI format that
	// Google Authenticator defined and other apps read.
	URL string
}

var totpBase32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// StartTOTP generates a new TOTP secret for userID and keeps it pending
// until EnableTOTP confirms it with a code. issuer names the box in the
// authenticator app, such as "Heimwolke familie-mueller.de", and empty means
// "Heimwolke". A TOTP secret
// that is enabled already stays in force until then.
func (s *Store) StartTOTP(ctx context.Context, userID int64, issuer string) (*TOTPSetup, error) {
	u, err := s.User(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("starting TOTP setup: %w", err)
	}
	secret := make([]byte, totpSecretLen)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("generating TOTP secret: %w", err)
	}

	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET totp_pending = ? WHERE id = ?`, secret, userID)
		if err != nil {
			return err
		}
		return requireOneRow(res)
	})
	if err != nil {
		return nil, fmt.Errorf("starting TOTP setup for %q: %w", u.Name, err)
	}

	encoded := totpBase32.EncodeToString(secret)
	return &TOTPSetup{Secret: encoded, URL: totpURL(issuer, u.Name, encoded)}, nil
}

// totpURL returns the otpauth:// URI for secret. Spaces are escaped as %20,
// not '+', because some apps show a '+' in the issuer literally.
func totpURL(issuer, account, secret string) string {
	if issuer == "" {
		issuer = "Heimwolke"
	}
	q := url.Values{}
	q.Set("secret", secret)
	q.Set("issuer", issuer)
	q.Set("algorithm", "SHA1")
	q.Set("digits", strconv.Itoa(totpDigits))
	q.Set("period", strconv.Itoa(totpPeriod))
	query := strings.ReplaceAll(q.Encode(), "+", "%20")
	return "otpauth://totp/" + url.PathEscape(issuer+":"+account) + "?" + query
}

// EnableTOTP enables the secret from StartTOTP once code shows that the
// user's app computes the same codes. A wrong code returns
// ErrBadCredentials and leaves the secret pending.
func (s *Store) EnableTOTP(ctx context.Context, userID int64, code string) error {
	var pending []byte
	err := s.db.QueryRowContext(ctx, `SELECT totp_pending FROM users WHERE id = ?`, userID).Scan(&pending)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("enabling TOTP for user %d: %w", userID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("enabling TOTP for user %d: %w", userID, err)
	}
	if pending == nil {
		return &FieldError{"totp", "no setup is pending, call StartTOTP first"}
	}

	step, ok := matchTOTP(pending, code, s.now(), -1)
	if !ok {
		return fmt.Errorf("enabling TOTP for user %d: wrong code, check the device's clock: %w", userID, ErrBadCredentials)
	}

	// The code just entered counts as used, and the pending secret must
	// still be the one it was checked against.
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users
			SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = ?
			WHERE id = ? AND totp_pending = ?`, step, userID, pending)
		if err != nil {
			return err
		}
		return requireOneRow(res)
	})
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("enabling TOTP for user %d: the pending secret changed, scan the new code: %w", userID, ErrInvalid)
	}
	if err != nil {
		return fmt.Errorf("enabling TOTP for user %d: %w", userID, err)
	}
	return nil
}

// DisableTOTP turns TOTP off for userID and drops any pending setup.
func (s *Store) DisableTOTP(ctx context.Context, userID int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = 0
			WHERE id = ?`, userID)
		if err != nil {
			return err
		}
		return requireOneRow(res)
	})
	if err != nil {
		return fmt.Errorf("disabling TOTP for user %d: %w", userID, err)
	}
	return nil
}
