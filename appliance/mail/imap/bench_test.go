package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// The benchmark compares this server with Dovecot from Debian on the same
// machine in the same run, with the same go-imap client for both:
//
//	go test -run '^$' -bench . -benchtime 1x ./appliance/mail/imap/
//
// HEIMWOLKE_BENCH_MESSAGES and HEIMWOLKE_BENCH_CONNS shrink the mailbox and
// the number of idle connections for a quick run.

const benchChildEnv = "HEIMWOLKE_IMAP_BENCH_CHILD"

func benchSetting(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchResult holds one server's numbers.
type benchResult struct {
	appendAll  time.Duration // all messages, one APPEND after the other
	selectOne  time.Duration // mean of several SELECTs
	fetchAll   time.Duration // FETCH 1:* of flags, size and four header fields
	searchHead time.Duration // mean SEARCH SUBJECT
	searchBody time.Duration // mean SEARCH BODY
	memPerConn float64       // bytes of PSS per idle connection
}

func BenchmarkIMAPAgainstDovecot(b *testing.B) {
	dovecotBin := testpeer.Require(b, "dovecot", "dovecot-imapd")
	messages := benchSetting("HEIMWOLKE_BENCH_MESSAGES", 50_000)
	conns := benchSetting("HEIMWOLKE_BENCH_CONNS", 500)
	dir := b.TempDir()
	tlsFiles := writeBenchCertificates(b, dir)

	for range b.N {
		dovecotAddr, dovecotPID := startDovecot(b, dovecotBin, dir, tlsFiles)
		oursAddr, oursPID, password := startBenchChild(b, dir, tlsFiles)
		servers := []*benchServer{
			{name: "dovecot", addr: dovecotAddr, user: "anna", password: "benchpass", pid: dovecotPID, pool: tlsFiles.pool},
			{name: "heimwolke", addr: oursAddr, user: "anna", password: password, pid: oursPID, pool: tlsFiles.pool},
		}
		// Each step runs on both servers right after each other, and the
		// appends alternate in chunks, so that load from other programs
		// on the machine hits both alike.
		benchAppend(b, servers, messages)
		benchReads(b, servers, messages)
		for _, srv := range servers {
			srv.result.memPerConn = measureIdleMemory(b, srv, conns)
			b.Logf("%s: %+v", srv.name, srv.result)
		}

		d, h := servers[0].result, servers[1].result
		report := func(name string, ours, theirs float64, unit string) {
			b.ReportMetric(ours, "heimwolke-"+name+"-"+unit)
			b.ReportMetric(theirs, "dovecot-"+name+"-"+unit)
			if theirs > 0 {
				b.ReportMetric(ours/theirs, "ratio-"+name)
			}
		}
		report("append", h.appendAll.Seconds(), d.appendAll.Seconds(), "s")
		report("select", h.selectOne.Seconds()*1000, d.selectOne.Seconds()*1000, "ms")
		report("fetch", h.fetchAll.Seconds()*1000, d.fetchAll.Seconds()*1000, "ms")
		report("search-subject", h.searchHead.Seconds()*1000, d.searchHead.Seconds()*1000, "ms")
		report("search-body", h.searchBody.Seconds()*1000, d.searchBody.Seconds()*1000, "ms")
		report("mem-per-conn", h.memPerConn/1024, d.memPerConn/1024, "KiB")
	}
}

// benchServer is one server under test and its numbers.
type benchServer struct {
	name, addr, user, password string
	pid                        int
	pool                       *x509.CertPool
	result                     benchResult
}

func (srv *benchServer) dial(b *testing.B) *imapclient.Client {
	return benchDial(b, srv.addr, srv.user, srv.password, srv.pool)
}

// benchMessage returns the i-th message of the benchmark mailbox, about
// 1.5 KiB. One in a thousand contains the word "Stecknadel".
func benchMessage(i int) []byte {
	var body strings.Builder
	for line := range 20 {
		fmt.Fprintf(&body, "Zeile %d der Nachricht %d mit etwas Text, damit sie realistisch groß ist.\r\n", line, i)
	}
	if i%1000 == 0 {
		body.WriteString("Hier steckt die Stecknadel.\r\n")
	}
	return []byte(fmt.Sprintf("From: Person %d <p%d@example.org>\r\n"+
		"To: Anna <anna@example.org>\r\n"+
		"Subject: Betreff %d\r\n"+
		"Date: Fri, 04 Dec 2026 10:%02d:%02d +0100\r\n"+
		"Message-ID: <%d@bench.example.org>\r\n"+
		"MIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n"+
		"\r\n%s", i%97, i%97, i, (i/60)%60, i%60, i, body.String()))
}

// benchAppend appends the messages one APPEND after the other, alternating
// between the servers every appendChunk messages.
func benchAppend(b *testing.B, servers []*benchServer, messages int) {
	b.Helper()
	const appendChunk = 500
	clients := make([]*imapclient.Client, len(servers))
	for i, srv := range servers {
		clients[i] = srv.dial(b)
	}
	for first := 0; first < messages; first += appendChunk {
		for i, srv := range servers {
			start := time.Now()
			for n := first; n < min(first+appendChunk, messages); n++ {
				msg := benchMessage(n)
				cmd := clients[i].Append("INBOX", int64(len(msg)), nil)
				cmd.Write(msg)
				cmd.Close()
				if _, err := cmd.Wait(); err != nil {
					b.Fatalf("%s: APPEND %d: %v", srv.name, n, err)
				}
			}
			srv.result.appendAll += time.Since(start)
		}
	}
	for _, c := range clients {
		c.Logout().Wait()
	}
}

// benchReads times SELECT, FETCH of headers and SEARCH on each server.
func benchReads(b *testing.B, servers []*benchServer, messages int) {
	b.Helper()
	clients := make([]*imapclient.Client, len(servers))
	for i, srv := range servers {
		clients[i] = srv.dial(b)
	}

	const selects = 5
	for i, srv := range servers {
		start := time.Now()
		for range selects {
			if _, err := clients[i].Select("INBOX", nil).Wait(); err != nil {
				b.Fatalf("%s: SELECT: %v", srv.name, err)
			}
			if err := clients[i].Unselect().Wait(); err != nil {
				b.Fatalf("%s: UNSELECT: %v", srv.name, err)
			}
		}
		srv.result.selectOne = time.Since(start) / selects
		if _, err := clients[i].Select("INBOX", nil).Wait(); err != nil {
			b.Fatal(err)
		}
	}

	for i, srv := range servers {
		start := time.Now()
		fetched, err := clients[i].Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID: true, Flags: true, RFC822Size: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"From", "To", "Subject", "Date"}}},
		}).Collect()
		srv.result.fetchAll = time.Since(start)
		if err != nil || len(fetched) != messages {
			b.Fatalf("%s: FETCH 1:* returned %d messages, %v; want %d", srv.name, len(fetched), err, messages)
		}
	}

	const searches = 3
	for i, srv := range servers {
		start := time.Now()
		for range searches {
			data, err := clients[i].Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "Betreff 0"}}}, nil).Wait()
			if err != nil || len(data.AllSeqNums()) < 1 {
				b.Fatalf("%s: SEARCH SUBJECT: %v, %v", srv.name, data, err)
			}
		}
		srv.result.searchHead = time.Since(start) / searches
	}
	for i, srv := range servers {
		start := time.Now()
		for range searches {
			data, err := clients[i].Search(&imap.SearchCriteria{Body: []string{"Stecknadel"}}, nil).Wait()
			if err != nil || len(data.AllSeqNums()) != (messages+999)/1000 {
				b.Fatalf("%s: SEARCH BODY found %v, %v; want %d", srv.name, data, err, (messages+999)/1000)
			}
		}
		srv.result.searchBody = time.Since(start) / searches
	}
	for _, c := range clients {
		c.Logout().Wait()
	}
}

func benchDial(b *testing.B, addr, user, password string, pool *x509.CertPool) *imapclient.Client {
	b.Helper()
	c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Login(user, password).Wait(); err != nil {
		b.Fatalf("login to %s: %v", addr, err)
	}
	return c
}

// measureIdleMemory opens conns connections that log in, select the inbox
// and idle, and returns the growth of the server's PSS per connection.
func measureIdleMemory(b *testing.B, srv *benchServer, conns int) float64 {
	b.Helper()
	name, pid := srv.name, srv.pid
	settle(pid)
	before := treePSS(b, pid)
	var clients []*imapclient.Client
	var idles []*imapclient.IdleCommand
	for i := range conns {
		c := srv.dial(b)
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			b.Fatalf("%s: SELECT on connection %d: %v", name, i, err)
		}
		idle, err := c.Idle()
		if err != nil {
			b.Fatalf("%s: IDLE on connection %d: %v", name, i, err)
		}
		clients = append(clients, c)
		idles = append(idles, idle)
	}
	settle(pid)
	after := treePSS(b, pid)
	b.Logf("%s: PSS %d KiB before, %d KiB with %d idle connections", name, before/1024, after/1024, conns)
	for i := range clients {
		idles[i].Close()
		clients[i].Close()
	}
	return float64(after-before) / float64(conns)
}

// settle sends SIGUSR1 and waits for the server to go quiet. The benchmark
// child then collects garbage, and Dovecot's master reopens its logs.
func settle(pid int) {
	syscall.Kill(pid, syscall.SIGUSR1)
	time.Sleep(2 * time.Second)
}

// treePSS returns the proportional set size in bytes of the process pid and
// all its descendants, so shared pages of Dovecot's many processes count
// once.
func treePSS(b *testing.B, pid int) int64 {
	b.Helper()
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name in brackets may contain spaces, so the fields
		// are counted from its closing bracket: state, then ppid.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 {
			ppid, _ := strconv.Atoi(fields[1])
			children[ppid] = append(children[ppid], p)
		}
	}
	var total int64
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = append(queue[1:], children[p]...)
		total += pssOf(p)
	}
	return total
}

func pssOf(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

type benchTLSFiles struct {
	cert, key string
	pool      *x509.CertPool
}

func writeBenchCertificates(b *testing.B, dir string) benchTLSFiles {
	b.Helper()
	cert := testpeer.SelfSigned(b, "localhost", "127.0.0.1")
	certFile, keyFile := cert.WriteFiles(b, dir, "localhost")
	return benchTLSFiles{cert: certFile, key: keyFile, pool: cert.Pool}
}

func freePort(b *testing.B) int {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startDovecot runs Dovecot in the foreground with maildir storage, the
// user anna with the password benchpass, and IMAPS on a free loopback port.
func startDovecot(b *testing.B, bin, parent string, tlsFiles benchTLSFiles) (addr string, pid int) {
	b.Helper()
	dir := filepath.Join(parent, "dovecot")
	// Dovecot's auth process runs as the dovecot user and must reach the
	// passwd file through the test's folders.
	os.Chmod(parent, 0o755)
	os.Chmod(filepath.Dir(parent), 0o755)
	for _, sub := range []string{"run", "state", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	// The mail processes run as nobody, which must own the home folder.
	if err := os.Chown(filepath.Join(dir, "home"), 65534, 65534); err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "passwd"), []byte("anna:{PLAIN}benchpass\n"), 0o644)
	port := freePort(b)
	config := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
instance_name = heimwolke-bench-%[2]d
log_path = %[1]s/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <%[3]s
ssl_key = <%[4]s
auth_mechanisms = plain
mail_location = maildir:~/Maildir
mail_max_userip_connections = 10000
default_login_user = dovenull
default_internal_user = dovecot
passdb {
  driver = passwd-file
  args = scheme=PLAIN %[1]s/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=%[1]s/home/%%u allow_all_users=yes
}
namespace inbox {
  inbox = yes
  separator = /
}
# Debian's default high-security mode: one imap-login process per TLS
# connection, which stays to proxy it, and one imap process per session.
service imap-login {
  process_limit = 1000
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = %[2]d
    ssl = yes
  }
}
service imap {
  process_limit = 1000
}
`, dir, port, tlsFiles.cert, tlsFiles.key)
	configFile := filepath.Join(dir, "dovecot.conf")
	os.WriteFile(configFile, []byte(config), 0o644)
	cmd := exec.Command(bin, "-F", "-c", configFile)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if b.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			b.Logf("dovecot.log:\n%s", lastBytes(log, 4000))
		}
	})
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(b, addr)
	return addr, cmd.Process.Pid
}

func waitListening(b *testing.B, addr string) {
	b.Helper()
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("nothing listens on %s", addr)
}

// startBenchChild creates the user and runs this server in a child process
// (TestBenchChildServer), so that its memory can be measured apart from the
// benchmark's client.
func startBenchChild(b *testing.B, parent string, tlsFiles benchTLSFiles) (addr string, pid int, password string) {
	b.Helper()
	dir := filepath.Join(parent, "heimwolke")
	os.MkdirAll(dir, 0o700)
	ctx := context.Background()
	acc, err := accounts.Open(ctx, filepath.Join(dir, "heimwolke.db"), accounts.Options{Argon2: accounts.Argon2Params{Memory: 1024, Time: 1, Threads: 1}})
	if err != nil {
		b.Fatal(err)
	}
	u, err := acc.CreateOwner(ctx, accounts.NewUser{Name: "anna", Language: accounts.LanguageGerman, Password: "correct horse battery"})
	if err != nil {
		b.Fatal(err)
	}
	password, _, err = acc.CreateAppPassword(ctx, u.ID, "bench", accounts.ScopeMail)
	if err != nil {
		b.Fatal(err)
	}
	acc.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchChildServer$")
	cmd.Env = append(os.Environ(), benchChildEnv+"="+dir, "HEIMWOLKE_BENCH_CERT="+tlsFiles.cert, "HEIMWOLKE_BENCH_KEY="+tlsFiles.key)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("benchmark child: %v", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok {
		b.Fatalf("benchmark child printed %q, want its address", line)
	}
	return addr, cmd.Process.Pid, password
}

// TestBenchChildServer is the server process of BenchmarkIMAPAgainstDovecot.
func TestBenchChildServer(t *testing.T) {
	dir := os.Getenv(benchChildEnv)
	if dir == "" {
		t.Skip("runs only as the child of BenchmarkIMAPAgainstDovecot")
	}
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dbPath := filepath.Join(dir, "heimwolke.db")
	acc, err := accounts.Open(ctx, dbPath, accounts.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, store.Options{Dir: filepath.Join(dir, "mail"), DatabasePath: dbPath, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(os.Getenv("HEIMWOLKE_BENCH_CERT"), os.Getenv("HEIMWOLKE_BENCH_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{
		Store: st, Accounts: acc, Logger: logger,
		TLSConfig:       &tls.Config{Certificates: []tls.Certificate{cert}},
		MaxConnsPerAddr: 10_000,
		MaxConnsPerUser: 10_000,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The benchmark sends SIGUSR1 before it reads the memory use, so that
	// garbage from the earlier steps does not count.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1)
	go func() {
		for range sigs {
			runtime.GC()
			debug.FreeOSMemory()
		}
	}()
	fmt.Printf("listening %s\n", ln.Addr())
	srv.Serve(ln)
}
