package store

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Deliver stores an incoming message in the user's folder ("" means the
// inbox, "Junk" the spam folder). The message is durable when Deliver
// returns nil. It fails with ErrQuotaExceeded, ErrTooBig, ErrNoMailbox or,
// for a login without mailboxes and account, ErrNoSuchUser.
func (s *Store) Deliver(ctx context.Context, login, folder string, msg io.Reader) error {
	if folder == "" {
		folder = Inbox
	}
	_, _, err := s.Append(ctx, login, folder, msg, nil, time.Time{}, nil)
	return err
}

// DeliverAll stores one incoming message in the folder of every user in
// logins, as Deliver does, but all or nothing: either every user has the
// message when DeliverAll returns nil, or no user has it. Duplicate logins
// receive one copy. It fails with ErrQuotaExceeded when any user is over
// quota, ErrTooBig, ErrNoMailbox or, when any login has neither mailboxes
// nor an account, ErrNoSuchUser.
//
// The message is written to one file, which every further user gets as a
// hard link, and all index rows commit in one SQLite transaction. Files of
// a failed or interrupted delivery have no index row: a failure removes
// them at once, and after a crash the next Open does.
func (s *Store) DeliverAll(ctx context.Context, logins []string, folder string, msg io.Reader) error {
	logins = slices.Compact(slices.Sorted(slices.Values(logins)))
	if len(logins) == 0 {
		return nil
	}
	if folder == "" {
		folder = Inbox
	}
	name, err := CanonicalName(folder)
	if err != nil {
		return err
	}
	for _, login := range logins {
		if err := s.EnsureUser(ctx, login); err != nil {
			return err
		}
	}

	files, header, err := s.writeMessageForAll(logins, msg)
	if err != nil {
		return fmt.Errorf("delivering message to %s in %q: %w", strings.Join(logins, ", "), name, err)
	}
	date := s.opts.Now()
	err = s.write(ctx, func(tx *sql.Tx, events *[]Event) error {
		for i, login := range logins {
			if _, _, err := s.addMessage(ctx, tx, events, login, name, files[i], date, nil, header, nil); err != nil {
				return fmt.Errorf("user %q: %w", login, err)
			}
		}
		return nil
	})
	if err != nil {
		s.removeFiles(files)
		return fmt.Errorf("delivering message to %s in %q: %w", strings.Join(logins, ", "), name, err)
	}
	return nil
}

// writeMessageForAll writes msg once for logins[0] and links the file for
// the other logins, fsyncing every new folder entry. files[i] belongs to
// logins[i].
func (s *Store) writeMessageForAll(logins []string, msg io.Reader) (files []fileRef, header []byte, err error) {
	first, header, err := s.writeMessage(logins[0], msg)
	if err != nil {
		return nil, nil, err
	}
	files = []fileRef{first}
	for _, login := range logins[1:] {
		link, err := s.linkMessage(login, first.name)
		if err != nil {
			s.removeFiles(files)
			return nil, nil, err
		}
		files = append(files, fileRef{name: link, size: first.size})
	}
	if err := s.syncLinkDirs(files[1:]); err != nil {
		s.removeFiles(files)
		return nil, nil, err
	}
	return files, header, nil
}
