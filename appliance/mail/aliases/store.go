// Package aliases stores the mail aliases and the catch-all address of each
// of the box's domains in SQLite, and serves them to the SMTP server as an
// smtp.Directory that reads the database on every lookup. It does not
// manage users: a user's own address is its login name.
package aliases

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/heimwolke/heimwolke/packages/sqlitedb"
)

// Errors that callers tell apart with errors.Is.
var (
	// ErrInvalidAddress means that an address or a domain is not valid
	// or not one of the box's domains.
	ErrInvalidAddress = errors.New("invalid mail address")
	// ErrUnknownLogin means that the login name of an alias or catch-all
	// is no user of the box.
	ErrUnknownLogin = errors.New("no such user")
	// ErrExists means that an alias or a user already takes the address.
	ErrExists = errors.New("address already taken")
	// ErrNotFound means that there is no alias for the address.
	ErrNotFound = errors.New("no such alias")
)

// Alias is an extra address whose mail a user receives.
type Alias struct {
	// Address is the whole address in lower case, such as
	// "info@example.org".
	Address string
	// Login is the login name of the user who receives the mail.
	Login string
}

// CatchAll is the user who receives the mail for every address of Domain
// that no user or alias takes.
type CatchAll struct {
	Domain string
	Login  string
}

// Store keeps aliases and catch-alls in the tables of the "mailaliases"
// component. It is safe for concurrent use.
type Store struct {
	db *sql.DB
}

var migrations = []string{`
CREATE TABLE mailaliases_aliases (
	address TEXT PRIMARY KEY, -- lower case, local@domain
	login   TEXT NOT NULL
);
CREATE TABLE mailaliases_catchall (
	domain TEXT PRIMARY KEY, -- lower case ASCII
	login  TEXT NOT NULL
);
`}

// Open creates or upgrades the tables in db, which must come from
// sqlitedb.Open.
func Open(ctx context.Context, db *sql.DB) (*Store, error) {
	if err := sqlitedb.Migrate(ctx, db, "mailaliases", migrations); err != nil {
		return nil, fmt.Errorf("migrating mail aliases: %w", err)
	}
	return &Store{db: db}, nil
}

// alias returns the login name of the alias address, or "" without one.
func (s *Store) alias(ctx context.Context, address string) (string, error) {
	var login string
	err := s.db.QueryRowContext(ctx, `SELECT login FROM mailaliases_aliases WHERE address = ?`, address).Scan(&login)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("looking up alias %q: %w", address, err)
	}
	return login, nil
}

// catchAll returns the catch-all login of domain, or "" without one.
func (s *Store) catchAll(ctx context.Context, domain string) (string, error) {
	var login string
	err := s.db.QueryRowContext(ctx, `SELECT login FROM mailaliases_catchall WHERE domain = ?`, domain).Scan(&login)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("looking up catch-all of %q: %w", domain, err)
	}
	return login, nil
}

// List returns all aliases, ordered by domain and address.
func (s *Store) List(ctx context.Context) ([]Alias, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT address, login FROM mailaliases_aliases
		ORDER BY substr(address, instr(address, '@') + 1), address`)
	if err != nil {
		return nil, fmt.Errorf("listing mail aliases: %w", err)
	}
	defer rows.Close()
	var list []Alias
	for rows.Next() {
		var a Alias
		if err := rows.Scan(&a.Address, &a.Login); err != nil {
			return nil, fmt.Errorf("listing mail aliases: %w", err)
		}
		list = append(list, a)
	}
	return list, rows.Err()
}

// CatchAlls returns the catch-alls that are set, ordered by domain.
func (s *Store) CatchAlls(ctx context.Context) ([]CatchAll, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT domain, login FROM mailaliases_catchall ORDER BY domain`)
	if err != nil {
		return nil, fmt.Errorf("listing catch-all addresses: %w", err)
	}
	defer rows.Close()
	var list []CatchAll
	for rows.Next() {
		var c CatchAll
		if err := rows.Scan(&c.Domain, &c.Login); err != nil {
			return nil, fmt.Errorf("listing catch-all addresses: %w", err)
		}
		list = append(list, c)
	}
	return list, rows.Err()
}

// insertAlias stores a validated alias, failing with ErrExists when the
// address has one.
func (s *Store) insertAlias(ctx context.Context, a Alias) error {
	res, err := s.db.ExecContext(ctx, `INSERT INTO mailaliases_aliases (address, login) VALUES (?, ?)
		ON CONFLICT (address) DO NOTHING`, a.Address, a.Login)
	if err != nil {
		return fmt.Errorf("adding alias %q: %w", a.Address, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("adding alias %q: %w: remove the existing alias first", a.Address, ErrExists)
	}
	return nil
}

// Remove deletes the alias of address. It returns ErrNotFound when there
// is none.
func (s *Store) Remove(ctx context.Context, address string) error {
	address = strings.ToLower(strings.TrimSpace(address))
	res, err := s.db.ExecContext(ctx, `DELETE FROM mailaliases_aliases WHERE address = ?`, address)
	if err != nil {
		return fmt.Errorf("removing alias %q: %w", address, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("removing alias %q: %w", address, ErrNotFound)
	}
	return nil
}

func (s *Store) storeCatchAll(ctx context.Context, c CatchAll) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO mailaliases_catchall (domain, login) VALUES (?, ?)
		ON CONFLICT (domain) DO UPDATE SET login = excluded.login`, c.Domain, c.Login)
	if err != nil {
		return fmt.Errorf("setting catch-all of %q: %w", c.Domain, err)
	}
	return nil
}

// ClearCatchAll removes the catch-all of domain, so that mail to unknown
// addresses of it is rejected again. Clearing an unset catch-all is no
// error.
func (s *Store) ClearCatchAll(ctx context.Context, domain string) error {
	domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	if _, err := s.db.ExecContext(ctx, `DELETE FROM mailaliases_catchall WHERE domain = ?`, domain); err != nil {
		return fmt.Errorf("clearing catch-all of %q: %w", domain, err)
	}
	return nil
}

// RemoveTarget deletes every alias and catch-all whose mail goes to login,
// for a member who leaves the box, in one transaction. It returns what it
// removed, ordered: alias addresses such as "info@example.org", and a
// catch-all as "@" and its domain, such as "@example.org". Each alias has
// exactly one login, so an alias is removed as a whole. A login without
// aliases is no error.
func (s *Store) RemoveTarget(ctx context.Context, login string) (removed []string, err error) {
	login = strings.ToLower(strings.TrimSpace(login))
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("removing aliases of %q: %w", login, err)
	}
	defer tx.Rollback()

	for _, query := range []string{
		`DELETE FROM mailaliases_aliases WHERE login = ? RETURNING address`,
		`DELETE FROM mailaliases_catchall WHERE login = ? RETURNING '@' || domain`,
	} {
		addresses, err := deleteReturning(ctx, tx, query, login)
		if err != nil {
			return nil, fmt.Errorf("removing aliases of %q: %w", login, err)
		}
		removed = append(removed, addresses...)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("removing aliases of %q: %w", login, err)
	}
	slices.Sort(removed)
	return removed, nil
}

// deleteReturning runs a DELETE ... RETURNING query and returns the
// returned column.
func deleteReturning(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var values []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		values = append(values, v)
	}
	return values, rows.Err()
}
