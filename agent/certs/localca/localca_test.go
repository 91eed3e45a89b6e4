package localca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
	"github.com/heimwolke/heimwolke/packages/tlsstore"
)

func openCA(t *testing.T, dir string) *CA {
	t.Helper()
	ca, err := Open(dir, "box", []string{"heimwolke.local", "box.fritz.box"})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestOpenCreatesAndReloads(t *testing.T) {
	dir := t.TempDir()
	ca := openCA(t, dir)

	root := ca.Root()
	if got, want := root.Subject.CommonName, "Heimwolke box local CA"; got != want {
		t.Errorf("root name = %q, want %q", got, want)
	}
	if pub, ok := root.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("root key = %T, want an ECDSA P-256 key", root.PublicKey)
	}
	if got := root.NotAfter.Sub(root.NotBefore); got < RootLifetime {
		t.Errorf("root validity = %v, want at least %v", got, RootLifetime)
	}
	if !root.IsCA || !root.MaxPathLenZero {
		t.Errorf("root IsCA = %v, MaxPathLenZero = %v, want both true", root.IsCA, root.MaxPathLenZero)
	}
	if block, _ := pem.Decode(ca.RootPEM()); block == nil || string(block.Bytes) != string(ca.RootDER()) {
		t.Error("RootPEM does not contain RootDER")
	}
	info, err := os.Stat(filepath.Join(dir, rootKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o600 {
		t.Errorf("root key mode = %v, want 0600", got)
	}

	again := openCA(t, dir)
	if again.Root().SerialNumber.Cmp(root.SerialNumber) != 0 {
		t.Error("second Open made a new root, want the stored one")
	}
}

func TestIssueRejectsOutsideConstraints(t *testing.T) {
	ca := openCA(t, t.TempDir())
	if _, _, err := ca.Issue([]string{"example.org"}, nil, time.Hour); err == nil {
		t.Error("Issue for example.org succeeded, want an error")
	}
	if _, _, err := ca.Issue([]string{"heimwolke.local"}, []net.IP{net.ParseIP("8.8.8.8")}, time.Hour); err == nil {
		t.Error("Issue for 8.8.8.8 succeeded, want an error")
	}
}

// serveLeaf serves chainPEM and keyPEM over HTTPS on 127.0.0.1 through a TLS
// store and returns the port.
func serveLeaf(t *testing.T, chainPEM, keyPEM []byte) string {
	t.Helper()
	store, err := tlsstore.Open(filepath.Join(t.TempDir(), "tls"))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.WriteCertificate("local", chainPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", store.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	server := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from the box")
	})}
	go server.Serve(ln)
	t.Cleanup(func() { server.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func writeRoot(t *testing.T, ca *CA) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(path, ca.RootPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func curl(t *testing.T, rootFile, host, port string) (string, error) {
	t.Helper()
	curlPath := testpeer.Require(t, "curl", "curl")
	args := []string{"--silent", "--show-error", "--max-time", "10", "--cacert", rootFile}
	if net.ParseIP(host) == nil {
		args = append(args, "--resolve", host+":"+port+":127.0.0.1")
	}
	args = append(args, "https://"+net.JoinHostPort(host, port)+"/")
	out, err := exec.Command(curlPath, args...).CombinedOutput()
	return string(out), err
}

// TestLeafAcceptedByCurlAndGo checks that curl (OpenSSL) and Go accept a
// leaf for heimwolke.local and for 127.0.0.1 with only the root as trust
// anchor, so the name constraints are in a form both understand.
func TestLeafAcceptedByCurlAndGo(t *testing.T) {
	ca := openCA(t, t.TempDir())
	chainPEM, keyPEM, err := ca.Issue([]string{"heimwolke.local", "box.fritz.box"}, []net.IP{net.ParseIP("127.0.0.1")}, 14*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	port := serveLeaf(t, chainPEM, keyPEM)
	rootFile := writeRoot(t, ca)

	for _, host := range []string{"heimwolke.local", "box.fritz.box", "127.0.0.1"} {
		out, err := curl(t, rootFile, host, port)
		if err != nil || out != "hello from the box" {
			t.Errorf("curl https://%s: got %q, %v, want %q", host, out, err, "hello from the box")
		}
	}

	pool := x509.NewCertPool()
	pool.AddCert(ca.Root())
	conn, err := tls.Dial("tcp", "127.0.0.1:"+port, &tls.Config{ServerName: "heimwolke.local", RootCAs: pool})
	if err != nil {
		t.Fatalf("tls.Dial heimwolke.local: %v", err)
	}
	conn.Close()
}

// TestConstraintsEnforcedByCurlAndGo signs a leaf for a public name with the
// root key, bypassing Issue's check, and expects curl and Go to reject it:
// a stolen root key must not be usable for other sites.
func TestConstraintsEnforcedByCurlAndGo(t *testing.T) {
	ca := openCA(t, t.TempDir())
	chainPEM, keyPEM := signOutside(t, ca, "bank.example")
	port := serveLeaf(t, chainPEM, keyPEM)

	out, err := curl(t, writeRoot(t, ca), "bank.example", port)
	if err == nil {
		t.Errorf("curl https://bank.example succeeded with %q, want a verification failure", out)
	} else if !strings.Contains(out, "permitted subtree violation") {
		t.Errorf("curl https://bank.example failed with %q, want OpenSSL's name constraint error \"permitted subtree violation\"", out)
	}

	pool := x509.NewCertPool()
	pool.AddCert(ca.Root())
	conn, err := tls.Dial("tcp", "127.0.0.1:"+port, &tls.Config{ServerName: "bank.example", RootCAs: pool})
	if err == nil {
		conn.Close()
		t.Error("tls.Dial bank.example succeeded, want a name constraint error")
	}
}

// chromiumFetch loads url in headless Chromium, which trusts only rootFile
// beyond its built-in roots (through an NSS database in a new home folder),
// and returns the page's DOM.
func chromiumFetch(t *testing.T, rootFile, url string) string {
	t.Helper()
	chromium := testpeer.Require(t, "chromium", "chromium")
	certutil := testpeer.Require(t, "certutil", "libnss3-tools")
	home := t.TempDir()
	nssdb := "sql:" + filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(filepath.Join(home, ".pki", "nssdb"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-d", nssdb, "-N", "--empty-password"},
		{"-d", nssdb, "-A", "-t", "C,,", "-n", "heimwolke-test-root", "-i", rootFile},
	} {
		if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v\n%s", args, err, out)
		}
	}

	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+filepath.Join(home, "profile"),
		"--host-resolver-rules=MAP * 127.0.0.1",
		"--dump-dom", url)
	cmd.Env = append(os.Environ(), "HOME="+home)
	var stdout strings.Builder
	cmd.Stdout = &stdout
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("chromium did not finish loading %s within 60s", url)
	}
	return stdout.String()
}

// TestChromiumAcceptsLeafRejectsOutside checks Chromium's verifier: it
// accepts a leaf for heimwolke.local and rejects a leaf for a public name
// signed with the same root, which the name constraints forbid.
func TestChromiumAcceptsLeafRejectsOutside(t *testing.T) {
	ca := openCA(t, t.TempDir())
	rootFile := writeRoot(t, ca)

	chainPEM, keyPEM, err := ca.Issue([]string{"heimwolke.local"}, nil, 14*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	port := serveLeaf(t, chainPEM, keyPEM)
	if dom := chromiumFetch(t, rootFile, "https://heimwolke.local:"+port+"/"); !strings.Contains(dom, "hello from the box") {
		t.Errorf("chromium https://heimwolke.local: DOM %q, want the page", dom)
	}

	outsideChain, outsideKey := signOutside(t, ca, "bank.example")
	port = serveLeaf(t, outsideChain, outsideKey)
	if dom := chromiumFetch(t, rootFile, "https://bank.example:"+port+"/"); strings.Contains(dom, "hello from the box") {
		t.Error("chromium showed the page for bank.example, want a certificate error")
	}

	// Control: a root whose constraints permit bank.example gets the page,
	// so the rejection above comes from the constraints.
	permissive, err := Open(t.TempDir(), "box", []string{"bank.example"})
	if err != nil {
		t.Fatal(err)
	}
	chainPEM, keyPEM, err = permissive.Issue([]string{"bank.example"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	port = serveLeaf(t, chainPEM, keyPEM)
	if dom := chromiumFetch(t, writeRoot(t, permissive), "https://bank.example:"+port+"/"); !strings.Contains(dom, "hello from the box") {
		t.Errorf("chromium https://bank.example under a root that permits it: DOM %q, want the page", dom)
	}
}

// signOutside signs a leaf for name with the root key, bypassing Issue's
// check of the name constraints.
func signOutside(t *testing.T, ca *CA, name string) (chainPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{name},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	chainPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return append(chainPEM, ca.RootPEM()...), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}
