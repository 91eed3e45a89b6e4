package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/dnsprovider/dnstest"
	"github.com/heimwolke/heimwolke/packages/testpeer"
	"github.com/heimwolke/heimwolke/packages/tlsstore"
)

// testZone is the zone that BIND serves in the tests. Every name in it
// resolves to 127.0.0.1, where the test's heimwolke side listens.
const testZone = "heimwolke.test"

// blockedName is on Pebble's domain blocklist, so orders for it are
// rejected. It has no more labels than any name the tests order, because
// Pebble 2.10.3 panics on an order for a name with fewer labels than a
// blocklist entry.
const blockedName = "blocked.test"

var (
	pebbleOnce sync.Once
	pebblePath string
	pebbleSrc  string // the pebble module's folder, for its test certificates
	pebbleErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if pebblePath != "" {
		os.RemoveAll(filepath.Dir(pebblePath))
	}
	os.Exit(code)
}

// buildPebble builds Pebble once per test binary from the module in go.mod.
func buildPebble(t *testing.T) string {
	t.Helper()
	pebbleOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pebble-bin")
		if err != nil {
			pebbleErr = err
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "pebble"), "github.com/letsencrypt/pebble/v2/cmd/pebble").CombinedOutput()
		if err != nil {
			pebbleErr = fmt.Errorf("building pebble: %v\n%s", err, out)
			return
		}
		pebblePath = filepath.Join(dir, "pebble")
		src, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/letsencrypt/pebble/v2").Output()
		if err != nil {
			pebbleErr = fmt.Errorf("finding the pebble module: %v", err)
			return
		}
		pebbleSrc = strings.TrimSpace(string(src))
	})
	if pebbleErr != nil {
		t.Fatal(pebbleErr)
	}
	return pebblePath
}

// pebble is a running Pebble ACME server.
type pebble struct {
	DirectoryURL string
	// ListenRoots verifies Pebble's own HTTPS certificate.
	ListenRoots *x509.CertPool
	// IssuerRoots verifies the certificates Pebble issues.
	IssuerRoots *x509.CertPool
	Log         *testpeer.Buffer
	stop        func()
}

type pebbleOptions struct {
	dnsServer         string // BIND's host:port
	httpPort, tlsPort int    // where Pebble's validator connects
	shortValidity     int    // seconds, for a "shortlived" profile; 0 for none
}

func startPebble(t *testing.T, opts pebbleOptions) *pebble {
	t.Helper()
	binary := buildPebble(t)
	dir := t.TempDir()
	listen, management := freePort(t), freePort(t)
	// Pebble picks a random profile for an order that names none, so the
	// short one exists only when a test requests it.
	profiles := map[string]any{"default": map[string]any{"description": "90 days", "validityPeriod": 7776000}}
	if opts.shortValidity != 0 {
		profiles["shortlived"] = map[string]any{"description": "test lifetime", "validityPeriod": opts.shortValidity}
	}

	config := map[string]any{"pebble": map[string]any{
		"listenAddress":           fmt.Sprintf("127.0.0.1:%d", listen),
		"managementListenAddress": fmt.Sprintf("127.0.0.1:%d", management),
		"certificate":             filepath.Join(pebbleSrc, "test/certs/localhost/cert.pem"),
		"privateKey":              filepath.Join(pebbleSrc, "test/certs/localhost/key.pem"),
		"httpPort":                opts.httpPort,
		"tlsPort":                 opts.tlsPort,
		"domainBlocklist":         []string{blockedName},
		"keyAlgorithm":            "ecdsa",
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
		"profiles":                profiles,
	}}
	data, _ := json.Marshal(config)
	configFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(configFile, data, 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(binary, "-config", configFile, "-dnsserver", opts.dnsServer)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	p := &pebble{
		DirectoryURL: fmt.Sprintf("https://127.0.0.1:%d/dir", listen),
		Log:          new(testpeer.Buffer),
	}
	cmd.Stdout, cmd.Stderr = p.Log, p.Log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting pebble: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	var stopOnce sync.Once
	p.stop = func() {
		stopOnce.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		})
	}
	t.Cleanup(p.stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble output:\n%s", p.Log)
		}
	})

	minica, err := os.ReadFile(filepath.Join(pebbleSrc, "test/certs/pebble.minica.pem"))
	if err != nil {
		t.Fatal(err)
	}
	p.ListenRoots = x509.NewCertPool()
	p.ListenRoots.AppendCertsFromPEM(minica)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.ListenRoots}}}

	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", management))
		if err == nil {
			root, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				p.IssuerRoots = x509.NewCertPool()
				if !p.IssuerRoots.AppendCertsFromPEM(root) {
					t.Fatalf("pebble /roots/0 returned no PEM certificate: %q", root)
				}
				return p
			}
		}
		select {
		case <-exited:
			t.Fatalf("pebble exited:\n%s", p.Log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not start within 20s:\n%s", p.Log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freePort returns a TCP port that is free on 127.0.0.1 at the time of the
// call.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// front is the heimwolke side of a test: HTTP with the challenge handler as
// on port 80, and HTTPS with the store's TLSConfig as on port 443.
type front struct {
	store             *tlsstore.Store
	httpPort, tlsPort int
}

func startFront(t *testing.T, store *tlsstore.Store) *front {
	t.Helper()
	f := &front{store: store}

	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpServer := &http.Server{Handler: store.HTTPChallengeHandler(http.NotFoundHandler())}
	go httpServer.Serve(httpLn)
	t.Cleanup(func() { httpServer.Close() })
	f.httpPort = httpLn.Addr().(*net.TCPAddr).Port

	tlsLn, err := tls.Listen("tcp", "127.0.0.1:0", store.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	tlsServer := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello from heimwolke")
		}),
		ErrorLog: nil,
	}
	go tlsServer.Serve(tlsLn)
	t.Cleanup(func() { tlsServer.Close() })
	f.tlsPort = tlsLn.Addr().(*net.TCPAddr).Port
	return f
}

// dial opens a verified TLS connection to the front's HTTPS port.
func (f *front) dial(t *testing.T, serverName string, roots *x509.CertPool) *tls.Conn {
	t.Helper()
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", f.tlsPort), &tls.Config{ServerName: serverName, RootCAs: roots})
	if err != nil {
		t.Fatalf("tls.Dial %s: %v", serverName, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// get sends one HTTP/1.1 request on conn and returns the response body.
func get(conn *tls.Conn, host string) (string, error) {
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host)
	var buf bytes.Buffer
	chunk := make([]byte, 4096)
	for !strings.Contains(buf.String(), "hello from heimwolke") {
		n, err := conn.Read(chunk)
		buf.Write(chunk[:n])
		if err != nil {
			return buf.String(), err
		}
	}
	return buf.String(), nil
}

func startBIND(t *testing.T) *dnstest.Server {
	t.Helper()
	testpeer.Require(t, "named", "bind9")
	testpeer.Require(t, "tsig-keygen", "bind9-utils")
	return dnstest.StartBIND(t, testZone, "@ IN A 127.0.0.1\n* IN A 127.0.0.1\n")
}

func openStore(t *testing.T) *tlsstore.Store {
	t.Helper()
	store, err := tlsstore.Open(filepath.Join(t.TempDir(), "tls"))
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// runManager starts m.Run and stops it when the test ends.
func runManager(t *testing.T, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		m.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// waitState polls State until ok returns true for it, or fails the test
// after timeout.
func waitState(t *testing.T, m *Manager, timeout time.Duration, what string, ok func([]NameState) bool) []NameState {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		states := m.State()
		if ok(states) {
			return states
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; state: %+v", timeout, what, states)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func allIssued(states []NameState) bool {
	for _, s := range states {
		if s.NotAfter.IsZero() {
			return false
		}
	}
	return len(states) > 0
}

func failed(states []NameState) bool {
	return len(states) > 0 && states[0].LastError != ""
}
