package smtp

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/appliance/mail/auth"
	"github.com/heimwolke/heimwolke/appliance/mail/queue"
	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/sqlitedb"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// testDomain is the box's mail domain in the tests; testHost its host.
const (
	testDomain = "example.test"
	testHost   = "mail.example.test"
)

// testDNS is a DNS server on loopback that answers from a table, so that
// SPF, DKIM, DMARC, MX and MTA-STS lookups stay inside the test.
type testDNS struct {
	addr string
	mu   sync.Mutex
	rrs  map[string][]dns.RR // key: lowered FQDN + " " + type
}

func newTestDNS(t testing.TB, listenAddr string) *testDNS {
	t.Helper()
	d := &testDNS{rrs: map[string][]dns.RR{}}
	// The UDP and TCP servers share a port, and another process may hold
	// the TCP port that the kernel gave out for UDP: try again then.
	var pc net.PacketConn
	var l net.Listener
	var err error
	for range 20 {
		pc, err = net.ListenPacket("udp", listenAddr)
		if err != nil {
			t.Fatal(err)
		}
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	d.addr = pc.LocalAddr().String()
	udp := &dns.Server{PacketConn: pc, Handler: d}
	tcp := &dns.Server{Listener: l, Handler: d}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() {
		udp.Shutdown()
		tcp.Shutdown()
	})
	return d
}

// add adds records in zone-file syntax, such as
// "example.test. 300 IN MX 10 mx.example.test.".
func (d *testDNS) add(t testing.TB, lines ...string) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, line := range lines {
		rr, err := dns.NewRR(line)
		if err != nil {
			t.Fatalf("parsing test record %q: %v", line, err)
		}
		key := strings.ToLower(rr.Header().Name) + " " + dns.TypeToString[rr.Header().Rrtype]
		d.rrs[key] = append(d.rrs[key], rr)
	}
}

// addTXT adds a TXT record, split into strings of 255 bytes.
func (d *testDNS) addTXT(t testing.TB, name, text string) {
	t.Helper()
	var parts []string
	for len(text) > 255 {
		parts = append(parts, text[:255])
		text = text[255:]
	}
	parts = append(parts, text)
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: parts}
	d.mu.Lock()
	defer d.mu.Unlock()
	key := strings.ToLower(dns.Fqdn(name)) + " TXT"
	d.rrs[key] = append(d.rrs[key], rr)
}

func (d *testDNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	d.mu.Lock()
	found := false
	for _, q := range r.Question {
		name := strings.ToLower(q.Name)
		for key, rrs := range d.rrs {
			if strings.HasPrefix(key, name+" ") {
				found = true
				if key == name+" "+dns.TypeToString[q.Qtype] {
					m.Answer = append(m.Answer, rrs...)
				}
			}
		}
	}
	d.mu.Unlock()
	if !found {
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}

// resolver returns a resolver that queries only this server.
func (d *testDNS) resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, network, d.addr)
		},
	}
}

// delivery is one message that memDeliverer received.
type delivery struct {
	login, folder string
	msg           []byte
}

// memDeliverer keeps delivered messages in memory.
type memDeliverer struct {
	mu   sync.Mutex
	msgs []delivery
	fail bool
}

func (m *memDeliverer) Deliver(ctx context.Context, login, folder string, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return io.ErrUnexpectedEOF
	}
	m.msgs = append(m.msgs, delivery{login, folder, b})
	return nil
}

// setFail makes every following delivery fail, or succeed again.
func (m *memDeliverer) setFail(fail bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = fail
}

func (m *memDeliverer) all() []delivery {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]delivery(nil), m.msgs...)
}

// waitFor polls cond for up to timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testEnv is a running SMTP server with its accounts, queue and DNS.
type testEnv struct {
	dir         string
	cert        *testpeer.Cert
	dns         *testDNS
	accounts    *accounts.Store
	secret      string // anna's app password with the mail scope
	deliverer   *memDeliverer
	queue       *queue.Queue
	keys        *auth.Keys
	server      *Server
	inbound     string // host:port
	submission  string
	submissions string
	logs        *testpeer.Buffer
}

type envOptions struct {
	queue    func(*queue.Options)
	server   func(*Options)
	runQueue bool
}

func newTestEnv(t testing.TB, eo envOptions) *testEnv {
	t.Helper()
	ctx := context.Background()
	e := &testEnv{dir: t.TempDir(), deliverer: &memDeliverer{}, logs: &testpeer.Buffer{}}
	e.cert = testpeer.SelfSigned(t, testHost, "localhost", "127.0.0.1")
	e.dns = newTestDNS(t, "127.0.0.1:0")

	var err error
	e.accounts, err = accounts.Open(ctx, filepath.Join(e.dir, "accounts.db"), accounts.Options{
		Argon2: accounts.Argon2Params{Memory: 64, Time: 1, Threads: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.accounts.Close() })
	anna, err := e.accounts.CreateOwner(ctx, accounts.NewUser{Name: "anna", Password: "correct horse battery", Language: accounts.LanguageGerman})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.accounts.CreateMember(ctx, accounts.NewUser{Name: "ben", Password: "correct horse battery", Language: accounts.LanguageEnglish}); err != nil {
		t.Fatal(err)
	}
	e.secret, _, err = e.accounts.CreateAppPassword(ctx, anna.ID, "phone", accounts.ScopeMail)
	if err != nil {
		t.Fatal(err)
	}

	e.keys, err = auth.LoadOrCreateKeys(filepath.Join(e.dir, "dkim"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range e.keys.Records() {
		e.dns.addTXT(t, r.Selector+"._domainkey."+testDomain, r.Text)
	}

	db, err := sqlitedb.Open(ctx, filepath.Join(e.dir, "heimwolke.db"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	qopts := queue.Options{
		Dir:         filepath.Join(e.dir, "queue"),
		DB:          db,
		Hostname:    testHost,
		Signer:      e.keys,
		Local:       e.deliverer,
		Resolver:    e.dns.resolver(),
		Dial:        (&net.Dialer{Timeout: 10 * time.Second, Resolver: e.dns.resolver()}).DialContext,
		TLSConfig:   &tls.Config{RootCAs: e.cert.Pool},
		RetryDelays: []time.Duration{time.Second},
		Logger:      logger,
		Language: func(ctx context.Context, login string) string {
			u, err := e.accounts.UserByName(ctx, login)
			if err != nil {
				return "en"
			}
			return string(u.Language)
		},
	}
	if eo.queue != nil {
		eo.queue(&qopts)
	}
	e.queue, err = queue.Open(ctx, qopts)
	if err != nil {
		t.Fatal(err)
	}
	if eo.runQueue {
		qctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			e.queue.Run(qctx)
			close(done)
		}()
		t.Cleanup(func() {
			cancel()
			<-done
		})
	}

	opts := Options{
		Hostname:  testHost,
		TLSConfig: e.cert.ServerConfig(),
		Directory: &StaticDirectory{
			Domains:  []string{testDomain},
			Aliases:  map[string]string{"info@" + testDomain: "anna"},
			CatchAll: map[string]string{},
			Users:    e.accounts,
		},
		Deliverer: e.deliverer,
		Outbox:    e.queue,
		Passwords: e.accounts,
		Checker:   &auth.Checker{AuthServID: testHost, Resolver: e.dns.resolver()},
		Logger:    logger,
	}
	if eo.server != nil {
		eo.server(&opts)
	}
	e.server, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.server.Close() })
	e.inbound = e.listen(t, Inbound)
	e.submission = e.listen(t, Submission)
	e.submissions = e.listen(t, SubmissionTLS)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", e.logs.String())
		}
	})
	return e
}

func (e *testEnv) listen(t testing.TB, mode Mode) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.server.Serve(l, mode)
	return l.Addr().String()
}

// hostPort splits addr for swaks' --server and --port.
func hostPort(t testing.TB, addr string) (string, string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}
