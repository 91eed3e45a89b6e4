package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

func openTestStore(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	opts.Dir = filepath.Join(dir, "mail")
	opts.DatabasePath = filepath.Join(dir, "heimwolke.db")
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func message(subject, body string) string {
	return "From: bernd@example.org\r\nSubject: " + subject + "\r\n\r\n" + body
}

func readMessage(t *testing.T, s *Store, m *Message) string {
	t.Helper()
	f, err := s.OpenMessage(m.File)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func allMessages(t *testing.T, s *Store, login, mailbox string) []Message {
	t.Helper()
	m, err := s.Mailbox(context.Background(), login, mailbox)
	if err != nil {
		t.Fatal(err)
	}
	var out []Message
	err = s.EachMessage(context.Background(), m.ID, AllUIDs, true, func(msg *Message) error {
		out = append(out, *msg)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDefaultMailboxesWithSpecialUse(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	list, err := s.Mailboxes(context.Background(), "anna")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range list {
		got[m.Name] = m.SpecialUse
	}
	want := map[string]string{"INBOX": "", "Sent": `\Sent`, "Drafts": `\Drafts`, "Trash": `\Trash`, "Junk": `\Junk`, "Archive": `\Archive`}
	for name, use := range want {
		if g, ok := got[name]; !ok || g != use {
			t.Errorf("mailbox %s: special use %q (exists %v), want %q", name, g, ok, use)
		}
	}
	if list[0].Name != "INBOX" {
		t.Errorf("first mailbox = %q, want INBOX", list[0].Name)
	}
}

func TestDeliverNormalizesLineEnds(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	raw := "Subject: lf\nX-Mixed: a\r\n\nline one\nline two\rline three\r\n"
	if err := s.Deliver(context.Background(), "anna", "", strings.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	msgs := allMessages(t, s, "anna", "INBOX")
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1", len(msgs))
	}
	want := "Subject: lf\r\nX-Mixed: a\r\n\r\nline one\r\nline two\r\nline three\r\n"
	if got := readMessage(t, s, &msgs[0]); got != want {
		t.Errorf("stored message = %q, want %q", got, want)
	}
	if msgs[0].Size != int64(len(want)) {
		t.Errorf("size = %d, want %d", msgs[0].Size, len(want))
	}
	if got := string(msgs[0].Header); got != "Subject: lf\r\nX-Mixed: a\r\n\r\n" {
		t.Errorf("indexed header = %q, want the two fields and the empty line", got)
	}
}

func TestCopyCRLFAcrossChunks(t *testing.T) {
	// A CR at the end of one read and LF at the start of the next must
	// stay one line end.
	var out bytes.Buffer
	r := io.MultiReader(strings.NewReader("a\r"), strings.NewReader("\nb\r"), strings.NewReader("c"))
	if _, err := copyCRLF(&out, r, 100); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "a\r\nb\r\nc"; got != want {
		t.Errorf("copyCRLF = %q, want %q", got, want)
	}
}

func TestUIDsAndValidityStableAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openTestStore(t, dir, Options{})
	var uids []uint32
	var validity uint32
	for i := range 3 {
		v, uid, err := s.Append(ctx, "anna", "INBOX", strings.NewReader(message("m", "x")), nil, time.Time{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && v != validity {
			t.Errorf("UIDVALIDITY changed from %d to %d between appends", validity, v)
		}
		validity = v
		uids = append(uids, uid)
	}
	if !slices.Equal(uids, []uint32{1, 2, 3}) {
		t.Errorf("UIDs = %v, want [1 2 3]", uids)
	}
	m, _ := s.Mailbox(ctx, "anna", "INBOX")
	s.StoreFlags(ctx, m.ID, []UIDRange{{3, 3}}, FlagsAdd, []string{`\deleted`}, nil)
	if got, err := s.Expunge(ctx, m.ID, nil, nil); err != nil || !slices.Equal(got, []uint32{3}) {
		t.Fatalf("Expunge = %v, %v; want [3]", got, err)
	}
	s.Close()

	s = openTestStore(t, dir, Options{})
	v, uid, err := s.Append(ctx, "anna", "INBOX", strings.NewReader(message("m", "x")), nil, time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v != validity {
		t.Errorf("UIDVALIDITY after reopen = %d, want %d", v, validity)
	}
	if uid != 4 {
		t.Errorf("UID after reopen and expunge of UID 3 = %d, want 4", uid)
	}
}

func TestQuotaExceeded(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{DefaultQuota: 100})
	ctx := context.Background()
	if err := s.Deliver(ctx, "anna", "", strings.NewReader(message("small", "x"))); err != nil {
		t.Fatal(err)
	}
	err := s.Deliver(ctx, "anna", "", strings.NewReader(message("big", strings.Repeat("x", 100))))
	if !errors.Is(err, ErrQuotaExceeded) {
		t.Errorf("Deliver past the quota = %v, want ErrQuotaExceeded", err)
	}
	used, quota, err := s.Usage(ctx, "anna")
	if err != nil || quota != 100 || used != int64(len(message("small", "x"))) {
		t.Errorf("Usage = %d, %d, %v; want %d, 100", used, quota, err, len(message("small", "x")))
	}
	if err := s.SetQuota(ctx, "anna", 1000); err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(ctx, "anna", "", strings.NewReader(message("big", strings.Repeat("x", 100)))); err != nil {
		t.Errorf("Deliver after raising the quota: %v", err)
	}
	assertNoOrphans(t, s)
}

func TestTooBig(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{MaxMessageSize: 50})
	err := s.Deliver(context.Background(), "anna", "", strings.NewReader(message("big", strings.Repeat("x", 100))))
	if !errors.Is(err, ErrTooBig) {
		t.Errorf("Deliver of 100 bytes with a 50-byte limit = %v, want ErrTooBig", err)
	}
	assertNoOrphans(t, s)
}

func TestDeliverToRenamedJunk(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	ctx := context.Background()
	if err := s.RenameMailbox(ctx, "anna", "Junk", "Spam"); err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(ctx, "anna", "Junk", strings.NewReader(message("spam", "x"))); err != nil {
		t.Fatalf("Deliver to Junk after renaming it to Spam: %v", err)
	}
	if got := len(allMessages(t, s, "anna", "Spam")); got != 1 {
		t.Errorf("Spam has %d messages, want 1", got)
	}
}

func TestMailboxNames(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	ctx := context.Background()
	if err := s.CreateMailbox(ctx, "anna", "Vereine/Schützen", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mailbox(ctx, "anna", "Vereine"); err != nil {
		t.Errorf("parent created with the child: %v", err)
	}
	if err := s.CreateMailbox(ctx, "anna", "vereine/Schützen", ""); err != nil {
		t.Errorf("names are case-sensitive except INBOX, got %v", err)
	}
	if err := s.CreateMailbox(ctx, "anna", "Vereine/Schützen", ""); !errors.Is(err, ErrMailboxExists) {
		t.Errorf("second create = %v, want ErrMailboxExists", err)
	}
	for _, bad := range []string{"", "/a", "a/", "a//b", "a*", "a%b", "a\x01"} {
		if err := s.CreateMailbox(ctx, "anna", bad, ""); !errors.Is(err, ErrInvalidName) {
			t.Errorf("CreateMailbox(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
	if m, err := s.Mailbox(ctx, "anna", "inbox"); err != nil || m.Name != "INBOX" {
		t.Errorf("Mailbox(inbox) = %v, %v; want INBOX", m, err)
	}
	if err := s.RenameMailbox(ctx, "anna", "Vereine", "Gruppen"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mailbox(ctx, "anna", "Gruppen/Schützen"); err != nil {
		t.Errorf("child not renamed with its parent: %v", err)
	}
	if err := s.DeleteMailbox(ctx, "anna", "INBOX"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("DeleteMailbox(INBOX) = %v, want ErrInvalidName", err)
	}
}

func TestCopyMoveDelete(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	ctx := context.Background()
	for _, subj := range []string{"a", "b", "c"} {
		if _, _, err := s.Append(ctx, "anna", "INBOX", strings.NewReader(message(subj, subj)), []string{`\Flagged`}, time.Time{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	inbox, _ := s.Mailbox(ctx, "anna", "INBOX")
	s.CreateMailbox(ctx, "anna", "Kopie", "")

	res, err := s.Copy(ctx, inbox.ID, []UIDRange{{1, 2}}, "anna", "Kopie")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.SourceUIDs, []uint32{1, 2}) || !slices.Equal(res.DestUIDs, []uint32{1, 2}) {
		t.Errorf("COPYUID = %v -> %v, want [1 2] -> [1 2]", res.SourceUIDs, res.DestUIDs)
	}
	copies := allMessages(t, s, "anna", "Kopie")
	if len(copies) != 2 || !slices.Equal(copies[0].Flags, []string{`\Flagged`}) {
		t.Fatalf("copies = %+v, want 2 messages flagged \\Flagged", copies)
	}
	if got := readMessage(t, s, &copies[1]); got != message("b", "b") {
		t.Errorf("copied message = %q, want %q", got, message("b", "b"))
	}

	res, err = s.Move(ctx, inbox.ID, []UIDRange{{3, 3}}, "anna", "Archive", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.DestUIDs) != 1 || res.DestUIDs[0] != 1 {
		t.Errorf("moved to UIDs %v, want [1]", res.DestUIDs)
	}
	if got := len(allMessages(t, s, "anna", "INBOX")); got != 2 {
		t.Errorf("INBOX has %d messages after the move, want 2", got)
	}

	if err := s.DeleteMailbox(ctx, "anna", "Kopie"); err != nil {
		t.Fatal(err)
	}
	assertNoOrphans(t, s)
	used, _, _ := s.Usage(ctx, "anna")
	want := int64(3 * len(message("a", "a")))
	if used != want {
		t.Errorf("usage after copy, move and delete = %d, want %d", used, want)
	}
}

func TestExportMbox(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	ctx := context.Background()
	date := time.Date(2026, 12, 4, 9, 5, 0, 0, time.UTC)
	bodies := []string{"From here\r\n>From there\r\nplain", "second\r\n"}
	for _, b := range bodies {
		if _, _, err := s.Append(ctx, "anna", "Archive", strings.NewReader(message("m", b)), nil, date, nil); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := s.ExportMbox(ctx, "anna", "Archive", &out); err != nil {
		t.Fatal(err)
	}
	want := "From MAILER-DAEMON Fri Dec  4 09:05:00 2026\n" +
		"From: bernd@example.org\nSubject: m\n\n>From here\n>>From there\nplain\n\n" +
		"From MAILER-DAEMON Fri Dec  4 09:05:00 2026\n" +
		"From: bernd@example.org\nSubject: m\n\nsecond\n\n"
	if out.String() != want {
		t.Errorf("mbox =\n%q\nwant\n%q", out.String(), want)
	}
}

func TestOrphanFileRemovedAtOpen(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, Options{})
	if err := s.Deliver(context.Background(), "anna", "", strings.NewReader(message("kept", "x"))); err != nil {
		t.Fatal(err)
	}
	// What a crash between the rename of the file and the commit of its
	// row leaves behind, and a half-written temporary file.
	orphan := filepath.Join(dir, "mail", "anna", "ff", "ff00")
	os.MkdirAll(filepath.Dir(orphan), 0o700)
	os.WriteFile(orphan, []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, "mail", "tmp", "msg-1"), []byte("x"), 0o600)
	s.Close()

	s = openTestStore(t, dir, Options{})
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("orphaned file still exists after Open (stat: %v)", err)
	}
	if got := len(allMessages(t, s, "anna", "INBOX")); got != 1 {
		t.Errorf("INBOX has %d messages after Open, want 1", got)
	}
	assertNoOrphans(t, s)
}

// assertNoOrphans checks that every message file has a row and the other
// way round.
func assertNoOrphans(t *testing.T, s *Store) {
	t.Helper()
	rows, err := s.db.Query(`SELECT file FROM mail_messages`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for rows.Next() {
		var f string
		rows.Scan(&f)
		want[f] = true
	}
	rows.Close()
	got := map[string]bool{}
	filepath.WalkDir(s.dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(s.dir, path)
			got[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	for f := range want {
		if !got[f] {
			t.Errorf("row names file %s, which does not exist", f)
		}
	}
	for f := range got {
		if !want[f] {
			t.Errorf("file %s has no row", f)
		}
	}
}

// TestExportMboxReadByPython checks the export with an independent mbox
// reader, Python's mailbox module.
func TestExportMboxReadByPython(t *testing.T) {
	python := testpeer.Require(t, "/usr/bin/python3", "python3-minimal")
	s := openTestStore(t, t.TempDir(), Options{})
	ctx := context.Background()
	for _, subject := range []string{"eins", "zwei", "drei"} {
		if err := s.Deliver(ctx, "anna", "", strings.NewReader(message(subject, "From the start\r\nText "+subject+"\r\n"))); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "inbox.mbox")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ExportMbox(ctx, "anna", "INBOX", f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	script := `import mailbox, sys
for m in mailbox.mbox(sys.argv[1]):
    print(m["Subject"], m.get_payload().splitlines()[1])`
	out, err := exec.Command(python, "-c", script, path).CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	if got, want := string(out), "eins Text eins\nzwei Text zwei\ndrei Text drei\n"; got != want {
		t.Errorf("python3 read %q, want %q", got, want)
	}
}
