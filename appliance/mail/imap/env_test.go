package imap

import (
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// testEnv is a running IMAP server on loopback with one user.
type testEnv struct {
	dir      string
	store    *store.Store
	accounts *accounts.Store
	server   *Server
	addr     string // host:port
	port     string
	caFile   string // PEM of the self-signed server certificate, the CA file for peers
	caPool   *x509.CertPool
	user     string
	password string // an app password with the mail scope
}

func newTestEnv(t testing.TB, opts Options) *testEnv {
	t.Helper()
	ctx := context.Background()
	env := &testEnv{dir: t.TempDir(), user: "anna"}
	dbPath := filepath.Join(env.dir, "heimwolke.db")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}

	acc, err := accounts.Open(ctx, dbPath, accounts.Options{Logger: logger, Argon2: accounts.Argon2Params{Memory: 1024, Time: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { acc.Close() })
	u, err := acc.CreateOwner(ctx, accounts.NewUser{Name: env.user, Language: accounts.LanguageGerman, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	env.password, _, err = acc.CreateAppPassword(ctx, u.ID, "laptop", accounts.ScopeMail)
	if err != nil {
		t.Fatal(err)
	}
	env.accounts = acc

	st, err := store.Open(ctx, store.Options{Dir: filepath.Join(env.dir, "mail"), DatabasePath: dbPath, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	env.store = st

	cert := testpeer.SelfSigned(t, "localhost", "127.0.0.1")
	env.caFile, _ = cert.WriteFiles(t, env.dir, "localhost")
	env.caPool = cert.Pool

	opts.Store, opts.Accounts, opts.TLSConfig, opts.Logger = st, acc, cert.ServerConfig(), logger
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	env.server = srv
	env.addr = ln.Addr().String()
	_, env.port, _ = net.SplitHostPort(env.addr)
	return env
}

// testMessage returns a small RFC 5322 message.
func testMessage(subject, body string) string {
	return "From: Bernd <bernd@example.org>\r\n" +
		"To: Anna <anna@example.org>\r\n" +
		"Subject: " + subject + "\r\n" +
		"Date: Fri, 04 Dec 2026 10:00:00 +0100\r\n" +
		"Message-ID: <" + subject + "@example.org>\r\n" +
		"\r\n" + body + "\r\n"
}
