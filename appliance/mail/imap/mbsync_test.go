package imap

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// runMbsync syncs every folder of the test user with a maildir below local.
func runMbsync(t *testing.T, env *testEnv, local string) string {
	t.Helper()
	mbsync := testpeer.Require(t, "mbsync", "isync")
	config := filepath.Join(env.dir, "mbsyncrc")
	rc := fmt.Sprintf(`IMAPAccount heim
Host localhost
Port %s
User %s
Pass %s
SSLType IMAPS
CertificateFile %s

IMAPStore heim-far
Account heim

MaildirStore heim-near
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel heim
Far :heim-far:
Near :heim-near:
Patterns *
Create Both
Expunge Both
SyncState *
`, env.port, env.user, env.password, env.caFile, local, local)
	if err := os.WriteFile(config, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-c", config, "-a"}
	if testing.Verbose() {
		args = append(args, "-V")
	}
	cmd := exec.Command(mbsync, args...)
	cmd.Env = append(os.Environ(), "HOME="+env.dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mbsync: %v\n%s", err, out)
	}
	t.Logf("mbsync:\n%s", out)
	return string(out)
}

// maildirFiles returns the message files of a maildir folder.
func maildirFiles(t *testing.T, folder string) []string {
	t.Helper()
	var files []string
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(folder, sub))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range entries {
			files = append(files, filepath.Join(folder, sub, e.Name()))
		}
	}
	slices.Sort(files)
	return files
}

func countMessages(t *testing.T, env *testEnv, mailbox string) int {
	t.Helper()
	m, err := env.store.Mailbox(context.Background(), env.user, mailbox)
	if err != nil {
		t.Fatalf("mailbox %q: %v", mailbox, err)
	}
	st, err := env.store.MailboxStatus(context.Background(), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	return int(st.Messages)
}

func TestMbsyncBothWays(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	for _, subject := range []string{"eins", "zwei", "drei"} {
		if err := env.store.Deliver(ctx, env.user, "", strings.NewReader(testMessage(subject, "Text "+subject))); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.store.CreateMailbox(ctx, env.user, "Grüße/Öffentlich", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.store.Append(ctx, env.user, "Grüße/Öffentlich", strings.NewReader(testMessage("gruss", "Servus")), nil, time.Time{}, nil); err != nil {
		t.Fatal(err)
	}

	local := filepath.Join(env.dir, "Mail")
	if err := os.Mkdir(local, 0o700); err != nil {
		t.Fatal(err)
	}
	runMbsync(t, env, local)

	inbox := maildirFiles(t, filepath.Join(local, "INBOX"))
	if len(inbox) != 3 {
		t.Fatalf("local INBOX has %d messages after the first sync, want 3", len(inbox))
	}
	// isync 1.4 names maildir folders by the modified UTF-7 names of the
	// wire (RFC 3501 section 5.1.3), so Grüße/Öffentlich becomes this.
	if got := maildirFiles(t, filepath.Join(local, "Gr&APwA3w-e", "&ANY-ffentlich")); len(got) != 1 {
		t.Errorf("local folder for Grüße/Öffentlich has %d messages, want 1", len(got))
	}
	for _, name := range []string{"Sent", "Drafts", "Trash", "Junk", "Archive"} {
		if _, err := os.Stat(filepath.Join(local, name)); err != nil {
			t.Errorf("default folder %s was not synced: %v", name, err)
		}
	}

	// Local changes: flag one message \Seen, one \Deleted, write a new one
	// into a new folder with umlauts.
	markMaildir(t, inbox[0], "S")
	markMaildir(t, inbox[1], "T")
	newFolder := filepath.Join(local, "B&APw-ro") // Büro
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(newFolder, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(newFolder, "new", "1.local"), []byte(testMessage("buero", "Akten")), 0o600); err != nil {
		t.Fatal(err)
	}
	runMbsync(t, env, local)

	if got := countMessages(t, env, "INBOX"); got != 2 {
		t.Errorf("server INBOX has %d messages after pushing a deletion, want 2", got)
	}
	if got := countMessages(t, env, "Büro"); got != 1 {
		t.Errorf("server mailbox Büro has %d messages, want 1", got)
	}
	m, _ := env.store.Mailbox(ctx, env.user, "INBOX")
	var seen int
	env.store.EachMessage(ctx, m.ID, store.AllUIDs, false, func(msg *store.Message) error {
		if slices.Contains(msg.Flags, `\Seen`) {
			seen++
		}
		return nil
	})
	if seen != 1 {
		t.Errorf("server INBOX has %d messages flagged \\Seen, want 1", seen)
	}

	// A third run finds nothing to do and changes nothing.
	runMbsync(t, env, local)
	if got := len(maildirFiles(t, filepath.Join(local, "INBOX"))); got != 2 {
		t.Errorf("local INBOX has %d messages after the third sync, want 2", got)
	}
}

// markMaildir adds maildir flags (S seen, T trashed) to a message file and
// moves it to cur, as a mail reader does.
func markMaildir(t *testing.T, path, flags string) {
	t.Helper()
	dir := filepath.Dir(filepath.Dir(path))
	base := filepath.Base(path)
	name, info, _ := strings.Cut(base, ":2,")
	target := filepath.Join(dir, "cur", name+":2,"+sortFlags(info+flags))
	if err := os.Rename(path, target); err != nil {
		t.Fatal(err)
	}
}

func sortFlags(s string) string {
	b := []byte(s)
	slices.Sort(b)
	return string(slices.Compact(b))
}

// TestDotLevelsRejected guards against mailbox names that break clients
// which store mailboxes as folders: mbsync stopped with "contains '..'
// component" once such a name existed. CREATE and RENAME fail with NO for
// a level that is empty, "." or "..", and mbsync still syncs afterwards.
func TestDotLevelsRejected(t *testing.T) {
	env := newTestEnv(t, Options{})
	c := dialRaw(t, env)
	c.login(env)
	c.mustOK(`CREATE "Projekte"`)

	for _, name := range []string{".", "..", "a/../..", "Projekte/.", "./x", "a//b", "/a"} {
		_, status := c.run(fmt.Sprintf("CREATE %q", name))
		if !strings.HasPrefix(status, "NO [CANNOT]") || !strings.Contains(status, `"." or ".."`) {
			t.Errorf("CREATE %q: status %q, want NO [CANNOT] naming the rule", name, status)
		}
		_, status = c.run(fmt.Sprintf("RENAME Projekte %q", name))
		if !strings.HasPrefix(status, "NO [CANNOT]") {
			t.Errorf("RENAME Projekte %q: status %q, want NO [CANNOT]", name, status)
		}
	}
	// Dots inside a level stay allowed.
	c.mustOK(`CREATE "Projekte/v1.2"`)
	c.mustOK(`CREATE "...Notizen"`)

	local := filepath.Join(env.dir, "Mail")
	if err := os.Mkdir(local, 0o700); err != nil {
		t.Fatal(err)
	}
	runMbsync(t, env, local)
	for _, folder := range []string{"Projekte", "Projekte/v1.2", "...Notizen"} {
		if _, err := os.Stat(filepath.Join(local, folder, "cur")); err != nil {
			t.Errorf("mailbox %s was not synced: %v", folder, err)
		}
	}
}
