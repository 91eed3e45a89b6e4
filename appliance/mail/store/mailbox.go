package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Delimiter separates the levels of a mailbox name.
const Delimiter = '/'

// Inbox is the name of every user's inbox (RFC 9051 section 5.1: the name
// INBOX is case-insensitive).
const Inbox = "INBOX"

// Special-use attributes of RFC 6154 section 2.
const (
	SpecialSent    = `\Sent`
	SpecialDrafts  = `\Drafts`
	SpecialTrash   = `\Trash`
	SpecialJunk    = `\Junk`
	SpecialArchive = `\Archive`
)

// defaultMailboxes are created for a user at the first access.
var defaultMailboxes = []struct{ name, specialUse string }{
	{Inbox, ""},
	{"Sent", SpecialSent},
	{"Drafts", SpecialDrafts},
	{"Trash", SpecialTrash},
	{"Junk", SpecialJunk},
	{"Archive", SpecialArchive},
}

const maxNameLen = 255 // bytes of UTF-8 per mailbox name

// Mailbox is a folder of one user.
type Mailbox struct {
	ID          int64
	Login       string
	Name        string // UTF-8, levels separated by Delimiter
	SpecialUse  string // RFC 6154 attribute or ""
	UIDValidity uint32
	UIDNext     uint32
	Subscribed  bool
}

// Status is the summary that the IMAP STATUS command reports.
type Status struct {
	Messages    uint32
	Unseen      uint32
	Deleted     uint32
	Size        int64 // bytes
	UIDNext     uint32
	UIDValidity uint32
}

// CanonicalName returns name with a leading "INBOX" level in upper case, or
// an error wrapping ErrInvalidName.
func CanonicalName(name string) (string, error) {
	if strings.EqualFold(name, Inbox) {
		return Inbox, nil
	}
	if len(name) > len(Inbox) && name[len(Inbox)] == Delimiter && strings.EqualFold(name[:len(Inbox)], Inbox) {
		name = Inbox + name[len(Inbox):]
	}
	if err := validateName(name); err != nil {
		return "", err
	}
	return name, nil
}

func validateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) > maxNameLen:
		return fmt.Errorf("%w %q: longer than %d bytes", ErrInvalidName, name, maxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w %q: not UTF-8", ErrInvalidName, name)
	case name[0] == Delimiter || name[len(name)-1] == Delimiter || strings.Contains(name, "//"):
		return fmt.Errorf("%w: %q", ErrInvalidLevel, name)
	case strings.ContainsAny(name, "*%"):
		// RFC 9051 section 5.1: the LIST wildcards may not be part of a name.
		return fmt.Errorf("%w %q: contains * or %%", ErrInvalidName, name)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w %q: contains a control character", ErrInvalidName, name)
		}
	}
	return nil
}

// validateNewName is validateName for a mailbox that CREATE or RENAME
// makes: no level may be "." or "..". Clients that store each mailbox as
// a folder reject such a name (mbsync stops with "contains '..'
// component"), and a path built from it would leave its parent. Existing
// mailboxes with such names can still be selected, renamed and deleted.
func validateNewName(name string) error {
	for level := range strings.SplitSeq(name, string(Delimiter)) {
		if level == "." || level == ".." {
			return fmt.Errorf("%w: %q", ErrInvalidLevel, name)
		}
	}
	return nil
}

func validateLogin(login string) error {
	if login == "" || len(login) > 64 || strings.ContainsAny(login, "/\\\x00") || login == "." || login == ".." {
		return fmt.Errorf("%w %q", ErrInvalidLogin, login)
	}
	return nil
}

// ensureUser creates the user's row and default mailboxes if missing.
func ensureUser(ctx context.Context, tx *sql.Tx, login string) error {
	if err := validateLogin(login); err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO mail_users (login) VALUES (?) ON CONFLICT DO NOTHING`, login)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	for _, m := range defaultMailboxes {
		if _, err := createMailbox(ctx, tx, login, m.name, m.specialUse); err != nil {
			return err
		}
	}
	return nil
}

// EnsureUser creates the user's default mailboxes if they are missing: Inbox,
// Sent, Drafts, Trash, Junk and Archive. Before it creates them, it calls
// Options.UserExists and fails with ErrNoSuchUser for a login without an
// account.
func (s *Store) EnsureUser(ctx context.Context, login string) error {
	var exists bool
	err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM mail_users WHERE login = ?)`, login).Scan(&exists)
	if err != nil {
		return fmt.Errorf("looking up mail user %q: %w", login, err)
	}
	if exists {
		return nil
	}
	err = s.write(ctx, func(tx *sql.Tx, _ *[]Event) error {
		// Checked under s.mu, so a DeleteUser that runs after the
		// account is deleted either finds these mailboxes or runs first,
		// and then this check fails.
		if err := s.checkAccount(ctx, login); err != nil {
			return err
		}
		return ensureUser(ctx, tx, login)
	})
	if err != nil {
		return fmt.Errorf("creating mailboxes of %q: %w", login, err)
	}
	return nil
}

// checkAccount returns ErrNoSuchUser when Options.UserExists reports that
// login has no account.
func (s *Store) checkAccount(ctx context.Context, login string) error {
	if s.opts.UserExists == nil {
		return nil
	}
	ok, err := s.opts.UserExists(ctx, login)
	if err != nil {
		return fmt.Errorf("looking up the account: %w", err)
	}
	if !ok {
		return ErrNoSuchUser
	}
	return nil
}

// nextUIDValidity returns a UIDVALIDITY value that no mailbox had before.
// It starts at the current Unix time, as RFC 9051 section 2.3.1.1 suggests,
// so a store restored from an old backup does not reuse values either.
func nextUIDValidity(ctx context.Context, tx *sql.Tx, now int64) (uint32, error) {
	var last int64
	err := tx.QueryRowContext(ctx, `SELECT value FROM mail_counters WHERE name = 'uid_validity'`).Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	next := max(last+1, now) & 0xffffffff
	if next == 0 {
		next = 1
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO mail_counters (name, value) VALUES ('uid_validity', ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, next)
	return uint32(next), err
}

func createMailbox(ctx context.Context, tx *sql.Tx, login, name, specialUse string) (int64, error) {
	validity, err := nextUIDValidity(ctx, tx, time.Now().Unix())
	if err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO mail_mailboxes (login, name, special_use, uid_validity)
		VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, login, name, specialUse, validity)
	if err != nil {
		return 0, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, fmt.Errorf("%w: %q", ErrMailboxExists, name)
	}
	return res.LastInsertId()
}

// CreateMailbox creates a mailbox. specialUse is an RFC 6154 attribute or "".
// Missing parent levels are created too (RFC 9051 section 6.3.4). A name
// with an empty, "." or ".." level fails with ErrInvalidLevel.
func (s *Store) CreateMailbox(ctx context.Context, login, name, specialUse string) error {
	name, err := CanonicalName(name)
	if err != nil {
		return err
	}
	if err := validateNewName(name); err != nil {
		return err
	}
	switch specialUse {
	case "", SpecialSent, SpecialDrafts, SpecialTrash, SpecialJunk, SpecialArchive:
	default:
		return fmt.Errorf("creating mailbox %q: unsupported special use %q", name, specialUse)
	}
	err = s.write(ctx, func(tx *sql.Tx, _ *[]Event) error {
		if err := ensureUser(ctx, tx, login); err != nil {
			return err
		}
		for i, r := range name {
			if r != Delimiter {
				continue
			}
			_, err := createMailbox(ctx, tx, login, name[:i], "")
			if err != nil && !errors.Is(err, ErrMailboxExists) {
				return err
			}
		}
		_, err := createMailbox(ctx, tx, login, name, specialUse)
		return err
	})
	if err != nil {
		return fmt.Errorf("creating mailbox %q of %q: %w", name, login, err)
	}
	return nil
}

const mailboxColumns = `id, login, name, special_use, uid_validity, uid_next, subscribed`

func scanMailbox(row interface{ Scan(...any) error }) (*Mailbox, error) {
	var m Mailbox
	err := row.Scan(&m.ID, &m.Login, &m.Name, &m.SpecialUse, &m.UIDValidity, &m.UIDNext, &m.Subscribed)
	return &m, err
}

// lookupMailbox finds a mailbox by name. For the English names of the
// default mailboxes it falls back to the mailbox with the matching
// special-use attribute, so that delivery to "Junk" still works after the
// user renamed that folder.
func lookupMailbox(ctx context.Context, q querier, login, name string) (*Mailbox, error) {
	m, err := scanMailbox(q.QueryRowContext(ctx, `SELECT `+mailboxColumns+` FROM mail_mailboxes WHERE login = ? AND name = ?`, login, name))
	if err == nil {
		return m, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	for _, d := range defaultMailboxes {
		if d.name != name || d.specialUse == "" {
			continue
		}
		m, err := scanMailbox(q.QueryRowContext(ctx, `SELECT `+mailboxColumns+` FROM mail_mailboxes
			WHERE login = ? AND special_use = ? ORDER BY id LIMIT 1`, login, d.specialUse))
		if err == nil {
			return m, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrNoMailbox, name)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Mailbox returns the user's mailbox name, or an error wrapping ErrNoMailbox.
func (s *Store) Mailbox(ctx context.Context, login, name string) (*Mailbox, error) {
	name, err := CanonicalName(name)
	if err != nil {
		return nil, err
	}
	if err := s.EnsureUser(ctx, login); err != nil {
		return nil, err
	}
	return lookupMailbox(ctx, s.db, login, name)
}

// Mailboxes returns the user's mailboxes sorted by name.
func (s *Store) Mailboxes(ctx context.Context, login string) ([]Mailbox, error) {
	if err := s.EnsureUser(ctx, login); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+mailboxColumns+` FROM mail_mailboxes WHERE login = ? ORDER BY name != 'INBOX', name`, login)
	if err != nil {
		return nil, fmt.Errorf("listing mailboxes of %q: %w", login, err)
	}
	defer rows.Close()
	var list []Mailbox
	for rows.Next() {
		m, err := scanMailbox(rows)
		if err != nil {
			return nil, fmt.Errorf("listing mailboxes of %q: %w", login, err)
		}
		list = append(list, *m)
	}
	return list, rows.Err()
}

// DeleteMailbox deletes a mailbox and its messages. The inbox cannot be
// deleted (RFC 9051 section 6.3.5), and neither can a mailbox with children,
// which would leave them without a parent.
func (s *Store) DeleteMailbox(ctx context.Context, login, name string) error {
	name, err := CanonicalName(name)
	if err != nil {
		return err
	}
	if name == Inbox {
		return fmt.Errorf("deleting mailbox: %w: the inbox cannot be deleted", ErrInvalidName)
	}
	if err := s.EnsureUser(ctx, login); err != nil {
		return err
	}
	var files []fileRef
	err = s.write(ctx, func(tx *sql.Tx, events *[]Event) error {
		m, err := lookupExact(ctx, tx, login, name)
		if err != nil {
			return err
		}
		var children bool
		err = tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM mail_mailboxes WHERE login = ? AND substr(name, 1, ?) = ?)`,
			login, len(name)+1, name+string(Delimiter)).Scan(&children)
		if err != nil {
			return err
		}
		if children {
			return fmt.Errorf("%w: %q has child mailboxes, delete them first", ErrInvalidName, name)
		}
		files, err = messageFiles(ctx, tx, `mailbox_id = ?`, m.ID)
		if err != nil {
			return err
		}
		if err := addUsage(ctx, tx, login, -filesSize(files)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM mail_mailboxes WHERE id = ?`, m.ID); err != nil {
			return err
		}
		*events = append(*events, Event{Kind: EventMailboxDeleted, MailboxID: m.ID})
		return nil
	})
	if err != nil {
		return fmt.Errorf("deleting mailbox %q of %q: %w", name, login, err)
	}
	s.removeFiles(files)
	return nil
}

func lookupExact(ctx context.Context, q querier, login, name string) (*Mailbox, error) {
	m, err := scanMailbox(q.QueryRowContext(ctx, `SELECT `+mailboxColumns+` FROM mail_mailboxes WHERE login = ? AND name = ?`, login, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %q", ErrNoMailbox, name)
	}
	return m, err
}

// RenameMailbox renames a mailbox and its children. The UIDVALIDITY stays,
// since the messages keep their UIDs.
func (s *Store) RenameMailbox(ctx context.Context, login, oldName, newName string) error {
	oldName, err := CanonicalName(oldName)
	if err != nil {
		return err
	}
	newName, err = CanonicalName(newName)
	if err != nil {
		return err
	}
	if err := validateNewName(newName); err != nil {
		return err
	}
	if err := s.EnsureUser(ctx, login); err != nil {
		return err
	}
	if oldName == Inbox || newName == Inbox {
		// TODO: RFC 9051 section 6.3.6 lets a client rename INBOX, which
		// moves its messages into a new mailbox; that is rejected here.
		return fmt.Errorf("renaming mailbox %q: %w: the inbox cannot be renamed", oldName, ErrInvalidName)
	}
	err = s.write(ctx, func(tx *sql.Tx, _ *[]Event) error {
		if _, err := lookupExact(ctx, tx, login, oldName); err != nil {
			return err
		}
		if _, err := lookupExact(ctx, tx, login, newName); err == nil {
			return fmt.Errorf("%w: %q", ErrMailboxExists, newName)
		}
		if strings.HasPrefix(newName, oldName+string(Delimiter)) {
			return fmt.Errorf("%w: %q is inside %q", ErrInvalidName, newName, oldName)
		}
		_, err := tx.ExecContext(ctx, `UPDATE mail_mailboxes SET name = ? || substr(name, ?)
			WHERE login = ? AND (name = ? OR substr(name, 1, ?) = ?)`,
			newName, len(oldName)+1, login, oldName, len(oldName)+1, oldName+string(Delimiter))
		return err
	})
	if err != nil {
		return fmt.Errorf("renaming mailbox %q of %q to %q: %w", oldName, login, newName, err)
	}
	return nil
}

// SetSubscribed changes whether the mailbox is subscribed (RFC 9051 section
// 6.3.7).
func (s *Store) SetSubscribed(ctx context.Context, login, name string, subscribed bool) error {
	name, err := CanonicalName(name)
	if err != nil {
		return err
	}
	if err := s.EnsureUser(ctx, login); err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx, _ *[]Event) error {
		res, err := tx.ExecContext(ctx, `UPDATE mail_mailboxes SET subscribed = ? WHERE login = ? AND name = ?`, subscribed, login, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %q", ErrNoMailbox, name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("subscribing to mailbox %q of %q: %w", name, login, err)
	}
	return nil
}

// MailboxStatus counts the messages of a mailbox.
func (s *Store) MailboxStatus(ctx context.Context, mailboxID int64) (*Status, error) {
	var st Status
	err := s.db.QueryRowContext(ctx, `SELECT m.uid_next, m.uid_validity,
			count(x.id),
			coalesce(sum(instr(' ' || x.flags || ' ', ' \Seen ') = 0), 0),
			coalesce(sum(instr(' ' || x.flags || ' ', ' \Deleted ') > 0), 0),
			coalesce(sum(x.size), 0)
		FROM mail_mailboxes m LEFT JOIN mail_messages x ON x.mailbox_id = m.id
		WHERE m.id = ? GROUP BY m.id`, mailboxID).Scan(&st.UIDNext, &st.UIDValidity, &st.Messages, &st.Unseen, &st.Deleted, &st.Size)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: id %d", ErrNoMailbox, mailboxID)
	}
	if err != nil {
		return nil, fmt.Errorf("counting messages of mailbox %d: %w", mailboxID, err)
	}
	return &st, nil
}
