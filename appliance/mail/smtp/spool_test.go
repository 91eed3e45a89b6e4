package smtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
)

// openStore opens a mail store in a new temporary folder and returns it
// with its folder of message files.
func openStore(t *testing.T) (*store.Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "messages")
	st, err := store.Open(context.Background(), store.Options{Dir: dir, DatabasePath: filepath.Join(t.TempDir(), "mail.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, dir
}

// inboxSize returns the number of messages in the user's inbox.
func inboxSize(t *testing.T, st *store.Store, login string) uint32 {
	t.Helper()
	ctx := context.Background()
	if err := st.EnsureUser(ctx, login); err != nil {
		t.Fatal(err)
	}
	inbox, err := st.Mailbox(ctx, login, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	status, err := st.MailboxStatus(ctx, inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	return status.Messages
}

func TestInboundDeliversToTwoUsersOnce(t *testing.T) {
	st, _ := openStore(t)
	e := newTestEnv(t, envOptions{server: func(o *Options) { o.Deliverer = st }})
	out, code := e.swaksInbound(t, "a@sender.test", "anna@example.test,ben@example.test,info@example.test")
	if code != 0 {
		t.Fatalf("swaks exit code %d, want 0:\n%s", code, out)
	}
	for _, login := range []string{"anna", "ben"} {
		if n := inboxSize(t, st, login); n != 1 {
			t.Errorf("%s's inbox has %d messages, want 1", login, n)
		}
	}
}

func TestInboundSecondDeliveryFails(t *testing.T) {
	st, dir := openStore(t)
	ctx := context.Background()
	for _, login := range []string{"anna", "ben"} {
		if err := st.EnsureUser(ctx, login); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetQuota(ctx, "ben", 10); err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, envOptions{server: func(o *Options) { o.Deliverer = st }})

	out, code := e.swaksInbound(t, "a@sender.test", "anna@example.test,ben@example.test")
	if code == 0 {
		t.Fatalf("swaks exit code 0 although ben is over quota:\n%s", out)
	}
	if !strings.Contains(out, "<** 451 4.3.0") {
		t.Errorf("failed delivery to ben not answered with 451 4.3.0 after DATA:\n%s", lastLines(out, 10))
	}
	for _, login := range []string{"anna", "ben"} {
		if n := inboxSize(t, st, login); n != 0 {
			t.Errorf("%s's inbox has %d messages after the failed delivery, want 0", login, n)
		}
	}
	var files []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if len(files) != 0 {
		t.Errorf("message files left after the failed delivery: %v", files)
	}
}

func TestSpoolFolderCleanedAtStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(dir, spoolPrefix+"123")
	other := filepath.Join(dir, "notes.txt")
	for _, f := range []string{leftover, other} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	e := newTestEnv(t, envOptions{server: func(o *Options) { o.SpoolDir = dir }})
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover spool file after New: stat error %v, want not exist", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("New removed %s, which is no spool file: %v", other, err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o700 {
		t.Errorf("spool folder mode = %o, want 700", info.Mode().Perm())
	}

	if out, code := e.swaksInbound(t, "a@sender.test", "anna@example.test"); code != 0 {
		t.Fatalf("swaks exit code %d, want 0:\n%s", code, out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "notes.txt" {
		t.Errorf("spool folder after a message contains %v, want only notes.txt", entries)
	}
}

func TestInboundHeaderTooLarge(t *testing.T) {
	e := newTestEnv(t, envOptions{server: func(o *Options) { o.MaxHeaderBytes = 2000 }})
	// RFC 5321 section 4.5.3.1.6 limits a text line to 1000 bytes, so
	// the header grows by many short fields.
	var fields []string
	for i := range 40 {
		fields = append(fields, "--add-header", fmt.Sprintf("X-Filler-%d: %s", i, strings.Repeat("x", 70)))
	}
	out, code := e.swaksInbound(t, "a@sender.test", "anna@example.test", fields...)
	if code == 0 {
		t.Fatalf("message with a 3000-byte header accepted:\n%s", lastLines(out, 10))
	}
	if !strings.Contains(out, "552 5.3.4") {
		t.Errorf("oversize header not rejected with 552 5.3.4:\n%s", lastLines(out, 10))
	}
	if n := len(e.deliverer.all()); n != 0 {
		t.Errorf("got %d deliveries, want 0", n)
	}
}

func TestInboundBodyFromSpool(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	body := strings.Repeat("Zeile mit Text\r\n", 20000)
	bodyFile := filepath.Join(t.TempDir(), "body.txt")
	if err := os.WriteFile(bodyFile, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := e.swaksInbound(t, "a@sender.test", "anna@example.test",
		"--header", "Authentication-Results: "+testHost+"; spf=pass", "--body", "@"+bodyFile)
	if code != 0 {
		t.Fatalf("swaks exit code %d, want 0:\n%s", code, lastLines(out, 10))
	}
	msgs := e.deliverer.all()
	if len(msgs) != 1 {
		t.Fatalf("got %d deliveries, want 1", len(msgs))
	}
	got := string(msgs[0].msg)
	want := "Return-Path: <a@sender.test>\r\nAuthentication-Results: " + testHost + ";"
	if !strings.HasPrefix(got, want) {
		t.Errorf("delivered message starts with %q, want the Return-Path and the box's Authentication-Results", got[:min(len(got), 80)])
	}
	if n := strings.Count(got, "Authentication-Results: "+testHost+";"); n != 1 {
		t.Errorf("delivered message has %d Authentication-Results fields of the box, want 1 (the forged one removed)", n)
	}
	_, deliveredBody, found := strings.Cut(got, "\r\n\r\n")
	if !found {
		t.Fatalf("delivered message has no empty line after the header")
	}
	if !strings.HasPrefix(deliveredBody, body) {
		t.Errorf("delivered body has %d bytes, want the %d bytes sent", len(deliveredBody), len(body))
	}
}

func TestReadHeader(t *testing.T) {
	longField := "X-Long: " + strings.Repeat("y", 5000) + "\r\n"
	for _, tc := range []struct {
		name, msg, want string
		max             int
		wantErr         error
	}{
		{name: "CRLF", msg: "From: a\r\nTo: b\r\n\r\nbody\r\n", want: "From: a\r\nTo: b\r\n", max: 100},
		{name: "LF", msg: "From: a\nTo: b\n\nbody\n", want: "From: a\nTo: b\n", max: 100},
		{name: "folded", msg: "Subject: a\r\n b\r\n\r\n", want: "Subject: a\r\n b\r\n", max: 100},
		{name: "no body", msg: "From: a\r\nTo: b", want: "From: a\r\nTo: b", max: 100},
		{name: "no fields", msg: "\r\nbody\r\n", want: "", max: 100},
		{name: "line longer than the buffer", msg: longField + "\r\nbody", want: longField, max: 10000},
		{name: "too large", msg: longField + "\r\nbody", max: 1000, wantErr: errHeaderTooLarge},
		{name: "exactly max", msg: "From: a\r\n\r\n", want: "From: a\r\n", max: 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readHeader(strings.NewReader(tc.msg), tc.max)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got error %v, want %v", err, tc.wantErr)
			}
			if string(got) != tc.want {
				t.Errorf("got header %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSpooledMessageReader(t *testing.T) {
	sp, err := openSpool(t.TempDir(), 1000, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := sp.receive(strings.NewReader("From: a\r\nX-Drop: 1\r\n\r\nbody\r\n"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer msg.Close()
	msg.header = []byte("From: a\r\n")
	for range 2 {
		got, err := io.ReadAll(msg.reader([]byte("Received: x\r\n")))
		if err != nil {
			t.Fatal(err)
		}
		if want := "Received: x\r\nFrom: a\r\n\r\nbody\r\n"; string(got) != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if msg.len() != int64(len("From: a\r\n\r\nbody\r\n")) {
		t.Errorf("len() = %d, want %d", msg.len(), len("From: a\r\n\r\nbody\r\n"))
	}
}

func TestInboundRejectsWhenSpoolDiskFull(t *testing.T) {
	// No file system has 1.5 EiB free, so every MAIL finds the disk full.
	e := newTestEnv(t, envOptions{server: func(o *Options) { o.MaxMessageBytes = 1 << 60 }})
	out, code := e.swaksInbound(t, "a@sender.test", "anna@example.test")
	if code == 0 {
		t.Fatalf("message accepted although the spool disk is full:\n%s", lastLines(out, 10))
	}
	if !strings.Contains(out, "<** 452 4.3.1") {
		t.Errorf("MAIL not rejected with 452 4.3.1:\n%s", lastLines(out, 10))
	}
	if n := len(e.deliverer.all()); n != 0 {
		t.Errorf("got %d deliveries, want 0", n)
	}
}
