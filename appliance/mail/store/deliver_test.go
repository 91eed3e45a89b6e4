package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDeliverAllSharesOneFile(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	ctx := context.Background()
	raw := message("for all", "Hallo\nzusammen")
	if err := s.DeliverAll(ctx, []string{"anna", "ben", "anna"}, "", strings.NewReader(raw)); err != nil {
		t.Fatal(err)
	}

	anna := allMessages(t, s, "anna", "INBOX")
	ben := allMessages(t, s, "ben", "INBOX")
	if len(anna) != 1 || len(ben) != 1 {
		t.Fatalf("got %d messages for anna and %d for ben, want 1 each", len(anna), len(ben))
	}
	want := strings.ReplaceAll(raw, "\n", "\r\n")
	want = strings.ReplaceAll(want, "\r\r\n", "\r\n")
	for _, m := range []Message{anna[0], ben[0]} {
		if got := readMessage(t, s, &m); got != want {
			t.Errorf("message file %s = %q, want %q", m.File, got, want)
		}
	}
	if subjectOf(string(ben[0].Header)) != "for all" {
		t.Errorf("ben's indexed header = %q, want the subject %q", ben[0].Header, "for all")
	}

	annaInfo, err := os.Stat(filepath.Join(s.dir, anna[0].File))
	if err != nil {
		t.Fatal(err)
	}
	benInfo, err := os.Stat(filepath.Join(s.dir, ben[0].File))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(annaInfo, benInfo) {
		t.Errorf("anna's %s and ben's %s are different files, want one file with two links", anna[0].File, ben[0].File)
	}
	for _, login := range []string{"anna", "ben"} {
		used, _, err := s.Usage(ctx, login)
		if err != nil {
			t.Fatal(err)
		}
		if used != int64(len(want)) {
			t.Errorf("%s uses %d bytes, want %d", login, used, len(want))
		}
	}
	assertNoOrphans(t, s)
}

func TestDeliverAllIsAllOrNothing(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	ctx := context.Background()
	for _, login := range []string{"anna", "ben", "carla"} {
		if err := s.EnsureUser(ctx, login); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetQuota(ctx, "ben", 10); err != nil {
		t.Fatal(err)
	}

	err := s.DeliverAll(ctx, []string{"anna", "ben", "carla"}, "", strings.NewReader(message("over quota", "x")))
	if !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("DeliverAll with ben over quota = %v, want ErrQuotaExceeded", err)
	}
	for _, login := range []string{"anna", "ben", "carla"} {
		if got := allMessages(t, s, login, "INBOX"); len(got) != 0 {
			t.Errorf("%s has %d messages after the failed delivery, want 0", login, len(got))
		}
		used, _, err := s.Usage(ctx, login)
		if err != nil {
			t.Fatal(err)
		}
		if used != 0 {
			t.Errorf("%s uses %d bytes after the failed delivery, want 0", login, used)
		}
	}
	assertNoOrphans(t, s)
}

func TestDeliverAllMissingFolder(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	ctx := context.Background()
	for _, login := range []string{"anna", "ben"} {
		if err := s.EnsureUser(ctx, login); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteMailbox(ctx, "ben", "Junk"); err != nil {
		t.Fatal(err)
	}

	err := s.DeliverAll(ctx, []string{"anna", "ben"}, "Junk", strings.NewReader(message("spam", "x")))
	if !errors.Is(err, ErrNoMailbox) {
		t.Fatalf("DeliverAll to a Junk folder that ben deleted = %v, want ErrNoMailbox", err)
	}
	if got := allMessages(t, s, "anna", "Junk"); len(got) != 0 {
		t.Errorf("anna has %d messages in Junk, want 0", len(got))
	}
	assertNoOrphans(t, s)
}
