package store

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// regularFiles returns the files below dir, relative to it.
func regularFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return files
}

func countRows(t *testing.T, s *Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDeleteUserRemovesMail(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestStore(t, dir, Options{})
	for _, login := range []string{"anna", "ben"} {
		for _, subject := range []string{"eins", "zwei"} {
			if err := s.Deliver(ctx, login, "INBOX", strings.NewReader(message(subject, "Text"))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.CreateMailbox(ctx, "ben", "Projekte/2026", ""); err != nil {
		t.Fatal(err)
	}
	inbox, err := s.Mailbox(ctx, "ben", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Copy(ctx, inbox.ID, AllUIDs, "ben", "Projekte/2026"); err != nil {
		t.Fatal(err)
	}
	var deleted []int64
	s.Listen(func(ev Event) {
		if ev.Kind == EventMailboxDeleted {
			deleted = append(deleted, ev.MailboxID)
		}
	})

	if err := s.DeleteUser(ctx, "ben"); err != nil {
		t.Fatal(err)
	}

	for table, query := range map[string]string{
		"mail_users":     `SELECT count(*) FROM mail_users WHERE login = ?`,
		"mail_mailboxes": `SELECT count(*) FROM mail_mailboxes WHERE login = ?`,
		"mail_messages":  `SELECT count(*) FROM mail_messages WHERE file LIKE ? || '/%'`,
	} {
		if n := countRows(t, s, query, "ben"); n != 0 {
			t.Errorf("%s has %d rows of ben after DeleteUser, want 0", table, n)
		}
	}
	if n := countRows(t, s, `SELECT count(*) FROM mail_headers WHERE message_id NOT IN (SELECT id FROM mail_messages)`); n != 0 {
		t.Errorf("mail_headers has %d rows without a message, want 0", n)
	}
	// INBOX, Sent, Drafts, Trash, Junk, Archive, Projekte, Projekte/2026.
	if len(deleted) != 8 {
		t.Errorf("got %d EventMailboxDeleted, want 8", len(deleted))
	}
	if _, err := os.Stat(filepath.Join(dir, "mail", "ben")); !os.IsNotExist(err) {
		t.Errorf("ben's folder of message files: stat error %v, want not exist", err)
	}
	if got := allMessages(t, s, "anna", "INBOX"); len(got) != 2 {
		t.Errorf("anna's inbox has %d messages after deleting ben, want 2", len(got))
	}
	if got := len(regularFiles(t, filepath.Join(dir, "mail", "anna"))); got != 2 {
		t.Errorf("anna has %d message files after deleting ben, want 2", got)
	}

	if err := s.DeleteUser(ctx, "ben"); err != nil {
		t.Errorf("deleting ben a second time: %v, want nil", err)
	}
	if err := s.DeleteUser(ctx, ".."); err == nil {
		t.Error(`DeleteUser("..") succeeded, want an invalid login error`)
	}
}

// TestDeleteUserLeftoversRemovedAtOpen simulates a crash after the
// index commit of DeleteUser: message files of the user are still on disk,
// and the next Open removes them.
func TestDeleteUserLeftoversRemovedAtOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestStore(t, dir, Options{})
	if err := s.Deliver(ctx, "ben", "INBOX", strings.NewReader(message("eins", "Text"))); err != nil {
		t.Fatal(err)
	}
	files := regularFiles(t, filepath.Join(dir, "mail", "ben"))
	if len(files) != 1 {
		t.Fatalf("ben has %d message files, want 1", len(files))
	}
	leftover := filepath.Join(dir, "mail", "ben", files[0])
	saved, err := os.ReadFile(leftover)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "ben"); err != nil {
		t.Fatal(err)
	}
	// The crash: the file removal never happened.
	if err := os.MkdirAll(filepath.Dir(leftover), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(leftover, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	s.Close()

	openTestStore(t, dir, Options{})
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("leftover message file after Open: stat error %v, want not exist", err)
	}
}

// TestDeliverToDeletedUserFails guards against mail in transit during a
// member's deletion recreating their mailboxes, where a later member of
// the same name would read it.
func TestDeliverToDeletedUserFails(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	accounts := map[string]bool{"anna": true, "ben": true}
	var mu sync.Mutex
	s := openTestStore(t, dir, Options{UserExists: func(ctx context.Context, login string) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return accounts[login], nil
	}})
	for _, login := range []string{"anna", "ben"} {
		if err := s.Deliver(ctx, login, "", strings.NewReader(message("vorher", "Text"))); err != nil {
			t.Fatalf("Deliver to %s before the deletion: %v", login, err)
		}
	}

	if err := s.DeleteUser(ctx, "ben"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	delete(accounts, "ben")
	mu.Unlock()

	err := s.Deliver(ctx, "ben", "", strings.NewReader(message("danach", "Text")))
	if !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("Deliver to deleted ben: got %v, want ErrNoSuchUser", err)
	}
	err = s.DeliverAll(ctx, []string{"anna", "ben"}, "", strings.NewReader(message("an beide", "Text")))
	if !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("DeliverAll to anna and deleted ben: got %v, want ErrNoSuchUser", err)
	}
	_, _, err = s.Append(ctx, "ben", "Sent", strings.NewReader(message("gesendet", "Text")), nil, time.Time{}, nil)
	if !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("Append for deleted ben: got %v, want ErrNoSuchUser", err)
	}
	if err := s.EnsureUser(ctx, "ben"); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("EnsureUser for deleted ben: got %v, want ErrNoSuchUser", err)
	}

	if n := countRows(t, s, `SELECT count(*) FROM mail_users WHERE login = 'ben'`); n != 0 {
		t.Errorf("mail_users rows of ben: got %d, want 0", n)
	}
	if n := countRows(t, s, `SELECT count(*) FROM mail_mailboxes WHERE login = 'ben'`); n != 0 {
		t.Errorf("mailboxes of ben: got %d, want 0", n)
	}
	if files := regularFiles(t, filepath.Join(dir, "mail", "ben")); len(files) != 0 {
		t.Errorf("message files of ben: got %v, want none", files)
	}
	if got := allMessages(t, s, "anna", "INBOX"); len(got) != 1 {
		t.Errorf("anna's inbox after the failed DeliverAll: got %d messages, want 1", len(got))
	}
	// A user that has an account but no mailboxes yet still gets them.
	mu.Lock()
	accounts["carla"] = true
	mu.Unlock()
	if err := s.Deliver(ctx, "carla", "", strings.NewReader(message("hallo", "Text"))); err != nil {
		t.Errorf("Deliver to new user carla: %v", err)
	}
}
