package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Message is the index entry of one message.
type Message struct {
	UID          uint32
	Flags        []string
	Size         int64 // bytes
	InternalDate time.Time
	File         string // for OpenMessage
	Header       []byte // only if requested; nil if the header was too large to index
}

// UIDRange is an inclusive range of UIDs.
type UIDRange struct{ First, Last uint32 }

// AllUIDs covers every message of a mailbox.
var AllUIDs = []UIDRange{{1, 0xffffffff}}

// FlagOp selects how StoreFlags combines the given flags with a message's.
type FlagOp int

const (
	FlagsSet FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// systemFlags are the flags of RFC 9051 section 2.3.2 in their canonical
// spelling. \Recent is left out because IMAP4rev2 dropped it.
var systemFlags = []string{`\Answered`, `\Deleted`, `\Draft`, `\Flagged`, `\Seen`}

// normalizeFlags returns flags deduplicated, sorted, with system flags in
// canonical case, without \Recent and without anything that is not a valid
// flag atom.
func normalizeFlags(flags []string) []string {
	var out []string
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) {
			i := slices.IndexFunc(systemFlags, func(sf string) bool { return strings.EqualFold(sf, f) })
			if i < 0 {
				continue
			}
			f = systemFlags[i]
		} else if f == "" || strings.ContainsAny(f, " ()]{%*\"\\\x00\r\n") {
			continue
		}
		out = append(out, f)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func joinFlags(flags []string) string { return strings.Join(flags, " ") }

func splitFlags(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

// Append stores a message in the user's mailbox with flags and an internal
// date (zero means now) and returns the mailbox's UIDVALIDITY and the new
// UID. source is passed on in the event. The message is durable when Append
// returns.
func (s *Store) Append(ctx context.Context, login, mailbox string, msg io.Reader, flags []string, date time.Time, source any) (uidValidity, uid uint32, err error) {
	name, err := CanonicalName(mailbox)
	if err != nil {
		return 0, 0, err
	}
	if err := s.EnsureUser(ctx, login); err != nil {
		return 0, 0, err
	}
	if date.IsZero() {
		date = s.opts.Now()
	}
	flags = normalizeFlags(flags)

	file, header, err := s.writeMessage(login, msg)
	if err != nil {
		return 0, 0, fmt.Errorf("storing message for %q in %q: %w", login, name, err)
	}

	err = s.write(ctx, func(tx *sql.Tx, events *[]Event) error {
		uidValidity, uid, err = s.addMessage(ctx, tx, events, login, name, file, date, flags, header, source)
		return err
	})
	if err != nil {
		s.removeFiles([]fileRef{file})
		return 0, 0, fmt.Errorf("storing message for %q in %q: %w", login, name, err)
	}
	return uidValidity, uid, nil
}

// addMessage inserts the index row of file into the user's mailbox within
// tx, after checking the quota, and returns the mailbox's UIDVALIDITY and
// the new UID.
func (s *Store) addMessage(ctx context.Context, tx *sql.Tx, events *[]Event, login, mailbox string, file fileRef, date time.Time, flags []string, header []byte, source any) (uidValidity, uid uint32, err error) {
	m, err := lookupMailbox(ctx, tx, login, mailbox)
	if err != nil {
		return 0, 0, err
	}
	if err := s.checkQuota(ctx, tx, login, file.size); err != nil {
		return 0, 0, err
	}
	uid, err = takeUID(ctx, tx, m.ID)
	if err != nil {
		return 0, 0, err
	}
	if err := insertMessage(ctx, tx, m.ID, uid, file, date, flags, header); err != nil {
		return 0, 0, err
	}
	*events = append(*events, Event{Kind: EventAdded, MailboxID: m.ID, UIDs: []uint32{uid}, Source: source})
	return m.UIDValidity, uid, addUsage(ctx, tx, login, file.size)
}

func takeUID(ctx context.Context, tx *sql.Tx, mailboxID int64) (uint32, error) {
	var next int64
	err := tx.QueryRowContext(ctx, `UPDATE mail_mailboxes SET uid_next = uid_next + 1 WHERE id = ? RETURNING uid_next - 1`, mailboxID).Scan(&next)
	if err != nil {
		return 0, err
	}
	if next >= 0xffffffff {
		// TODO: a mailbox that has used up its UIDs needs a new
		// UIDVALIDITY and renumbered messages, which RFC 9051 allows but
		// this store does not do.
		return 0, fmt.Errorf("mailbox %d has used up its UIDs", mailboxID)
	}
	return uint32(next), nil
}

func insertMessage(ctx context.Context, tx *sql.Tx, mailboxID int64, uid uint32, file fileRef, date time.Time, flags []string, header []byte) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO mail_messages (mailbox_id, uid, file, size, internal_date, flags, search_text)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, mailboxID, uid, file.name, file.size, date.Unix(), joinFlags(flags), searchText(header))
	if err != nil {
		return err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return err
	}
	if header == nil {
		header = []byte{}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO mail_headers (message_id, header) VALUES (?, ?)`, id, header)
	return err
}

func addUsage(ctx context.Context, tx *sql.Tx, login string, delta int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE mail_users SET used = max(used + ?, 0) WHERE login = ?`, delta, login)
	return err
}

func (s *Store) checkQuota(ctx context.Context, tx *sql.Tx, login string, size int64) error {
	var used, quota int64
	err := tx.QueryRowContext(ctx, `SELECT used, quota FROM mail_users WHERE login = ?`, login).Scan(&used, &quota)
	if err != nil {
		return err
	}
	if quota <= 0 {
		quota = s.opts.DefaultQuota
	}
	if used+size > quota {
		return fmt.Errorf("%w: %d of %d bytes used, the message has %d", ErrQuotaExceeded, used, quota, size)
	}
	return nil
}

// SetQuota sets the bytes of mail the user may store. Zero restores
// Options.DefaultQuota.
func (s *Store) SetQuota(ctx context.Context, login string, bytes int64) error {
	err := s.write(ctx, func(tx *sql.Tx, _ *[]Event) error {
		if err := ensureUser(ctx, tx, login); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE mail_users SET quota = ? WHERE login = ?`, max(bytes, 0), login)
		return err
	})
	if err != nil {
		return fmt.Errorf("setting mail quota of %q: %w", login, err)
	}
	return nil
}

// Usage returns the bytes the user's messages take and the user's quota.
func (s *Store) Usage(ctx context.Context, login string) (used, quota int64, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT used, quota FROM mail_users WHERE login = ?`, login).Scan(&used, &quota)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, s.opts.DefaultQuota, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("reading mail usage of %q: %w", login, err)
	}
	if quota <= 0 {
		quota = s.opts.DefaultQuota
	}
	return used, quota, nil
}

// rangeClause returns an SQL condition on uid for ranges, and its arguments.
func rangeClause(ranges []UIDRange) (string, []any) {
	if len(ranges) == 0 {
		return "0", nil
	}
	var b strings.Builder
	args := make([]any, 0, 2*len(ranges))
	b.WriteString("(")
	for i, r := range ranges {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteString("x.uid BETWEEN ? AND ?")
		args = append(args, r.First, r.Last)
	}
	b.WriteString(")")
	return b.String(), args
}

// maxRangesPerQuery keeps the BETWEEN terms of one statement well below
// SQLite's limit of 32766 parameters.
const maxRangesPerQuery = 200

// chunkRanges calls fn with consecutive slices of ranges, each short enough
// for one statement.
func chunkRanges(ranges []UIDRange, fn func([]UIDRange) error) error {
	for len(ranges) > 0 {
		n := min(len(ranges), maxRangesPerQuery)
		if err := fn(ranges[:n]); err != nil {
			return err
		}
		ranges = ranges[n:]
	}
	return nil
}

// EachMessage calls fn for the messages of the mailbox within ranges, in
// UID order. withHeader also reads each message's header section.
func (s *Store) EachMessage(ctx context.Context, mailboxID int64, ranges []UIDRange, withHeader bool, fn func(*Message) error) error {
	return s.EachMessageFiltered(ctx, mailboxID, ranges, withHeader, nil, fn)
}

// EachMessageFiltered is EachMessage limited to messages where each string
// of searchContains occurs in a decoded value (DecodeHeaderValue) of one of
// the SearchFields, ignoring case. The filter runs inside SQLite on a short
// indexed column, which makes header searches of large mailboxes fast. It
// does not tell the fields apart, so the caller must still match the field
// it searches. Messages whose header was too large to index pass unchecked.
func (s *Store) EachMessageFiltered(ctx context.Context, mailboxID int64, ranges []UIDRange, withHeader bool, searchContains []string, fn func(*Message) error) error {
	return chunkRanges(ranges, func(chunk []UIDRange) error {
		return s.eachMessage(ctx, mailboxID, chunk, withHeader, searchContains, fn)
	})
}

func (s *Store) eachMessage(ctx context.Context, mailboxID int64, ranges []UIDRange, withHeader bool, searchContains []string, fn func(*Message) error) error {
	cond, args := rangeClause(ranges)
	args = append([]any{mailboxID}, args...)
	query := `SELECT x.uid, x.flags, x.size, x.internal_date, x.file, NULL FROM mail_messages x
		WHERE x.mailbox_id = ? AND ` + cond
	if withHeader {
		query = `SELECT x.uid, x.flags, x.size, x.internal_date, x.file, h.header FROM mail_messages x
			JOIN mail_headers h ON h.message_id = x.id
			WHERE x.mailbox_id = ? AND ` + cond
	}
	for _, needle := range searchContains {
		query += ` AND (x.search_text IS NULL OR instr(x.search_text, ?) > 0)`
		args = append(args, strings.ToLower(needle))
	}
	query += ` ORDER BY x.uid`

	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("reading messages of mailbox %d: %w", mailboxID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			m     Message
			flags string
			date  int64
		)
		if err := rows.Scan(&m.UID, &flags, &m.Size, &date, &m.File, &m.Header); err != nil {
			return fmt.Errorf("reading messages of mailbox %d: %w", mailboxID, err)
		}
		m.Flags = splitFlags(flags)
		m.InternalDate = time.Unix(date, 0)
		if withHeader && len(m.Header) == 0 {
			m.Header = nil
		}
		if err := fn(&m); err != nil {
			return err
		}
	}
	return rows.Err()
}

// StoreFlags changes the flags of the messages within ranges and returns the
// UIDs whose flags changed. Each change makes an EventFlags with source.
func (s *Store) StoreFlags(ctx context.Context, mailboxID int64, ranges []UIDRange, op FlagOp, flags []string, source any) ([]uint32, error) {
	flags = normalizeFlags(flags)
	var changed []uint32
	err := s.write(ctx, func(tx *sql.Tx, events *[]Event) error {
		var updates []flagUpdate
		err := chunkRanges(ranges, func(chunk []UIDRange) error {
			return collectFlagUpdates(ctx, tx, mailboxID, chunk, op, flags, &updates)
		})
		if err != nil {
			return err
		}

		stmt, err := tx.PrepareContext(ctx, `UPDATE mail_messages SET flags = ? WHERE id = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, u := range updates {
			if _, err := stmt.ExecContext(ctx, joinFlags(u.flags), u.id); err != nil {
				return err
			}
			changed = append(changed, u.uid)
			*events = append(*events, Event{Kind: EventFlags, MailboxID: mailboxID, UIDs: []uint32{u.uid}, Flags: u.flags, Source: source})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storing flags in mailbox %d: %w", mailboxID, err)
	}
	return changed, nil
}

type flagUpdate struct {
	id    int64
	uid   uint32
	flags []string
}

func collectFlagUpdates(ctx context.Context, tx *sql.Tx, mailboxID int64, ranges []UIDRange, op FlagOp, flags []string, updates *[]flagUpdate) error {
	cond, args := rangeClause(ranges)
	rows, err := tx.QueryContext(ctx, `SELECT x.id, x.uid, x.flags FROM mail_messages x
		WHERE x.mailbox_id = ? AND `+cond+` ORDER BY x.uid`, append([]any{mailboxID}, args...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			u   flagUpdate
			old string
		)
		if err := rows.Scan(&u.id, &u.uid, &old); err != nil {
			return err
		}
		u.flags = applyFlags(splitFlags(old), op, flags)
		if joinFlags(u.flags) != old {
			*updates = append(*updates, u)
		}
	}
	return rows.Err()
}

func applyFlags(old []string, op FlagOp, flags []string) []string {
	switch op {
	case FlagsSet:
		return flags
	case FlagsAdd:
		return normalizeFlags(append(slices.Clone(old), flags...))
	default:
		return slices.DeleteFunc(slices.Clone(old), func(f string) bool { return slices.Contains(flags, f) })
	}
}

// Expunge removes the messages flagged \Deleted within ranges (nil ranges
// means the whole mailbox) and returns their UIDs (RFC 9051 section 6.4.3, RFC 4315
// section 2.1 for UID EXPUNGE).
func (s *Store) Expunge(ctx context.Context, mailboxID int64, ranges []UIDRange, source any) ([]uint32, error) {
	if ranges == nil {
		ranges = AllUIDs
	}
	var (
		uids  []uint32
		files []fileRef
	)
	err := s.write(ctx, func(tx *sql.Tx, events *[]Event) error {
		err := chunkRanges(ranges, func(chunk []UIDRange) error {
			return deleteFlaggedDeleted(ctx, tx, mailboxID, chunk, &uids, &files)
		})
		if err != nil {
			return err
		}
		if len(uids) == 0 {
			return nil
		}
		slices.Sort(uids)
		*events = append(*events, Event{Kind: EventExpunged, MailboxID: mailboxID, UIDs: uids, Source: source})
		return addUsageOfMailbox(ctx, tx, mailboxID, -filesSize(files))
	})
	if err != nil {
		return nil, fmt.Errorf("expunging mailbox %d: %w", mailboxID, err)
	}
	s.removeFiles(files)
	return uids, nil
}

func deleteFlaggedDeleted(ctx context.Context, tx *sql.Tx, mailboxID int64, ranges []UIDRange, uids *[]uint32, files *[]fileRef) error {
	cond, args := rangeClause(ranges)
	// RETURNING cannot name a table alias, so the condition uses the
	// bare column names.
	cond = strings.ReplaceAll(cond, "x.uid", "uid")
	rows, err := tx.QueryContext(ctx, `DELETE FROM mail_messages
		WHERE mailbox_id = ? AND instr(' ' || flags || ' ', ' \Deleted ') > 0 AND `+cond+`
		RETURNING uid, file, size`, append([]any{mailboxID}, args...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			uid uint32
			f   fileRef
		)
		if err := rows.Scan(&uid, &f.name, &f.size); err != nil {
			return err
		}
		*uids = append(*uids, uid)
		*files = append(*files, f)
	}
	return rows.Err()
}

func addUsageOfMailbox(ctx context.Context, tx *sql.Tx, mailboxID int64, delta int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE mail_users SET used = max(used + ?, 0)
		WHERE login = (SELECT login FROM mail_mailboxes WHERE id = ?)`, delta, mailboxID)
	return err
}

func messageFiles(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]fileRef, error) {
	rows, err := tx.QueryContext(ctx, `SELECT file, size FROM mail_messages WHERE `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var files []fileRef
	for rows.Next() {
		var f fileRef
		if err := rows.Scan(&f.name, &f.size); err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, rows.Err()
}

// CopyResult maps source UIDs to destination UIDs (RFC 4315 COPYUID).
type CopyResult struct {
	UIDValidity uint32 // of the destination
	SourceUIDs  []uint32
	DestUIDs    []uint32
}

// Copy copies the messages within ranges to the user's mailbox dest, with
// their flags and internal dates. The copies share the message files
// through hard links.
func (s *Store) Copy(ctx context.Context, mailboxID int64, ranges []UIDRange, login, dest string) (*CopyResult, error) {
	dest, err := CanonicalName(dest)
	if err != nil {
		return nil, err
	}
	type source struct {
		Message
		link fileRef
	}
	var sources []source
	err = s.EachMessage(ctx, mailboxID, ranges, false, func(m *Message) error {
		sources = append(sources, source{Message: *m})
		return nil
	})
	if err != nil {
		return nil, err
	}

	var links []fileRef
	for i := range sources {
		name, err := s.linkMessage(login, sources[i].File)
		if err != nil {
			s.removeFiles(links)
			return nil, fmt.Errorf("copying message %d: %w", sources[i].UID, err)
		}
		sources[i].link = fileRef{name: name, size: sources[i].Size}
		links = append(links, sources[i].link)
	}
	if err := s.syncLinkDirs(links); err != nil {
		s.removeFiles(links)
		return nil, err
	}

	res := &CopyResult{}
	var unused []fileRef // links of source messages expunged meanwhile
	err = s.write(ctx, func(tx *sql.Tx, events *[]Event) error {
		unused = nil
		m, err := lookupMailbox(ctx, tx, login, dest)
		if err != nil {
			return err
		}
		if err := s.checkQuota(ctx, tx, login, filesSize(links)); err != nil {
			return err
		}
		res.UIDValidity = m.UIDValidity
		for _, src := range sources {
			uid, err := takeUID(ctx, tx, m.ID)
			if err != nil {
				return err
			}
			copied, err := copyRow(ctx, tx, mailboxID, src.UID, m.ID, uid, src.link.name)
			if err != nil {
				return err
			}
			if !copied {
				unused = append(unused, src.link)
				continue
			}
			res.SourceUIDs = append(res.SourceUIDs, src.UID)
			res.DestUIDs = append(res.DestUIDs, uid)
		}
		if len(res.DestUIDs) > 0 {
			*events = append(*events, Event{Kind: EventAdded, MailboxID: m.ID, UIDs: res.DestUIDs})
		}
		return addUsage(ctx, tx, login, filesSize(links)-filesSize(unused))
	})
	if err != nil {
		s.removeFiles(links)
		return nil, fmt.Errorf("copying messages of %q to %q: %w", login, dest, err)
	}
	s.removeFiles(unused)
	return res, nil
}

func (s *Store) syncLinkDirs(links []fileRef) error {
	dirs := make(map[string]bool)
	for _, l := range links {
		dirs[l.name[:strings.LastIndexByte(l.name, '/')]] = true
	}
	for d := range dirs {
		if err := syncDir(s.dir + "/" + d); err != nil {
			return err
		}
	}
	return nil
}

// copyRow inserts a copy of a message row under a new UID and file. It
// returns false if the source row was expunged meanwhile.
func copyRow(ctx context.Context, tx *sql.Tx, srcMailbox int64, srcUID uint32, destMailbox int64, destUID uint32, file string) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO mail_messages (mailbox_id, uid, file, size, internal_date, flags, search_text)
		SELECT ?, ?, ?, size, internal_date, flags, search_text FROM mail_messages WHERE mailbox_id = ? AND uid = ?`,
		destMailbox, destUID, file, srcMailbox, srcUID)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return false, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO mail_headers (message_id, header)
		SELECT ?, h.header FROM mail_headers h JOIN mail_messages x ON x.id = h.message_id
		WHERE x.mailbox_id = ? AND x.uid = ?`, id, srcMailbox, srcUID)
	return err == nil, err
}

// Move moves the messages within ranges to the user's mailbox dest (RFC
// 6851). They get new UIDs there, and their files stay.
func (s *Store) Move(ctx context.Context, mailboxID int64, ranges []UIDRange, login, dest string, source any) (*CopyResult, error) {
	dest, err := CanonicalName(dest)
	if err != nil {
		return nil, err
	}
	res := &CopyResult{}
	err = s.write(ctx, func(tx *sql.Tx, events *[]Event) error {
		m, err := lookupMailbox(ctx, tx, login, dest)
		if err != nil {
			return err
		}
		if m.ID == mailboxID {
			return fmt.Errorf("%w: source and destination are the same", ErrInvalidName)
		}
		res.UIDValidity = m.UIDValidity
		var ids []int64
		err = chunkRanges(ranges, func(chunk []UIDRange) error {
			return collectIDs(ctx, tx, mailboxID, chunk, &ids, &res.SourceUIDs)
		})
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		for _, id := range ids {
			uid, err := takeUID(ctx, tx, m.ID)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE mail_messages SET mailbox_id = ?, uid = ? WHERE id = ?`, m.ID, uid, id); err != nil {
				return err
			}
			res.DestUIDs = append(res.DestUIDs, uid)
		}
		*events = append(*events,
			Event{Kind: EventExpunged, MailboxID: mailboxID, UIDs: res.SourceUIDs, Source: source},
			Event{Kind: EventAdded, MailboxID: m.ID, UIDs: res.DestUIDs})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("moving messages of %q to %q: %w", login, dest, err)
	}
	return res, nil
}

func collectIDs(ctx context.Context, tx *sql.Tx, mailboxID int64, ranges []UIDRange, ids *[]int64, uids *[]uint32) error {
	cond, args := rangeClause(ranges)
	rows, err := tx.QueryContext(ctx, `SELECT x.id, x.uid FROM mail_messages x WHERE x.mailbox_id = ? AND `+cond+` ORDER BY x.uid`,
		append([]any{mailboxID}, args...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id  int64
			uid uint32
		)
		if err := rows.Scan(&id, &uid); err != nil {
			return err
		}
		*ids = append(*ids, id)
		*uids = append(*uids, uid)
	}
	return rows.Err()
}
