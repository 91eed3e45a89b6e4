package smtp

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/textproto"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
	"github.com/heimwolke/heimwolke/packages/accounts"
)

// rawSMTP is a client that sends SMTP commands one by one, so that a test
// can act between RCPT and the end of DATA.
type rawSMTP struct {
	t    *testing.T
	conn *textproto.Conn
}

func dialRawSMTP(t *testing.T, addr string) *rawSMTP {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(time.Minute))
	c := &rawSMTP{t: t, conn: textproto.NewConn(nc)}
	t.Cleanup(func() { c.conn.Close() })
	c.expect("greeting", "", 220)
	c.expect("EHLO", "EHLO client.sender.test", 250)
	return c
}

// expect sends cmd, unless it is empty, and fails the test unless the
// reply has the code want. It returns the reply text.
func (c *rawSMTP) expect(step, cmd string, want int) string {
	c.t.Helper()
	got, msg := c.send(cmd)
	if got != want {
		c.t.Fatalf("%s: got reply %d %s, want %d", step, got, msg, want)
	}
	return msg
}

func (c *rawSMTP) send(cmd string) (int, string) {
	c.t.Helper()
	if cmd != "" {
		if err := c.conn.PrintfLine("%s", cmd); err != nil {
			c.t.Fatal(err)
		}
	}
	code, msg, err := c.conn.ReadResponse(0)
	if err != nil && code == 0 {
		c.t.Fatalf("reading the reply to %q: %v", cmd, err)
	}
	return code, msg
}

// data sends DATA, a short message and the final dot, and returns the
// reply to the dot.
func (c *rawSMTP) data(to string) (int, string) {
	c.t.Helper()
	c.expect("DATA", "DATA", 354)
	msg := "From: a@sender.test\r\nTo: " + to + "\r\nSubject: Unterwegs\r\n\r\nText\r\n."
	return c.send(msg)
}

// deletedUserEnv is a test server that delivers into a real mail store,
// which looks up each new login in the accounts.
func deletedUserEnv(t *testing.T) (*testEnv, *store.Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "messages")
	var e *testEnv
	st, err := store.Open(context.Background(), store.Options{
		Dir:          dir,
		DatabasePath: filepath.Join(t.TempDir(), "mail.db"),
		UserExists: func(ctx context.Context, login string) (bool, error) {
			_, err := e.accounts.UserByName(ctx, login)
			if errors.Is(err, accounts.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e = newTestEnv(t, envOptions{server: func(o *Options) { o.Deliverer = st }})
	return e, st, dir
}

// deleteBen deletes ben's mail and account in the order of the web
// interface: mail, account, and mail again.
func deleteBen(t *testing.T, e *testEnv, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	ben, err := e.accounts.UserByName(ctx, "ben")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteUser(ctx, "ben"); err != nil {
		t.Fatal(err)
	}
	if err := e.accounts.DeleteUser(ctx, ben.ID); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteUser(ctx, "ben"); err != nil {
		t.Fatal(err)
	}
}

// assertNoMailOfBen fails the test if ben has mailboxes or message files.
func assertNoMailOfBen(t *testing.T, st *store.Store, dir string) {
	t.Helper()
	// Mailbox fails with ErrNoSuchUser only while ben has no mailboxes.
	if _, err := st.Mailbox(context.Background(), "ben", "INBOX"); !errors.Is(err, store.ErrNoSuchUser) {
		t.Errorf("ben's inbox: got %v, want ErrNoSuchUser", err)
	}
	var files []string
	filepath.WalkDir(filepath.Join(dir, "ben"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if len(files) != 0 {
		t.Errorf("message files of ben: got %v, want none", files)
	}
}

// TestInboundRecipientDeletedDuringData guards against mail that passed
// RCPT before ben was deleted recreating ben's mailboxes, where a later
// member named ben would read it.
func TestInboundRecipientDeletedDuringData(t *testing.T) {
	e, st, dir := deletedUserEnv(t)
	c := dialRawSMTP(t, e.inbound)
	c.expect("MAIL", "MAIL FROM:<a@sender.test>", 250)
	c.expect("RCPT ben", "RCPT TO:<ben@example.test>", 250)

	deleteBen(t, e, st)

	code, msg := c.data("ben@example.test")
	if code != 550 || !strings.HasPrefix(msg, "5.1.1") {
		t.Errorf("end of DATA for deleted ben: got %d %s, want 550 5.1.1", code, msg)
	}
	assertNoMailOfBen(t, st, dir)
	if !strings.Contains(e.logs.String(), "account deleted after RCPT") {
		t.Errorf("server log lacks the deleted account:\n%s", e.logs.String())
	}
}

// TestInboundOneOfTwoRecipientsDeleted checks the chosen behaviour for
// several recipients: the whole message gets 451 after DATA, and the
// retry gets 550 for ben at RCPT and delivers to anna.
func TestInboundOneOfTwoRecipientsDeleted(t *testing.T) {
	e, st, dir := deletedUserEnv(t)
	c := dialRawSMTP(t, e.inbound)
	c.expect("MAIL", "MAIL FROM:<a@sender.test>", 250)
	c.expect("RCPT anna", "RCPT TO:<anna@example.test>", 250)
	c.expect("RCPT ben", "RCPT TO:<ben@example.test>", 250)

	deleteBen(t, e, st)

	code, msg := c.data("anna@example.test, ben@example.test")
	if code != 451 {
		t.Errorf("end of DATA for anna and deleted ben: got %d %s, want 451", code, msg)
	}
	if n := inboxSize(t, st, "anna"); n != 0 {
		t.Errorf("anna's inbox after the failed delivery: got %d messages, want 0", n)
	}

	c.expect("MAIL again", "MAIL FROM:<a@sender.test>", 250)
	c.expect("RCPT anna again", "RCPT TO:<anna@example.test>", 250)
	if code, msg := c.send("RCPT TO:<ben@example.test>"); code != 550 || !strings.HasPrefix(msg, "5.1.1") {
		t.Errorf("RCPT for deleted ben: got %d %s, want 550 5.1.1", code, msg)
	}
	if code, msg := c.data("anna@example.test, ben@example.test"); code != 250 {
		t.Errorf("end of DATA for anna alone: got %d %s, want 250", code, msg)
	}
	if n := inboxSize(t, st, "anna"); n != 1 {
		t.Errorf("anna's inbox after the retry: got %d messages, want 1", n)
	}
	assertNoMailOfBen(t, st, dir)
}
