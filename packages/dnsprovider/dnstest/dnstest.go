// Package dnstest starts real authoritative name servers (BIND 9 and Knot
// DNS) for one zone on 127.0.0.1, with a TSIG key that may update the zone,
// for the tests of the DNS providers and of dnscheck. It is not for
// production use.
package dnstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// Server is a name server that serves one zone for the duration of a test.
type Server struct {
	// Addr is the host:port of the server, for UDP and TCP.
	Addr string
	// Zone is the zone's name, absolute and lowercase.
	Zone string
	// KeyName, Algorithm and Secret are the TSIG key (RFC 8945) that may
	// update the zone and transfer it. Algorithm is "hmac-sha256" and the
	// Secret is standard base64.
	KeyName, Algorithm, Secret string
	// Log contains the server's output.
	Log *testpeer.Buffer
}

// KeyName is the name of the TSIG key in every server that this package
// starts.
const KeyName = "heimwolke-test-key"

// zoneHeader is the start of every zone that this package serves. The
// records that a test passes are appended after it.
const zoneHeader = `$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 86400 300
@ IN NS ns1
ns1 IN A 127.0.0.1
`

// StartBIND starts BIND 9's named in the foreground for zone, with
// update-policy granting the test key every name in the zone, and stops it
// when the test ends. records are zone file lines added to the zone.
func StartBIND(t testing.TB, zone, records string) *Server {
	t.Helper()
	named := testpeer.Require(t, "named", "bind9")
	s := newServer(t, zone)
	dir := t.TempDir()

	conf := fmt.Sprintf(`key %q { algorithm %s; secret %q; };
options {
	directory %q;
	pid-file %q;
	session-keyfile %q;
	listen-on port %s { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
};
controls { };
zone %q {
	type primary;
	file "zone.db";
	update-policy { grant %s zonesub ANY; };
	allow-transfer { key %s; };
};
`, s.KeyName, s.Algorithm, s.Secret, dir, filepath.Join(dir, "named.pid"),
		filepath.Join(dir, "session.key"), port(s.Addr), s.Zone, s.KeyName, s.KeyName)
	writeFile(t, filepath.Join(dir, "named.conf"), conf)
	writeFile(t, filepath.Join(dir, "zone.db"), zoneHeader+records)

	s.start(t, named, "-g", "-c", filepath.Join(dir, "named.conf"))
	return s
}

// StartKnot starts knotd for zone with an ACL that allows the test key to
// update and transfer the zone, and stops it when the test ends. records
// are zone file lines added to the zone.
func StartKnot(t testing.TB, zone, records string) *Server {
	t.Helper()
	knotd := testpeer.Require(t, "knotd", "knot")
	s := newServer(t, zone)
	dir := t.TempDir()

	conf := fmt.Sprintf(`server:
  rundir: %q
  listen: 127.0.0.1@%s
database:
  storage: %q
log:
  - target: stderr
    any: info
key:
  - id: %s
    algorithm: %s
    secret: %s
acl:
  - id: test-key
    key: %s
    action: [update, transfer]
template:
  - id: default
    storage: %q
    zonefile-sync: 0
zone:
  - domain: %s
    file: zone.db
    acl: test-key
`, dir, port(s.Addr), filepath.Join(dir, "db"), s.KeyName, s.Algorithm, s.Secret,
		s.KeyName, dir, s.Zone)
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "knot.conf"), conf)
	writeFile(t, filepath.Join(dir, "zone.db"), "$ORIGIN "+s.Zone+"\n"+zoneHeader+records)

	s.start(t, knotd, "-c", filepath.Join(dir, "knot.conf"))
	return s
}

func newServer(t testing.TB, zone string) *Server {
	t.Helper()
	return &Server{
		Addr:      fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t)),
		Zone:      strings.ToLower(dns.Fqdn(zone)),
		KeyName:   KeyName,
		Algorithm: "hmac-sha256",
		Secret:    generateSecret(t),
		Log:       new(testpeer.Buffer),
	}
}

// start runs the server program and waits until it responds to the zone's SOA
// query. The server is stopped with SIGTERM when the test ends.
func (s *Server) start(t testing.TB, program string, args ...string) {
	t.Helper()
	cmd := exec.Command(program, args...)
	cmd.Stdout = s.Log
	cmd.Stderr = s.Log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", program, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})

	deadline := time.Now().Add(15 * time.Second)
	for {
		if s.answersSOA() {
			return
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before it served %s:\n%s", program, s.Zone, s.Log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not serve %s on %s within 15s:\n%s", program, s.Zone, s.Addr, s.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) answersSOA() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(s.Zone, dns.TypeSOA)
	c := &dns.Client{Net: "tcp"}
	r, _, err := c.ExchangeContext(ctx, m, s.Addr)
	return err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0
}

// Query sends a query for name and type to the server over TCP, without TSIG, and returns
// the answer section.
func (s *Server) Query(t testing.TB, name string, qtype uint16) []dns.RR {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: "tcp"}
	r, _, err := c.ExchangeContext(ctx, m, s.Addr)
	if err != nil {
		t.Fatalf("querying %s %s at %s: %v", name, dns.TypeToString[qtype], s.Addr, err)
	}
	return r.Answer
}

var secretPattern = regexp.MustCompile(`secret "([A-Za-z0-9+/=]+)"`)

// generateSecret returns a new HMAC-SHA256 secret from BIND's tsig-keygen.
func generateSecret(t testing.TB) string {
	t.Helper()
	keygen := testpeer.Require(t, "tsig-keygen", "bind9")
	out, err := exec.Command(keygen, "-a", "hmac-sha256", KeyName).Output()
	if err != nil {
		t.Fatalf("running tsig-keygen: %v", err)
	}
	m := secretPattern.FindSubmatch(out)
	if m == nil {
		t.Fatalf("tsig-keygen printed no secret: %s", out)
	}
	return string(m[1])
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
