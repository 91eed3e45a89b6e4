package tlsstore

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// selfSigned returns a PEM chain and key for a certificate with the given
// DNS names and serial number. It expires serial hours from now, so a
// higher serial also expires later.
func selfSigned(t testing.TB, serial int64, names ...string) (chainPEM, keyPEM []byte) {
	t.Helper()
	notAfter := time.Now().Add(time.Duration(serial) * time.Hour)
	cert := testpeer.SelfSignedWith(t, testpeer.CertOptions{Serial: serial, NotAfter: notAfter}, names...)
	return cert.CertPEM, cert.KeyPEM
}

func openStore(t *testing.T) *Store {
	t.Helper()
	store, err := Open(filepath.Join(t.TempDir(), "tls"))
	if err != nil {
		t.Fatal(err)
	}
	return store
}

func writeCert(t *testing.T, store *Store, name string, serial int64, names ...string) {
	t.Helper()
	chain, key := selfSigned(t, serial, names...)
	if err := store.WriteCertificate(name, chain, key); err != nil {
		t.Fatal(err)
	}
}

func serialFor(t *testing.T, store *Store, serverName string) int64 {
	t.Helper()
	cert, err := store.GetCertificate(&tls.ClientHelloInfo{ServerName: serverName})
	if err != nil {
		t.Fatalf("GetCertificate(%q): %v", serverName, err)
	}
	return cert.Leaf.SerialNumber.Int64()
}

func TestGetCertificateSelection(t *testing.T) {
	store := openStore(t)
	writeCert(t, store, "acme", 10, "example.org", "mail.example.org")
	writeCert(t, store, "wild", 20, "*.example.org")
	writeCert(t, store, "local", 30, "heimwolke.local")
	if err := store.SetDefault("acme"); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		serverName string
		want       int64
	}{
		{"example.org", 10},
		{"MAIL.example.org.", 10},
		{"upload.example.org", 20},
		{"a.b.example.org", 10}, // a wildcard covers one label only, so the default
		{"heimwolke.local", 30},
		{"", 10},
		{"other.test", 10},
	}
	for _, c := range cases {
		if got := serialFor(t, store, c.serverName); got != c.want {
			t.Errorf("serial for %q = %d, want %d", c.serverName, got, c.want)
		}
	}
}

func TestGetCertificateEmptyStore(t *testing.T) {
	store := openStore(t)
	if _, err := store.GetCertificate(&tls.ClientHelloInfo{ServerName: "example.org"}); err == nil {
		t.Fatal("GetCertificate on an empty store succeeded, want an error")
	}
}

func TestReloadAfterChange(t *testing.T) {
	store := openStore(t)
	now := time.Now()
	store.now = func() time.Time { return now }
	writeCert(t, store, "acme", 1, "example.org")
	if got := serialFor(t, store, "example.org"); got != 1 {
		t.Fatalf("serial = %d, want 1", got)
	}

	writeCert(t, store, "acme", 2, "example.org")
	if got := serialFor(t, store, "example.org"); got != 1 {
		t.Errorf("serial within the reload interval = %d, want 1 (no stat before a second passed)", got)
	}
	now = now.Add(reloadInterval)
	if got := serialFor(t, store, "example.org"); got != 2 {
		t.Errorf("serial after the reload interval = %d, want 2", got)
	}

	if err := store.RemoveCertificate("acme"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(reloadInterval)
	if _, err := store.GetCertificate(&tls.ClientHelloInfo{ServerName: "example.org"}); err == nil {
		t.Error("GetCertificate after RemoveCertificate succeeded, want an error")
	}
}

// TestReloadKeepsOldOnMismatch guards against serving a new key with the old
// certificate while the agent is between writing the two files.
func TestReloadKeepsOldOnMismatch(t *testing.T) {
	store := openStore(t)
	now := time.Now()
	store.now = func() time.Time { return now }
	writeCert(t, store, "acme", 1, "example.org")
	serialFor(t, store, "example.org")

	_, otherKey := selfSigned(t, 2, "example.org")
	if err := WriteFile(store.KeyFile("acme"), otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	now = now.Add(reloadInterval)
	if got := serialFor(t, store, "example.org"); got != 1 {
		t.Errorf("serial with a mismatched key on disk = %d, want 1", got)
	}
}

func TestWriteCertificateRejectsMismatch(t *testing.T) {
	store := openStore(t)
	chain, _ := selfSigned(t, 1, "example.org")
	_, key := selfSigned(t, 2, "example.org")
	if err := store.WriteCertificate("acme", chain, key); err == nil {
		t.Error("WriteCertificate with a foreign key succeeded, want an error")
	}
	if err := store.WriteCertificate("../escape", chain, key); err == nil {
		t.Error("WriteCertificate with name ../escape succeeded, want an error")
	}
}

func TestPermissions(t *testing.T) {
	store := openStore(t)
	writeCert(t, store, "acme", 1, "example.org")
	if err := store.PutHTTPChallenge("tok", "tok.thumb"); err != nil {
		t.Fatal(err)
	}

	checks := map[string]os.FileMode{
		store.Dir(): 0o700,
		filepath.Join(store.Dir(), certsDir, "acme"):                       0o700,
		store.KeyFile("acme"):                                              0o600,
		store.CertFile("acme"):                                             0o600,
		filepath.Join(store.Dir(), challengesDir, httpChallengeDir, "tok"): 0o600,
	}
	for path, want := range checks {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("mode of %s = %v, want %v", path, got, want)
		}
	}

	leftovers, _ := filepath.Glob(filepath.Join(store.Dir(), certsDir, "acme", ".*tmp*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

func TestHTTPChallengeHandler(t *testing.T) {
	store := openStore(t)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "next") })
	server := httptest.NewServer(store.HTTPChallengeHandler(next))
	defer server.Close()

	if err := store.PutHTTPChallenge("abc_DEF-123", "abc_DEF-123.thumbprint"); err != nil {
		t.Fatal(err)
	}

	get := func(path string) (int, string, string) {
		t.Helper()
		resp, err := http.Get(server.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
	}

	status, contentType, body := get("/.well-known/acme-challenge/abc_DEF-123")
	if status != 200 || body != "abc_DEF-123.thumbprint" {
		t.Errorf("challenge: got %d %q, want 200 %q", status, body, "abc_DEF-123.thumbprint")
	}
	if contentType != "application/octet-stream" {
		t.Errorf("challenge Content-Type = %q, want application/octet-stream", contentType)
	}
	if status, _, _ := get("/.well-known/acme-challenge/unknown"); status != 404 {
		t.Errorf("unknown token: got %d, want 404", status)
	}
	if status, _, _ := get("/.well-known/acme-challenge/..%2fdefault"); status != 404 {
		t.Errorf("traversal token: got %d, want 404", status)
	}
	if _, _, body := get("/index.html"); body != "next" {
		t.Errorf("other path: got %q, want the next handler's %q", body, "next")
	}

	if err := store.DeleteHTTPChallenge("abc_DEF-123"); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := get("/.well-known/acme-challenge/abc_DEF-123"); status != 404 {
		t.Errorf("deleted token: got %d, want 404", status)
	}
}

// TestTLSALPNChallenge dials the store's TLSConfig over real TLS: a client
// offering only acme-tls/1 gets the challenge certificate, others the normal
// one, and a connection opened before a certificate change keeps working.
func TestTLSALPNChallenge(t *testing.T) {
	store := openStore(t)
	writeCert(t, store, "acme", 1, "example.org")
	challengeChain, challengeKey := selfSigned(t, 99, "example.org")
	challenge, err := tls.X509KeyPair(challengeChain, challengeKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutTLSALPNChallenge("example.org", &challenge); err != nil {
		t.Fatal(err)
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", store.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				io.Copy(conn, conn)
			}()
		}
	}()

	dial := func(protos ...string) *tls.Conn {
		t.Helper()
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
			ServerName:         "example.org",
			NextProtos:         protos,
			InsecureSkipVerify: true, // the test checks the serial number itself
		})
		if err != nil {
			t.Fatalf("dial with ALPN %v: %v", protos, err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	serial := func(conn *tls.Conn) int64 {
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}

	alpn := dial(ACMETLSProtocol)
	if got := serial(alpn); got != 99 {
		t.Errorf("acme-tls/1 serial = %d, want 99", got)
	}
	if got := alpn.ConnectionState().NegotiatedProtocol; got != ACMETLSProtocol {
		t.Errorf("negotiated protocol = %q, want %q", got, ACMETLSProtocol)
	}

	before := dial("http/1.1")
	if got := serial(before); got != 1 {
		t.Errorf("http/1.1 serial = %d, want 1", got)
	}

	writeCert(t, store, "acme", 2, "example.org")
	store.Reload()
	if got := serial(dial("http/1.1")); got != 2 {
		t.Errorf("serial after change = %d, want 2", got)
	}
	if _, err := before.Write([]byte("ping")); err != nil {
		t.Fatalf("writing on the connection opened before the change: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(before, buf); err != nil || string(buf) != "ping" {
		t.Errorf("echo on the old connection: got %q, %v, want %q", buf, err, "ping")
	}

	if err := store.DeleteTLSALPNChallenge("example.org"); err != nil {
		t.Fatal(err)
	}
	_, err = tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "example.org", NextProtos: []string{ACMETLSProtocol}, InsecureSkipVerify: true})
	if err == nil {
		t.Error("acme-tls/1 dial without a pending challenge succeeded, want a failed handshake")
	}
}

func TestGetCertificateByLocalIP(t *testing.T) {
	store := openStore(t)
	writeCert(t, store, "acme", 1, "example.org")
	local := testpeer.SelfSignedWith(t, testpeer.CertOptions{Serial: 7, NotAfter: time.Now().Add(time.Hour)}, "127.0.0.1")
	if err := store.WriteCertificate("local", local.CertPEM, local.KeyPEM); err != nil {
		t.Fatal(err)
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", store.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 7 {
		t.Errorf("serial without SNI on 127.0.0.1 = %d, want 7", got)
	}
}
