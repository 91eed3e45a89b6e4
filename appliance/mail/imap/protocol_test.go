package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// rawClient speaks IMAP line by line, so tests read like transcripts.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	tag  int
}

func dialRaw(t *testing.T, env *testEnv) *rawClient {
	t.Helper()
	conn, err := tls.Dial("tcp", env.addr, &tls.Config{RootCAs: env.caPool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	if greeting := c.readLine(); !strings.HasPrefix(greeting, "* OK") {
		t.Fatalf("greeting = %q, want * OK", greeting)
	}
	return c
}

func (c *rawClient) readLine() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading response: %v (got %q)", err, line)
	}
	return strings.TrimRight(line, "\r\n")
}

// run sends a command and returns the untagged lines and the tagged status
// line.
func (c *rawClient) run(command string) (untagged []string, status string) {
	c.t.Helper()
	c.tag++
	tag := fmt.Sprintf("a%d", c.tag)
	if _, err := fmt.Fprintf(c.conn, "%s %s\r\n", tag, command); err != nil {
		c.t.Fatal(err)
	}
	for {
		line := c.readLine()
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			return untagged, rest
		}
		untagged = append(untagged, line)
	}
}

// mustOK runs a command and fails the test unless it completes with OK.
func (c *rawClient) mustOK(command string) []string {
	c.t.Helper()
	untagged, status := c.run(command)
	if !strings.HasPrefix(status, "OK") {
		c.t.Fatalf("%s: status %q, want OK (untagged %q)", command, status, untagged)
	}
	return untagged
}

func (c *rawClient) login(env *testEnv) {
	c.t.Helper()
	c.mustOK(fmt.Sprintf(`LOGIN %s "%s"`, env.user, env.password))
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

func TestCapabilitiesAfterLogin(t *testing.T) {
	env := newTestEnv(t, Options{})
	c := dialRaw(t, env)
	c.login(env)
	caps := strings.Join(c.mustOK("CAPABILITY"), " ")
	for _, want := range []string{"IMAP4rev1", "IMAP4rev2", "IDLE", "MOVE", "UIDPLUS", "SPECIAL-USE", "ENABLE",
		"NAMESPACE", "LITERAL+", "UTF8=ACCEPT", "ESEARCH", "LIST-STATUS", "STATUS=SIZE", "APPENDLIMIT="} {
		if !strings.Contains(caps, " "+want) {
			t.Errorf("CAPABILITY lacks %s: %q", want, caps)
		}
	}
	if strings.Contains(caps, "STARTTLS") {
		t.Errorf("CAPABILITY offers STARTTLS on implicit TLS: %q", caps)
	}
}

func TestListSpecialUseAndStatus(t *testing.T) {
	env := newTestEnv(t, Options{})
	env.store.Deliver(context.Background(), env.user, "", strings.NewReader(testMessage("eins", "x")))
	c := dialRaw(t, env)
	c.login(env)

	lines := c.mustOK(`LIST "" "*" RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN SIZE))`)
	for _, want := range []string{
		`* LIST (\HasNoChildren \Subscribed) "/" INBOX`,
		`* LIST (\HasNoChildren \Subscribed \Sent) "/" "Sent"`,
		`* LIST (\HasNoChildren \Subscribed \Junk) "/" "Junk"`,
		`* LIST (\HasNoChildren \Subscribed \Archive) "/" "Archive"`,
	} {
		if !containsLine(lines, want) {
			t.Errorf("LIST lacks %q in %q", want, lines)
		}
	}
	size := len(testMessage("eins", "x"))
	if want := fmt.Sprintf(`* STATUS INBOX (MESSAGES 1 UNSEEN 1 SIZE %d)`, size); !containsLine(lines, want) {
		t.Errorf("LIST-STATUS lacks %q in %q", want, lines)
	}

	lines = c.mustOK(`LIST (SPECIAL-USE) "" "*"`)
	if len(lines) != 5 {
		t.Errorf("LIST (SPECIAL-USE) returned %d mailboxes, want the 5 special ones: %q", len(lines), lines)
	}
	if lines := c.mustOK(`LIST "" ""`); !containsLine(lines, `* LIST (\Noselect) "/" ""`) {
		t.Errorf(`LIST "" "" = %q, want the delimiter`, lines)
	}
	if lines := c.mustOK(`NAMESPACE`); !containsLine(lines, `* NAMESPACE (("" "/")) NIL NIL`) {
		t.Errorf("NAMESPACE = %q", lines)
	}
}

func TestUmlautMailboxNames(t *testing.T) {
	env := newTestEnv(t, Options{})
	c := dialRaw(t, env)
	c.login(env)

	// Modified UTF-7 (RFC 3501 section 5.1.3) for Grüße.
	c.mustOK(`CREATE "Gr&APwA3w-e"`)
	if _, err := env.store.Mailbox(context.Background(), env.user, "Grüße"); err != nil {
		t.Errorf("CREATE in modified UTF-7 did not create Grüße: %v", err)
	}
	if lines := c.mustOK(`LIST "" "Gr*"`); !containsLine(lines, `* LIST (\HasNoChildren \Subscribed) "/" "Gr&APwA3w-e"`) {
		t.Errorf("LIST before ENABLE = %q, want the modified UTF-7 name", lines)
	}

	// RFC 6855: after ENABLE UTF8=ACCEPT names travel as UTF-8.
	c.mustOK(`ENABLE UTF8=ACCEPT`)
	if lines := c.mustOK(`LIST "" "Gr*"`); !containsLine(lines, `* LIST (\HasNoChildren \Subscribed) "/" "Grüße"`) {
		t.Errorf("LIST after ENABLE UTF8=ACCEPT = %q, want the UTF-8 name", lines)
	}
}

func TestAppendSearchFetchMove(t *testing.T) {
	env := newTestEnv(t, Options{})
	c := dialRaw(t, env)
	c.login(env)

	msgs := []string{
		testMessage("Rechnung", "Betrag 12 Euro"),
		"From: =?UTF-8?Q?J=C3=BCrgen?= <j@example.org>\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\r\nHallo\r\n",
		testMessage("Einladung", "Feier am Samstag"),
		// A folded Subject field (RFC 5322 section 2.2.3) whose line break
		// sits inside the searched words.
		"From: a@example.org\r\nSubject: Treffen im\r\n Vereinsheim\r\n\r\nText\r\n",
	}
	for i, m := range msgs {
		_, status := c.run(fmt.Sprintf("APPEND INBOX (\\Seen) {%d+}\r\n%s", len(m), m))
		if want := fmt.Sprintf("OK [APPENDUID %d %d]", c.uidValidity(), i+1); !strings.HasPrefix(status, want) {
			t.Errorf("APPEND %d: status %q, want prefix %q", i+1, status, want)
		}
	}
	lines := c.mustOK("SELECT INBOX")
	if !containsLine(lines, "* 4 EXISTS") {
		t.Errorf("SELECT = %q, want 4 EXISTS", lines)
	}

	cases := []struct{ search, want string }{
		{`SEARCH SUBJECT rechnung`, "* SEARCH 1"},
		{`SEARCH FROM "jürgen"`, "* SEARCH 2"},
		{`SEARCH CHARSET UTF-8 SUBJECT "grüße"`, "* SEARCH 2"},
		{`SEARCH BODY samstag`, "* SEARCH 3"},
		{`SEARCH OR SUBJECT rechnung SUBJECT einladung`, "* SEARCH 1 3"},
		{`SEARCH NOT SUBJECT rechnung SEEN`, "* SEARCH 2 3 4"},
		{`UID SEARCH UID 2:*`, "* SEARCH 2 3 4"},
		{`SEARCH SUBJECT "im Vereinsheim"`, "* SEARCH 4"},
		{`SEARCH SUBJECT vereinsheim`, "* SEARCH 4"},
		{`SEARCH RETURN (COUNT MIN MAX) ALL`, `* ESEARCH (TAG "a%d") MIN 1 MAX 4 COUNT 4`},
	}
	for _, tc := range cases {
		lines := c.mustOK(tc.search)
		want := tc.want
		if strings.Contains(want, "%d") {
			want = fmt.Sprintf(want, c.tag)
		}
		if !containsLine(lines, want) {
			t.Errorf("%s = %q, want %q", tc.search, lines, want)
		}
	}

	lines = c.mustOK(`FETCH 1 (FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])`)
	want := fmt.Sprintf(`* 1 FETCH (UID 1 FLAGS (\Seen) RFC822.SIZE %d BODY[HEADER.FIELDS ("SUBJECT")] {21}`, len(msgs[0]))
	if len(lines) == 0 || lines[0] != want {
		t.Errorf("FETCH header fields = %q, want first line %q", lines, want)
	}

	c.mustOK(`STORE 1 -FLAGS.SILENT (\Seen)`)
	lines = c.mustOK(`FETCH 1 (BODY[TEXT])`)
	if !strings.Contains(strings.Join(lines, "\n"), `\Seen`) {
		t.Errorf("FETCH BODY[TEXT] without PEEK did not set \\Seen: %q", lines)
	}

	lines = c.mustOK(`UID MOVE 1 Archive`)
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "* OK [COPYUID ") || lines[1] != "* 1 EXPUNGE" {
		t.Errorf("UID MOVE = %q, want COPYUID then * 1 EXPUNGE", lines)
	}
	if lines := c.mustOK(`STATUS Archive (MESSAGES)`); !containsLine(lines, `* STATUS "Archive" (MESSAGES 1)`) {
		t.Errorf("STATUS Archive = %q", lines)
	}

	c.mustOK(`STORE 1 +FLAGS (\Deleted)`)
	lines = c.mustOK(`UID EXPUNGE 3:4`)
	if len(lines) != 0 {
		t.Errorf("UID EXPUNGE of a message without \\Deleted = %q, want nothing expunged", lines)
	}
	lines = c.mustOK(`EXPUNGE`)
	if !containsLine(lines, "* 1 EXPUNGE") {
		t.Errorf("EXPUNGE = %q, want * 1 EXPUNGE", lines)
	}
}

// uidValidity returns the INBOX's UIDVALIDITY through STATUS.
func (c *rawClient) uidValidity() uint32 {
	c.t.Helper()
	lines := c.mustOK("STATUS INBOX (UIDVALIDITY)")
	var v uint32
	for _, l := range lines {
		if _, err := fmt.Sscanf(l, "* STATUS INBOX (UIDVALIDITY %d)", &v); err == nil {
			return v
		}
	}
	c.t.Fatalf("no UIDVALIDITY in %q", lines)
	return 0
}

func TestAppendTooBig(t *testing.T) {
	env := newTestEnv(t, Options{})
	c := dialRaw(t, env)
	c.login(env)
	limit := env.store.MaxMessageSize()
	_, status := c.run(fmt.Sprintf("APPEND INBOX {%d}", limit+1))
	if !strings.HasPrefix(status, "NO [TOOBIG]") {
		t.Errorf("APPEND past APPENDLIMIT: status %q, want NO [TOOBIG]", status)
	}
	c.mustOK("NOOP") // the connection is still usable
}

func TestLoginFailures(t *testing.T) {
	env := newTestEnv(t, Options{})
	c := dialRaw(t, env)
	_, status := c.run(`LOGIN anna wrong-password`)
	if !strings.HasPrefix(status, "NO [AUTHENTICATIONFAILED]") {
		t.Errorf("LOGIN with a wrong password: status %q, want NO [AUTHENTICATIONFAILED]", status)
	}
	// The web password is no app password.
	_, status = c.run(`LOGIN anna "correct horse battery"`)
	if !strings.HasPrefix(status, "NO [AUTHENTICATIONFAILED]") {
		t.Errorf("LOGIN with the web password: status %q, want NO [AUTHENTICATIONFAILED]", status)
	}
	// The whole address works as the user name.
	c.mustOK(fmt.Sprintf(`LOGIN anna@example.org "%s"`, env.password))
}

func TestLoginThrottled(t *testing.T) {
	env := newTestEnv(t, Options{})
	c := dialRaw(t, env)
	var status string
	for range 8 {
		_, status = c.run(`LOGIN anna wrong-password`)
	}
	if !strings.HasPrefix(status, "NO [UNAVAILABLE]") {
		t.Errorf("8th failed LOGIN: status %q, want NO [UNAVAILABLE]", status)
	}
}

func TestConnectionLimits(t *testing.T) {
	env := newTestEnv(t, Options{MaxConnsPerAddr: 3, MaxConnsPerUser: 2})
	var clients []*rawClient
	for range 3 {
		clients = append(clients, dialRaw(t, env))
	}
	conn, err := tls.Dial("tcp", env.addr, &tls.Config{RootCAs: env.caPool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	line, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.HasPrefix(line, "* BYE [LIMIT]") {
		t.Errorf("4th connection from one address: greeting %q, want * BYE [LIMIT]", line)
	}

	clients[0].login(env)
	clients[1].login(env)
	_, status := clients[2].run(fmt.Sprintf(`LOGIN %s "%s"`, env.user, env.password))
	if !strings.HasPrefix(status, "NO [LIMIT]") {
		t.Errorf("3rd login of one user: status %q, want NO [LIMIT]", status)
	}

	// Closing a connection frees its place.
	clients[0].mustOK("LOGOUT")
	time.Sleep(100 * time.Millisecond)
	clients[2].login(env)
}

func TestLoginTimeout(t *testing.T) {
	env := newTestEnv(t, Options{LoginTimeout: 200 * time.Millisecond})
	c := dialRaw(t, env)
	if line := c.readLine(); !strings.HasPrefix(line, "* BYE") {
		t.Errorf("after the login timeout: %q, want * BYE", line)
	}
}

// TestUpdatesReachOtherSession guards the cross-session updates: flags,
// expunges and new messages from one session reach another one that has
// the same mailbox selected, at its next command.
func TestUpdatesReachOtherSession(t *testing.T) {
	env := newTestEnv(t, Options{})
	for _, s := range []string{"eins", "zwei"} {
		env.store.Deliver(context.Background(), env.user, "", strings.NewReader(testMessage(s, "x")))
	}
	a, b := dialRaw(t, env), dialRaw(t, env)
	a.login(env)
	b.login(env)
	a.mustOK("SELECT INBOX")
	b.mustOK("SELECT INBOX")

	b.mustOK(`STORE 1 +FLAGS (\Flagged)`)
	if lines := a.mustOK("NOOP"); !containsLine(lines, `* 1 FETCH (UID 1 FLAGS (\Flagged))`) {
		t.Errorf("NOOP after another session's STORE = %q, want the new flags", lines)
	}

	b.mustOK(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	b.mustOK("EXPUNGE")
	msg := testMessage("drei", "x")
	b.mustOK(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg))
	lines := a.mustOK("NOOP")
	if !containsLine(lines, "* 1 EXPUNGE") || !containsLine(lines, "* 2 EXISTS") {
		t.Errorf("NOOP after another session's EXPUNGE and APPEND = %q, want * 1 EXPUNGE and * 2 EXISTS", lines)
	}
	if lines := a.mustOK("UID FETCH 1:* (UID)"); !containsLine(lines, "* 1 FETCH (UID 2)") || !containsLine(lines, "* 2 FETCH (UID 3)") {
		t.Errorf("UID FETCH after the updates = %q, want UIDs 2 and 3 at sequence numbers 1 and 2", lines)
	}
}
