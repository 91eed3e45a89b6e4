package imap

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
	"github.com/heimwolke/heimwolke/packages/accounts"
)

// testEnv is a running IMAP server on loopback with one user.
type testEnv struct {
	dir      string
	store    *store.Store
	accounts *accounts.Store
	server   *Server
	addr     string // host:port
	port     string
	caFile   string // PEM of the CA that signed the server certificate
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

	tlsConfig, caPEM, pool := testCertificates(t)
	env.caFile = filepath.Join(env.dir, "ca.pem")
	if err := os.WriteFile(env.caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	env.caPool = pool

	opts.Store, opts.Accounts, opts.TLSConfig, opts.Logger = st, acc, tlsConfig, logger
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

// testCertificates makes a CA and a server certificate for localhost and
// 127.0.0.1 signed by it.
func testCertificates(t testing.TB) (*tls.Config, []byte, *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Heimwolke test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	config := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	return config, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), pool
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
