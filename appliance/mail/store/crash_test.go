package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const crashChildEnv = "HEIMWOLKE_MAIL_CRASH_CHILD"

// TestCrashDuringDeliveries guards the durability promise of Deliver,
// DeliverAll, StoreFlags and Expunge: a child process delivers from four
// goroutines to anna and from a fifth to anna and ben at once, and is
// killed with SIGKILL mid-stream, three times. After each restart every
// acknowledged message is there exactly once, and a message for both users
// is in both inboxes or in neither. Acknowledged flags and expunges hold,
// no file lacks a row or the other way round, and UIDVALIDITY is unchanged.
func TestCrashDuringDeliveries(t *testing.T) {
	dir := t.TempDir()
	acked := map[string]bool{}
	seen := map[string]bool{}
	expunged := map[string]bool{}
	expunging := map[string]bool{} // expunges that may not have committed
	var validity uint32

	for round := range 3 {
		lines := runCrashChild(t, dir, round, 60)
		for _, line := range lines {
			kind, id, _ := strings.Cut(line, " ")
			switch kind {
			case "ack":
				acked[id] = true
			case "seen":
				seen[id] = true
			case "expunging":
				expunging[id] = true
			case "expunged":
				expunged[id] = true
			}
		}

		s := openTestStore(t, dir, Options{})
		inbox, err := s.Mailbox(context.Background(), "anna", "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			validity = inbox.UIDValidity
		} else if inbox.UIDValidity != validity {
			t.Errorf("round %d: UIDVALIDITY = %d, want %d", round, inbox.UIDValidity, validity)
		}
		checkCrashRound(t, s, round, acked, seen, expunging, expunged)
		checkBothDelivered(t, s, round, acked)
		assertNoOrphans(t, s)
		s.Close()
	}
	t.Logf("%d messages acknowledged, %d flagged seen, %d expunged", len(acked), len(seen), len(expunged))
}

func checkCrashRound(t *testing.T, s *Store, round int, acked, seen, expunging, expunged map[string]bool) {
	t.Helper()
	count := map[string]int{}
	flags := map[string][]string{}
	var lastUID uint32
	for _, m := range allMessages(t, s, "anna", "INBOX") {
		id := subjectOf(string(m.Header))
		count[id]++
		flags[id] = m.Flags
		if m.UID <= lastUID {
			t.Errorf("round %d: UID %d follows %d", round, m.UID, lastUID)
		}
		lastUID = m.UID
	}
	for id := range acked {
		want := 1
		if expunged[id] {
			want = 0
		}
		if expunging[id] && !expunged[id] && count[id] <= 1 {
			continue // killed during the expunge, before or after its commit
		}
		if count[id] != want {
			t.Errorf("round %d: acknowledged message %s is there %d times, want %d", round, id, count[id], want)
		}
		if seen[id] && !expunged[id] && !strings.Contains(strings.Join(flags[id], " "), `\Seen`) {
			t.Errorf("round %d: message %s lost its acknowledged \\Seen flag: %v", round, id, flags[id])
		}
	}
	for id, n := range count {
		if n > 1 {
			t.Errorf("round %d: message %s is there %d times", round, id, n)
		}
	}
}

// checkBothDelivered checks that each message that the child delivered to
// anna and ben with DeliverAll is in both inboxes or in neither, and there
// once if it was acknowledged.
func checkBothDelivered(t *testing.T, s *Store, round int, acked map[string]bool) {
	t.Helper()
	if err := s.EnsureUser(context.Background(), "ben"); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, login := range []string{"anna", "ben"} {
		for _, m := range allMessages(t, s, login, "INBOX") {
			if id := subjectOf(string(m.Header)); strings.Contains(id, "-both-") {
				count[id]++
			}
		}
	}
	for id, n := range count {
		if n != 2 {
			t.Errorf("round %d: message %s for anna and ben is there %d times, want 2", round, id, n)
		}
	}
	for id := range acked {
		if strings.Contains(id, "-both-") && count[id] != 2 {
			t.Errorf("round %d: acknowledged message %s for anna and ben is there %d times, want 2", round, id, count[id])
		}
	}
}

func subjectOf(header string) string {
	for _, line := range strings.Split(header, "\r\n") {
		if s, ok := strings.CutPrefix(line, "Subject: "); ok {
			return s
		}
	}
	return ""
}

// runCrashChild starts the child, kills it after it acknowledged minAcks
// deliveries, and returns its complete output lines.
func runCrashChild(t *testing.T, dir string, round, minAcks int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, fmt.Sprintf("HEIMWOLKE_MAIL_CRASH_ROUND=%d", round))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	var lines []string
	sc := bufio.NewScanner(stdout)
	acks := 0
	killed := false
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		if strings.HasPrefix(line, "ack ") {
			acks++
		}
		if acks >= minAcks && !killed {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	// The child writes each line with one write(2) of less than
	// PIPE_BUF bytes, so the kill cannot leave half a line.
	cmd.Wait()
	if !killed {
		t.Fatalf("round %d: child exited before %d acknowledgements", round, minAcks)
	}
	return lines
}

// TestCrashChild is the child process of TestCrashDuringDeliveries. It
// delivers until it is killed and prints a line after each acknowledged
// step.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestCrashDuringDeliveries")
	}
	round := os.Getenv("HEIMWOLKE_MAIL_CRASH_ROUND")
	s := openTestStore(t, dir, Options{})
	ctx := context.Background()
	inbox, err := s.Mailbox(ctx, "anna", "INBOX")
	if err != nil {
		t.Fatal(err)
	}

	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		// One write per line, so a kill cannot interleave lines.
		os.Stdout.WriteString(fmt.Sprintf(format, args...) + "\n")
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("r%s-g%d-m%d", round, g, i)
				_, uid, err := s.Append(ctx, "anna", "INBOX", strings.NewReader(message(id, strings.Repeat("Text ", 200))), nil, time.Time{}, nil)
				if err != nil {
					t.Error(err)
					return
				}
				say("ack %s", id)
				switch {
				case i%7 == 3:
					say("expunging %s", id)
					s.StoreFlags(ctx, inbox.ID, []UIDRange{{uid, uid}}, FlagsAdd, []string{`\Deleted`}, nil)
					if _, err := s.Expunge(ctx, inbox.ID, []UIDRange{{uid, uid}}, nil); err != nil {
						t.Error(err)
						return
					}
					say("expunged %s", id)
				case i%5 == 1:
					if _, err := s.StoreFlags(ctx, inbox.ID, []UIDRange{{uid, uid}}, FlagsAdd, []string{`\Seen`}, nil); err != nil {
						t.Error(err)
						return
					}
					say("seen %s", id)
				}
			}
		})
	}
	wg.Go(func() {
		for i := 0; ; i++ {
			id := fmt.Sprintf("r%s-both-m%d", round, i)
			if err := s.DeliverAll(ctx, []string{"anna", "ben"}, "", strings.NewReader(message(id, strings.Repeat("Text ", 200)))); err != nil {
				t.Error(err)
				return
			}
			say("ack %s", id)
		}
	})
	wg.Wait()
}
