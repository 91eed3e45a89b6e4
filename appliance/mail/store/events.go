package store

import (
	"context"
	"fmt"
)

// EventKind is the kind of change to a mailbox.
type EventKind int

const (
	// EventAdded means that messages were delivered, appended, copied or
	// moved into the mailbox. Their UIDs are larger than every UID the
	// mailbox had before.
	EventAdded EventKind = iota + 1
	// EventExpunged means that messages left the mailbox.
	EventExpunged
	// EventFlags means that the flags of one message changed.
	EventFlags
	// EventMailboxDeleted means that the mailbox is gone.
	EventMailboxDeleted
)

// Event is a committed change to a mailbox.
type Event struct {
	Kind      EventKind
	MailboxID int64
	UIDs      []uint32 // ascending
	Flags     []string // EventFlags only: the message's new flags
	Source    any      // the Change.Source of the call that made the change
}

// Listen registers fn for every committed change. fn runs while the store
// holds its write lock, in commit order, so it must be quick and must not
// call the Store.
func (s *Store) Listen(fn func(Event)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listeners = append(s.listeners, fn)
}

// Snapshot calls fn with the UIDs of the mailbox, ascending, while holding
// the write lock, so that no event is lost or seen twice between the
// snapshot and a listener that fn registers interest with.
func (s *Store) Snapshot(ctx context.Context, mailboxID int64, fn func(uids []uint32)) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	rows, err := s.db.QueryContext(ctx, `SELECT uid FROM mail_messages WHERE mailbox_id = ? ORDER BY uid`, mailboxID)
	if err != nil {
		return fmt.Errorf("reading UIDs of mailbox %d: %w", mailboxID, err)
	}
	defer rows.Close()
	var uids []uint32
	for rows.Next() {
		var uid uint32
		if err := rows.Scan(&uid); err != nil {
			return fmt.Errorf("reading UIDs of mailbox %d: %w", mailboxID, err)
		}
		uids = append(uids, uid)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading UIDs of mailbox %d: %w", mailboxID, err)
	}
	fn(uids)
	return nil
}
