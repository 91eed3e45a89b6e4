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

// TestNeomuttReadsAndMoves drives NeoMutt through its key bindings: it
// opens the inbox over IMAPS, pipes the message with the subject "zwei" to
// a file, saves it to Archive and syncs. NeoMutt needs a terminal, so it
// runs under script(1).
func TestNeomuttReadsAndMoves(t *testing.T) {
	neomutt := testpeer.Require(t, "neomutt", "neomutt")
	script := testpeer.Require(t, "script", "bsdutils")
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	for _, subject := range []string{"eins", "zwei", "drei"} {
		if err := env.store.Deliver(ctx, env.user, "", strings.NewReader(testMessage(subject, "Inhalt "+subject))); err != nil {
			t.Fatal(err)
		}
	}

	piped := filepath.Join(env.dir, "piped.txt")
	rc := filepath.Join(env.dir, "neomuttrc")
	config := fmt.Sprintf(`set folder="imaps://%s@localhost:%s/"
set spoolfile="+INBOX"
set imap_pass="%s"
set ssl_ca_certificates_file="%s"
set ssl_force_tls=yes
set certificate_file="%s/certificates"
set header_cache=""
set message_cachedir=""
set mail_check=0
set move=no
set confirmappend=no
set delete=yes
set wait_key=no
set mark_old=no
set sort=date
`, env.user, env.port, env.password, env.caFile, env.dir)
	if err := os.WriteFile(rc, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	keys := "<search>~s zwei<enter>" +
		"<pipe-message>cat > " + piped + "<enter>" +
		"<save-message>=Archive<enter>" +
		"<sync-mailbox><quit>"
	command := fmt.Sprintf("%s -n -F %s -e 'push \"%s\"'", neomutt, rc, keys)
	cmdCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cmdCtx, script, "-qfec", command, "/dev/null")
	cmd.Env = append(os.Environ(), "HOME="+env.dir, "TERM=xterm", "COLUMNS=120", "LINES=40")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("neomutt: %v\n%q", err, lastBytes(out, 2000))
	}

	got, err := os.ReadFile(piped)
	if err != nil {
		t.Fatalf("neomutt did not pipe the message: %v", err)
	}
	if !strings.Contains(string(got), "Inhalt zwei") {
		t.Errorf("piped message = %q, want it to contain %q", got, "Inhalt zwei")
	}
	if got := subjects(t, env, "INBOX"); !slices.Equal(got, []string{"eins", "drei"}) {
		t.Errorf("INBOX subjects after the move = %q, want [eins drei]", got)
	}
	if got := subjects(t, env, "Archive"); !slices.Equal(got, []string{"zwei"}) {
		t.Errorf("Archive subjects after the move = %q, want [zwei]", got)
	}
}

func lastBytes(b []byte, n int) []byte {
	return b[max(len(b)-n, 0):]
}

// subjects returns the Subject fields of a mailbox's messages in UID order.
func subjects(t *testing.T, env *testEnv, mailbox string) []string {
	t.Helper()
	m, err := env.store.Mailbox(context.Background(), env.user, mailbox)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	err = env.store.EachMessage(context.Background(), m.ID, store.AllUIDs, true, func(msg *store.Message) error {
		for _, line := range strings.Split(string(msg.Header), "\r\n") {
			if s, ok := strings.CutPrefix(line, "Subject: "); ok {
				out = append(out, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
