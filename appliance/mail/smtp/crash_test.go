package smtp

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/mail/auth"
	"github.com/heimwolke/heimwolke/appliance/mail/queue"
	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/sqlitedb"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// The crash test runs the server as a child process: this test binary,
// started with crashChildEnv set to the data folder.
const (
	crashChildEnv = "HEIMWOLKE_SMTP_CRASH_CHILD"
	crashAddrEnv  = "HEIMWOLKE_SMTP_CRASH_ADDR"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		if err := runCrashChild(dir, os.Getenv(crashAddrEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// openCrashQueue opens the queue that the child writes, as the box would
// after a restart.
func openCrashQueue(ctx context.Context, dir string) (*queue.Queue, func(), error) {
	db, err := sqlitedb.Open(ctx, filepath.Join(dir, "heimwolke.db"), 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	keys, err := auth.LoadOrCreateKeys(filepath.Join(dir, "dkim"))
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	q, err := queue.Open(ctx, queue.Options{Dir: filepath.Join(dir, "queue"), DB: db, Hostname: testHost, Signer: keys})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return q, func() { db.Close() }, nil
}

// runCrashChild serves submission with implicit TLS on addr until killed.
// The queue does not deliver, so every accepted message stays in it.
func runCrashChild(dir, addr string) error {
	ctx := context.Background()
	store, err := accounts.Open(ctx, filepath.Join(dir, "accounts.db"), accounts.Options{})
	if err != nil {
		return err
	}
	q, _, err := openCrashQueue(ctx, dir)
	if err != nil {
		return err
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, testHost+".crt"), filepath.Join(dir, testHost+".key"))
	if err != nil {
		return err
	}
	srv, err := New(Options{
		Hostname:  testHost,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}},
		Directory: &StaticDirectory{Domains: []string{testDomain}, Users: store},
		Deliverer: &memDeliverer{},
		Outbox:    q,
		Passwords: store,
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return srv.Serve(l, SubmissionTLS)
}

// queuedRE matches the reply to the end of data in a swaks transcript,
// where "<~" marks a line read over TLS.
var queuedRE = regexp.MustCompile(`(?m)^<[-~]  250 2\.0\.0 OK: queued`)

// TestCrashKeepsAcceptedMessages kills the server with SIGKILL while swaks
// submits messages in a loop, three times, and then checks the queue: every
// message that got 250 is there exactly once, and no other message is
// there twice. It guards against a 250 before the message is durable and
// against a restart that loses or duplicates queue entries.
func TestCrashKeepsAcceptedMessages(t *testing.T) {
	swaksPath := testpeer.Require(t, "swaks", "swaks")
	ctx := context.Background()
	dir := t.TempDir()
	testpeer.SelfSigned(t, testHost, "127.0.0.1").WriteFiles(t, dir, testHost)

	store, err := accounts.Open(ctx, filepath.Join(dir, "accounts.db"), accounts.Options{
		Argon2: accounts.Argon2Params{Memory: 64, Time: 1, Threads: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	anna, err := store.CreateOwner(ctx, accounts.NewUser{Name: "anna", Password: "correct horse battery", Language: accounts.LanguageEnglish})
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err := store.CreateAppPassword(ctx, anna.ID, "phone", accounts.ScopeMail)
	if err != nil {
		t.Fatal(err)
	}
	store.Close()

	var mu sync.Mutex
	accepted := map[int]bool{} // seq -> got 250
	seq := 0
	port := freePort(t)
	const rounds = 3
	for round := range rounds {
		child := exec.Command(os.Args[0], "-test.run=^$")
		child.Env = append(os.Environ(), crashChildEnv+"="+dir, crashAddrEnv+"=127.0.0.1:"+strconv.Itoa(port))
		child.Stderr = os.Stderr
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "the child server", func() bool {
			c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err == nil {
				c.Close()
			}
			return err == nil
		})

		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				seq++
				n := seq
				mu.Unlock()
				out, _ := exec.Command(swaksPath, "--server", "127.0.0.1", "--port", strconv.Itoa(port), "--tlsc",
					"--timeout", "10", "--auth", "PLAIN", "--auth-user", "anna", "--auth-password", secret,
					"--from", "anna@example.test", "--h-From", "anna@example.test", "--to", "friend@remote.test",
					"--header", "X-Seq: "+strconv.Itoa(n)).CombinedOutput()
				mu.Lock()
				accepted[n] = queuedRE.Match(out)
				mu.Unlock()
			}
		}()

		time.Sleep(time.Duration(1500+500*round) * time.Millisecond)
		child.Process.Kill()
		child.Wait()
		close(stop)
		<-done
	}

	q, closeQueue, err := openCrashQueue(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeQueue()
	entries, err := q.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	count := map[int]int{}
	seqRE := regexp.MustCompile(`(?m)^X-Seq: (\d+)\r?$`)
	for _, e := range entries {
		msg, err := q.Message(ctx, e.MessageID)
		if err != nil {
			t.Fatal(err)
		}
		m := seqRE.FindSubmatch(msg)
		if m == nil {
			t.Fatalf("queued message %d has no X-Seq field", e.MessageID)
		}
		n, _ := strconv.Atoi(string(m[1]))
		count[n]++
	}

	nAccepted := 0
	for n, ok := range accepted {
		switch {
		case ok && count[n] != 1:
			t.Errorf("message %d got 250 and is queued %d times, want 1", n, count[n])
		case !ok && count[n] > 1:
			t.Errorf("message %d got no 250 and is queued %d times, want at most 1", n, count[n])
		}
		if ok {
			nAccepted++
		}
	}
	t.Logf("%d messages sent, %d accepted with 250, %d queued", len(accepted), nAccepted, len(entries))
	if nAccepted < rounds {
		t.Errorf("only %d messages got 250, want at least one per round", nAccepted)
	}
	orphans, _ := filepath.Glob(filepath.Join(dir, "queue", "messages", "*"))
	if len(orphans) != len(entries) {
		t.Errorf("queue folder has %d files for %d messages after reopening", len(orphans), len(entries))
	}
}
