package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/heimwolke/heimwolke/packages/sqlitedb"
)

// DeleteUser deletes every mailbox and message of login, for a member who
// leaves the box. It first deletes the index rows in one transaction and
// then the message files, so a crash in between leaves only files without
// rows, which the next Open removes. Selected mailboxes get an
// EventMailboxDeleted. Deleting a login without mail is no error.
//
// Call it after the login can no longer log in or receive mail, and delete
// the account afterwards. Until the account is gone, a delivery or IMAP
// login creates the default mailboxes again, so call DeleteUser once more
// after deleting the account. From then on Options.UserExists makes
// deliveries fail with ErrNoSuchUser; without it, they recreate the
// mailboxes.
func (s *Store) DeleteUser(ctx context.Context, login string) error {
	if err := validateLogin(login); err != nil {
		return fmt.Errorf("deleting mail of %q: %w", login, err)
	}
	var files []fileRef
	err := s.write(ctx, func(tx *sql.Tx, events *[]Event) error {
		var err error
		files, err = messageFiles(ctx, tx, `mailbox_id IN (SELECT id FROM mail_mailboxes WHERE login = ?)`, login)
		if err != nil {
			return err
		}
		ids, err := mailboxIDs(ctx, tx, login)
		if err != nil {
			return err
		}
		// The foreign keys of mail_mailboxes, mail_messages and
		// mail_headers cascade this delete to every row of login.
		if _, err := tx.ExecContext(ctx, `DELETE FROM mail_users WHERE login = ?`, login); err != nil {
			return err
		}
		for _, id := range ids {
			*events = append(*events, Event{Kind: EventMailboxDeleted, MailboxID: id})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("deleting mail of %q: %w", login, err)
	}

	s.removeFiles(files)
	s.removeEmptyUserFolders(login)
	s.logger.Info("mail store: user deleted", "login", login, "messages", len(files), "bytes", filesSize(files))
	return nil
}

// mailboxIDs returns the ids of every mailbox of login.
func mailboxIDs(ctx context.Context, tx *sql.Tx, login string) ([]int64, error) {
	return sqlitedb.Int64s(ctx, tx, `SELECT id FROM mail_mailboxes WHERE login = ?`, login)
}

// removeEmptyUserFolders removes the folder of login's message files and
// its subfolders where they are empty. A folder that still contains a file,
// such as one of a delivery that runs at the same time, stays.
func (s *Store) removeEmptyUserFolders(login string) {
	if login == tmpDirName {
		// The folder of a user named "tmp" is also the store's folder
		// for files being written, which must stay.
		return
	}
	userDir := filepath.Join(s.dir, login)
	entries, err := os.ReadDir(userDir)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		s.logger.Warn("mail store: reading folder of deleted user", "login", login, "err", err)
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			os.Remove(filepath.Join(userDir, e.Name()))
		}
	}
	os.Remove(userDir)
}
