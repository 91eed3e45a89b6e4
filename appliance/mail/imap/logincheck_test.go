package imap

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// testCheckInterval shortens LoginCheckInterval so that the tests wait
// well under a second.
const testCheckInterval = 300 * time.Millisecond

// appPasswordID returns the id of the only app password of user.
func appPasswordID(t *testing.T, env *testEnv, user string) (userID, id int64) {
	t.Helper()
	u, err := env.accounts.UserByName(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	list, err := env.accounts.AppPasswords(context.Background(), u.ID)
	if err != nil || len(list) != 1 {
		t.Fatalf("app passwords of %s: %v, %v; want one", user, list, err)
	}
	return u.ID, list[0].ID
}

// readUntilBye reads lines until "* BYE" and fails unless it comes
// within the read deadline of readLine.
func (c *rawClient) readUntilBye() string {
	c.t.Helper()
	for {
		line := c.readLine()
		if strings.HasPrefix(line, "* BYE") {
			return line
		}
	}
}

// TestRevokedAppPasswordEndsSession guards against a revoked app password
// keeping its IMAP sessions: the next command after the check interval
// gets BYE, while a session of another app password stays open.
func TestRevokedAppPasswordEndsSession(t *testing.T) {
	env := newTestEnv(t, Options{LoginCheckInterval: testCheckInterval})
	ctx := context.Background()
	userID, id := appPasswordID(t, env, env.user)
	other, _, err := env.accounts.CreateAppPassword(ctx, userID, "phone", accounts.ScopeMail)
	if err != nil {
		t.Fatal(err)
	}

	c := dialRaw(t, env)
	c.login(env)
	c.mustOK("SELECT INBOX")
	otherSession := dialRaw(t, env)
	otherSession.mustOK(fmt.Sprintf(`LOGIN %s "%s"`, env.user, other))

	if err := env.accounts.RevokeAppPassword(ctx, userID, id); err != nil {
		t.Fatal(err)
	}
	time.Sleep(testCheckInterval + 100*time.Millisecond)

	fmt.Fprintf(c.conn, "a1 NOOP\r\n")
	if line := c.readUntilBye(); !strings.Contains(line, "revoked") {
		t.Errorf("BYE line = %q, want one that says the login was revoked", line)
	}
	if _, err := c.r.ReadString('\n'); err == nil {
		t.Error("connection still open after BYE")
	}
	otherSession.mustOK("NOOP")
	otherSession.mustOK("SELECT INBOX")
}

// TestDeletedUserEndsIdle guards against an idling client of a deleted
// user staying connected: IDLE sends no commands, so the server checks
// the login while the client idles.
func TestDeletedUserEndsIdle(t *testing.T) {
	env := newTestEnv(t, Options{LoginCheckInterval: testCheckInterval})
	ctx := context.Background()
	ben, err := env.accounts.CreateMember(ctx, accounts.NewUser{Name: "ben", Language: accounts.LanguageEnglish, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err := env.accounts.CreateAppPassword(ctx, ben.ID, "laptop", accounts.ScopeMail)
	if err != nil {
		t.Fatal(err)
	}

	// One session idles with a mailbox selected, one without.
	var clients []*rawClient
	for _, selected := range []bool{true, false} {
		c := dialRaw(t, env)
		c.mustOK(fmt.Sprintf(`LOGIN ben "%s"`, secret))
		if selected {
			c.mustOK("SELECT INBOX")
		}
		fmt.Fprintf(c.conn, "i1 IDLE\r\n")
		if line := c.readLine(); !strings.HasPrefix(line, "+") {
			t.Fatalf("IDLE: got %q, want a continuation request", line)
		}
		clients = append(clients, c)
	}

	start := time.Now()
	if err := env.accounts.DeleteUser(ctx, ben.ID); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		c.readUntilBye()
		if waited := time.Since(start); waited > 3*testCheckInterval {
			t.Errorf("session %d: BYE %v after deleting the user, want within %v", i, waited, 3*testCheckInterval)
		}
	}
}
