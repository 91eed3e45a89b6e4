package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/agent/certs/localca"
	"github.com/heimwolke/heimwolke/packages/dnsprovider/rfc2136"
	"github.com/heimwolke/heimwolke/packages/testpeer"
	"github.com/heimwolke/heimwolke/packages/tlsstore"
)

func serialOf(conn *tls.Conn) string {
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
}

// TestHTTP01Issuance obtains a certificate from Pebble, whose validator
// fetches the key authorizations from a tlsstore-backed HTTP server, and
// verifies what the tlsstore-backed HTTPS server then serves.
func TestHTTP01Issuance(t *testing.T) {
	bind := startBIND(t)
	store := openStore(t)
	f := startFront(t, store)
	p := startPebble(t, pebbleOptions{dnsServer: bind.Addr, httpPort: f.httpPort, tlsPort: f.tlsPort})

	var mu sync.Mutex
	var events []Event
	m, err := New(Config{
		Store:        store,
		Names:        []string{"heimwolke.test", "mail.heimwolke.test"},
		DirectoryURL: p.DirectoryURL,
		Email:        "owner@heimwolke.test",
		TrustedRoots: p.ListenRoots,
		OnCertificate: func(e Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runManager(t, m)
	states := waitState(t, m, 60*time.Second, "issuance", allIssued)

	for _, s := range states {
		if s.Challenge != ChallengeHTTP01 {
			t.Errorf("%s: challenge = %q, want %q", s.Name, s.Challenge, ChallengeHTTP01)
		}
		if s.Issuer == "" || s.LastError != "" {
			t.Errorf("%s: issuer %q, last error %q, want an issuer and no error", s.Name, s.Issuer, s.LastError)
		}
		if s.ExpiryWarning {
			t.Errorf("%s: expiry warning set for a 90-day certificate", s.Name)
		}
		if !s.NextAttempt.After(time.Now().Add(24 * time.Hour)) {
			t.Errorf("%s: next attempt %v, want days ahead for a 90-day certificate", s.Name, s.NextAttempt)
		}
	}

	conn := f.dial(t, "mail.heimwolke.test", p.IssuerRoots)
	if body, err := get(conn, "mail.heimwolke.test"); err != nil {
		t.Errorf("GET over the issued certificate: %v (%q)", err, body)
	}

	mu.Lock()
	if len(events) != 1 || events[0].Certificate != ACMECertificate || events[0].CertFile != store.CertFile(ACMECertificate) {
		t.Errorf("OnCertificate events = %+v, want one for %s", events, ACMECertificate)
	}
	mu.Unlock()

	for _, path := range append([]string{store.KeyFile(ACMECertificate)}, globAccountKeys(t, store)...) {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != 0o600 {
			t.Errorf("mode of %s = %v, want 0600", path, got)
		}
	}
}

func globAccountKeys(t *testing.T, store *tlsstore.Store) []string {
	t.Helper()
	keys, _ := filepath.Glob(filepath.Join(store.Dir(), "acme", "account-*.pem"))
	if len(keys) != 1 {
		t.Errorf("account keys = %v, want one", keys)
	}
	return keys
}

// TestTLSALPN01Fallback points Pebble's HTTP-01 validator at a closed port,
// so HTTP-01 fails and the manager falls back to TLS-ALPN-01, which the
// tlsstore-backed TLS server serves.
func TestTLSALPN01Fallback(t *testing.T) {
	bind := startBIND(t)
	store := openStore(t)
	f := startFront(t, store)
	p := startPebble(t, pebbleOptions{dnsServer: bind.Addr, httpPort: freePort(t), tlsPort: f.tlsPort})

	m, err := New(Config{
		Store:        store,
		Names:        []string{"heimwolke.test", "upload.heimwolke.test"},
		DirectoryURL: p.DirectoryURL,
		TrustedRoots: p.ListenRoots,
	})
	if err != nil {
		t.Fatal(err)
	}
	runManager(t, m)
	states := waitState(t, m, 60*time.Second, "issuance", allIssued)

	for _, s := range states {
		if s.Challenge != ChallengeTLSALPN01 {
			t.Errorf("%s: challenge = %q, want %q", s.Name, s.Challenge, ChallengeTLSALPN01)
		}
	}
	f.dial(t, "upload.heimwolke.test", p.IssuerRoots)

	leftovers, _ := filepath.Glob(filepath.Join(store.Dir(), "challenges", "*", "*"))
	if len(leftovers) != 0 {
		t.Errorf("challenge files left after issuance: %v", leftovers)
	}
}

// TestDNS01Wildcard obtains a wildcard certificate with DNS-01 through the
// RFC 2136 provider and a real BIND 9, which Pebble uses as its resolver.
func TestDNS01Wildcard(t *testing.T) {
	bind := startBIND(t)
	store := openStore(t)
	f := startFront(t, store)
	p := startPebble(t, pebbleOptions{dnsServer: bind.Addr, httpPort: freePort(t), tlsPort: freePort(t)})

	m, err := New(Config{
		Store:        store,
		Names:        []string{"heimwolke.test", "*.heimwolke.test"},
		DirectoryURL: p.DirectoryURL,
		TrustedRoots: p.ListenRoots,
		DNSProvider: &rfc2136.Provider{
			Server: bind.Addr, KeyName: bind.KeyName, KeyAlgorithm: bind.Algorithm, Secret: bind.Secret,
		},
		DNSResolvers: []string{bind.Addr},
	})
	if err != nil {
		t.Fatal(err)
	}
	runManager(t, m)
	states := waitState(t, m, 90*time.Second, "issuance", allIssued)

	for _, s := range states {
		if s.Challenge != ChallengeDNS01 {
			t.Errorf("%s: challenge = %q, want %q", s.Name, s.Challenge, ChallengeDNS01)
		}
	}
	f.dial(t, "conference.heimwolke.test", p.IssuerRoots)
	f.dial(t, "heimwolke.test", p.IssuerRoots)
}

// TestRenewalKeepsConnections issues 20-second certificates: a new
// handshake sees the renewed serial number while a connection opened before
// the renewal keeps working.
func TestRenewalKeepsConnections(t *testing.T) {
	bind := startBIND(t)
	store := openStore(t)
	f := startFront(t, store)
	p := startPebble(t, pebbleOptions{dnsServer: bind.Addr, httpPort: f.httpPort, tlsPort: f.tlsPort, shortValidity: 20})

	var mu sync.Mutex
	events := 0
	m, err := New(Config{
		Store:         store,
		Names:         []string{"heimwolke.test"},
		DirectoryURL:  p.DirectoryURL,
		TrustedRoots:  p.ListenRoots,
		Profile:       "shortlived",
		OnCertificate: func(Event) { mu.Lock(); events++; mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	runManager(t, m)
	states := waitState(t, m, 60*time.Second, "issuance", allIssued)
	if !states[0].ExpiryWarning {
		t.Error("expiry warning not set for a 20-second certificate")
	}
	if !states[0].NextAttempt.Before(states[0].NotAfter) {
		t.Errorf("next attempt %v is not before expiry %v", states[0].NextAttempt, states[0].NotAfter)
	}

	// The store reloads at most once a second, so a handshake right after
	// issuance may still get no certificate.
	time.Sleep(1100 * time.Millisecond)
	before := f.dial(t, "heimwolke.test", p.IssuerRoots)
	oldSerial := serialOf(before)
	if _, err := get(before, "heimwolke.test"); err != nil {
		t.Fatalf("GET before renewal: %v", err)
	}

	deadline := time.Now().Add(40 * time.Second)
	for {
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", f.tlsPort), &tls.Config{ServerName: "heimwolke.test", RootCAs: p.IssuerRoots})
		if err == nil {
			serial := serialOf(conn)
			conn.Close()
			if serial != oldSerial {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serial still %s after 40s (last dial error %v); state %+v", oldSerial, err, m.State())
		}
		time.Sleep(500 * time.Millisecond)
	}

	if body, err := get(before, "heimwolke.test"); err != nil {
		t.Errorf("GET on the connection opened before the renewal: %v (%q)", err, body)
	}
	mu.Lock()
	if events < 2 {
		t.Errorf("OnCertificate called %d times, want at least 2", events)
	}
	mu.Unlock()
}

// writeOldCertificate stores a self-signed certificate for names that is
// past two thirds of its lifetime, as if an earlier run had obtained it.
func writeOldCertificate(t *testing.T, store *tlsstore.Store, names ...string) *big.Int {
	t.Helper()
	cert := testpeer.SelfSignedWith(t, testpeer.CertOptions{
		Serial:    4242,
		NotBefore: time.Now().Add(-2 * time.Hour),
		NotAfter:  time.Now().Add(time.Hour),
	}, names...)
	if err := store.WriteCertificate(ACMECertificate, cert.CertPEM, cert.KeyPEM); err != nil {
		t.Fatal(err)
	}
	return cert.Leaf.SerialNumber
}

// checkBackoff waits for two failed attempts and checks that the reason is
// named, the retries back off and the old certificate is still served.
func checkBackoff(t *testing.T, m *Manager, store *tlsstore.Store, oldSerial *big.Int, reason string) {
	t.Helper()
	first := waitState(t, m, 60*time.Second, "a failure", failed)[0]
	if !strings.Contains(first.LastError, reason) {
		t.Errorf("last error = %q, want it to contain %q", first.LastError, reason)
	}
	if !first.NextAttempt.After(time.Now()) {
		t.Errorf("next attempt %v is not in the future", first.NextAttempt)
	}

	second := waitState(t, m, 30*time.Second, "a second failure", func(states []NameState) bool {
		return states[0].NextAttempt.After(first.NextAttempt) && states[0].LastError != ""
	})[0]
	if gap := second.NextAttempt.Sub(first.NextAttempt); gap < time.Second {
		t.Errorf("second retry only %v after the first, want the wait to grow", gap)
	}

	cert, err := store.GetCertificate(&tls.ClientHelloInfo{ServerName: "heimwolke.test"})
	if err != nil {
		t.Fatalf("GetCertificate after failures: %v", err)
	}
	if cert.Leaf.SerialNumber.Cmp(oldSerial) != 0 {
		t.Errorf("served serial = %v, want the old certificate's %v", cert.Leaf.SerialNumber, oldSerial)
	}
}

func failureConfig(store *tlsstore.Store, p *pebble, names ...string) Config {
	return Config{
		Store:        store,
		Names:        names,
		DirectoryURL: p.DirectoryURL,
		TrustedRoots: p.ListenRoots,
		RetryMin:     time.Second,
		RetryMax:     8 * time.Second,
	}
}

func TestFailurePebbleStopped(t *testing.T) {
	bind := startBIND(t)
	store := openStore(t)
	f := startFront(t, store)
	p := startPebble(t, pebbleOptions{dnsServer: bind.Addr, httpPort: f.httpPort, tlsPort: f.tlsPort})
	p.stop()
	oldSerial := writeOldCertificate(t, store, "heimwolke.test")

	m, err := New(failureConfig(store, p, "heimwolke.test"))
	if err != nil {
		t.Fatal(err)
	}
	runManager(t, m)
	checkBackoff(t, m, store, oldSerial, "connection refused")
}

func TestFailureWrongDirectory(t *testing.T) {
	bind := startBIND(t)
	store := openStore(t)
	f := startFront(t, store)
	p := startPebble(t, pebbleOptions{dnsServer: bind.Addr, httpPort: f.httpPort, tlsPort: f.tlsPort})
	oldSerial := writeOldCertificate(t, store, "heimwolke.test")

	cfg := failureConfig(store, p, "heimwolke.test")
	cfg.DirectoryURL = strings.TrimSuffix(p.DirectoryURL, "/dir") + "/no-such-directory"
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runManager(t, m)
	checkBackoff(t, m, store, oldSerial, "404")
}

func TestFailureRejectedName(t *testing.T) {
	bind := startBIND(t)
	store := openStore(t)
	f := startFront(t, store)
	p := startPebble(t, pebbleOptions{dnsServer: bind.Addr, httpPort: f.httpPort, tlsPort: f.tlsPort})
	oldSerial := writeOldCertificate(t, store, "heimwolke.test", blockedName)

	m, err := New(failureConfig(store, p, "heimwolke.test", blockedName))
	if err != nil {
		t.Fatal(err)
	}
	runManager(t, m)
	checkBackoff(t, m, store, oldSerial, "rejectedIdentifier")
}

func TestFailureWrongTSIGKey(t *testing.T) {
	bind := startBIND(t)
	store := openStore(t)
	p := startPebble(t, pebbleOptions{dnsServer: bind.Addr, httpPort: freePort(t), tlsPort: freePort(t)})
	oldSerial := writeOldCertificate(t, store, "heimwolke.test")

	cfg := failureConfig(store, p, "heimwolke.test")
	cfg.DNSProvider = &rfc2136.Provider{
		Server: bind.Addr, KeyName: bind.KeyName, KeyAlgorithm: bind.Algorithm,
		Secret: "d3JvbmcgdGVzdCBzZWNyZXQgZm9yIGhlaW13b2xrZSE=",
	}
	cfg.DNSResolvers = []string{bind.Addr}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runManager(t, m)
	checkBackoff(t, m, store, oldSerial, "BADSIG")
}

func TestConfigValidation(t *testing.T) {
	store := openStore(t)
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no store", Config{Names: []string{"example.org"}}},
		{"nothing to do", Config{Store: store}},
		{"wildcard without DNS", Config{Store: store, Names: []string{"*.example.org"}}},
		{"bad wildcard", Config{Store: store, Names: []string{"mail.*.example.org"}}},
		{"unknown challenge", Config{Store: store, Names: []string{"example.org"}, Challenges: []string{"dns-02"}}},
		{"backoff bounds", Config{Store: store, Names: []string{"example.org"}, RetryMin: time.Hour, RetryMax: time.Minute}},
	}
	for _, c := range cases {
		if _, err := New(c.cfg); err == nil {
			t.Errorf("New with %s succeeded, want an error", c.name)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		value  string
		want   time.Time
		wantOK bool
	}{
		{"120", now.Add(2 * time.Minute), true},
		{"Fri, 02 Jan 2026 04:00:00 GMT", time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC), true},
		{"", time.Time{}, false},
		{"-5", time.Time{}, false},
		{"1.5", time.Time{}, false},
		{"soon", time.Time{}, false},
	}
	for _, c := range cases {
		got, ok := parseRetryAfter(c.value, now)
		if ok != c.wantOK || !got.Equal(c.want) {
			t.Errorf("parseRetryAfter(%q) = %v, %v, want %v, %v", c.value, got, ok, c.want, c.wantOK)
		}
	}
}

// TestLocalCAMode runs the manager in LAN-only mode: it issues a leaf from
// the local CA that Go and curl accept for heimwolke.local, and renews it
// after two thirds of its lifetime.
func TestLocalCAMode(t *testing.T) {
	curl := testpeer.Require(t, "curl", "curl")
	store := openStore(t)
	f := startFront(t, store)
	dir, err := store.PrivateDir("localca")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := localca.Open(dir, "box", []string{"heimwolke.local"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{
		Store:         store,
		LocalCA:       ca,
		LocalNames:    []string{"heimwolke.local"},
		LocalIPs:      []net.IP{net.ParseIP("127.0.0.1")},
		LocalLifetime: 6 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	runManager(t, m)
	states := waitState(t, m, 10*time.Second, "issuance", allIssued)
	if len(states) != 2 || states[0].Certificate != LocalCertificate || states[1].Name != "127.0.0.1" {
		t.Fatalf("states = %+v, want heimwolke.local and 127.0.0.1 of the local certificate", states)
	}
	if got, want := states[0].Issuer, "Heimwolke box local CA"; got != want {
		t.Errorf("issuer = %q, want %q", got, want)
	}
	firstNotAfter := states[0].NotAfter

	rootFile := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(rootFile, ca.RootPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the store reloads once a second
	port := fmt.Sprint(f.tlsPort)
	out, err := exec.Command(curl, "--silent", "--show-error", "--max-time", "10", "--cacert", rootFile,
		"--resolve", "heimwolke.local:"+port+":127.0.0.1", "https://heimwolke.local:"+port+"/").CombinedOutput()
	if err != nil || string(out) != "hello from heimwolke" {
		t.Errorf("curl https://heimwolke.local: got %q, %v, want %q", out, err, "hello from heimwolke")
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root())
	f.dial(t, "heimwolke.local", pool)

	waitState(t, m, 15*time.Second, "renewal", func(states []NameState) bool {
		return states[0].NotAfter.After(firstNotAfter)
	})
}

// TestBackoffSurvivesRestart guards against a crash-looping agent that
// starts a new order at every start: a second manager on the same store
// continues the first one's backoff.
func TestBackoffSurvivesRestart(t *testing.T) {
	store := openStore(t)
	cfg := Config{
		Store:        store,
		Names:        []string{"heimwolke.test"},
		DirectoryURL: fmt.Sprintf("https://127.0.0.1:%d/dir", freePort(t)), // nothing listens
		RetryMin:     time.Hour,
		RetryMax:     2 * time.Hour,
	}
	first, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { first.Run(ctx); close(done) }()
	failedState := waitState(t, first, 30*time.Second, "a failure", failed)[0]
	cancel()
	<-done

	second, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runManager(t, second)
	time.Sleep(500 * time.Millisecond)
	state := second.State()[0]
	if !state.NextAttempt.Equal(failedState.NextAttempt) {
		t.Errorf("next attempt after restart = %v, want the saved %v", state.NextAttempt, failedState.NextAttempt)
	}
	if state.LastError != failedState.LastError {
		t.Errorf("last error after restart = %q, want the saved %q", state.LastError, failedState.LastError)
	}
	// A changed configuration starts at once instead of waiting.
	cfg.Email = "owner@heimwolke.test"
	third, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	third.loadBackoff()
	if got := third.State()[0].NextAttempt; !got.IsZero() {
		t.Errorf("next attempt with a changed configuration = %v, want zero (at once)", got)
	}
}
