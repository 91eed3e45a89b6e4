package ddns

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/agent/netaddr"
	"github.com/heimwolke/heimwolke/agent/portmap"
	"github.com/heimwolke/heimwolke/packages/dnsprovider/rfc2136"
	"github.com/heimwolke/heimwolke/packages/netlab"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// boxAgentEnv carries the box agent's settings, as JSON, from
// startBoxAgent to the copy of the test binary that runs inside the box
// namespace.
const boxAgentEnv = "HEIMWOLKE_DDNS_BOX_AGENT"

// boxAgentSettings configures the loop in the box namespace.
type boxAgentSettings struct {
	Server  string // BIND's host:port in the internet namespace
	Zone    string
	KeyName string
	Secret  string
	Gateway string // the router's LAN address, for NAT-PMP
	KeyFile string // the key in BIND's syntax, for nsupdate

	// Whoami is the host:port of a DNS server in the internet namespace
	// that returns the query's source address for myip.opendns.com, or
	// empty for none.
	Whoami string
}

const testZone = "heimwolke.test."

// TestHomeNetworkFollowsAddresses runs the dynamic DNS loop inside the box
// namespace of a home network. Its IPv4 sources are the router's miniupnpd,
// asked through portmap, and a DNS server in the internet namespace that
// returns the query's source address. BIND in the internet namespace serves
// the zone. dig checks that the A record follows a new WAN address and the
// AAAA record a new IPv6 prefix.
func TestHomeNetworkFollowsAddresses(t *testing.T) {
	dig := testpeer.Require(t, "dig", "bind9-dnsutils")
	h := netlab.NewHome(t)
	t.Log(h)

	settings := startZoneServer(t, h)
	settings.Gateway = h.LANv4.Addr().String()
	settings.Whoami = startWhoami(t, h)
	agentLog, stopBoxAgent := startBoxAgent(t, h, settings)
	query := func(typ string) string {
		out, _ := h.Command(h.Internet, dig, "+short", "+norecurse", "+time=1", "+tries=1", "@"+h.InternetV4.String(), "mail."+testZone, typ).Output()
		return strings.TrimSpace(string(out))
	}

	waitForRecord(t, query, "A", h.WANv4().String(), time.Minute, agentLog)
	waitForRecord(t, query, "AAAA", h.BoxV6.String(), 10*time.Second, agentLog)

	newWAN := netip.MustParseAddr("192.0.3.77")
	h.ChangeWANv4(newWAN)
	took := waitForRecord(t, query, "A", newWAN.String(), time.Minute, agentLog)
	t.Logf("A record followed the new WAN address after %v", took)
	waitForLog(t, agentLog, `msg="public ipv4 changed" addr=192.0.3.77 class=public answers="router=192.0.3.77, dns:myip.opendns.com.@`)

	newBox := h.AddBoxIPv6(netip.MustParsePrefix("2001:db8:0:2::/64"))
	took = waitForRecord(t, query, "AAAA", newBox.String(), 10*time.Second, agentLog)
	t.Logf("AAAA record followed the new prefix after %v", took)

	if strings.Contains(agentLog.String(), settings.Secret) {
		t.Errorf("the agent's log contains the TSIG secret")
	}

	// A restarted agent reads the records by zone transfer and finds
	// nothing to publish.
	stopBoxAgent()
	agentLog, _ = startBoxAgent(t, h, settings)
	waitForLog(t, agentLog, `msg="found published records" zone=heimwolke.test. provider=rfc2136 type=AAAA`)
	time.Sleep(time.Second)
	if strings.Contains(agentLog.String(), "records published") {
		t.Errorf("restarted agent published unchanged records again:\n%s", agentLog)
	}
}

// TestHomeNetworkBehindCGNAT checks that a box behind carrier-grade NAT
// publishes its AAAA records but no A record. miniupnpd declines to report
// a WAN address in the shared address space, so the box finds a router
// without a public IPv4 address.
func TestHomeNetworkBehindCGNAT(t *testing.T) {
	dig := testpeer.Require(t, "dig", "bind9-dnsutils")
	h := netlab.NewHomeWith(t, netlab.Options{WANv4: netip.MustParseAddr("100.64.7.2")})

	settings := startZoneServer(t, h)
	settings.Gateway = h.LANv4.Addr().String()
	agentLog, _ := startBoxAgent(t, h, settings)
	query := func(typ string) string {
		out, _ := h.Command(h.Internet, dig, "+short", "+norecurse", "+time=1", "+tries=1", "@"+h.InternetV4.String(), testZone, typ).Output()
		return strings.TrimSpace(string(out))
	}

	waitForRecord(t, query, "AAAA", h.BoxV6.String(), 30*time.Second, agentLog)
	waitForLog(t, agentLog, `msg="ipv4 connection classified" zone=heimwolke.test. provider=rfc2136 class=no_public_wan`)
	if got := query("A"); got != "" {
		t.Errorf("A record behind CGNAT: got %q, want none", got)
	}
}

// waitForLog waits up to 30 seconds for the agent's output to contain line.
func waitForLog(t *testing.T, agentLog *testpeer.Buffer, line string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(agentLog.String(), line) {
		if time.Now().After(deadline) {
			t.Fatalf("agent log has no line with %s:\n%s", line, agentLog)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitForRecord polls query until it returns want, and returns how long
// that took.
func waitForRecord(t testing.TB, query func(string) string, typ, want string, limit time.Duration, agentLog *testpeer.Buffer) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := query(typ)
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s record after %v: got %q, want %q\nagent log:\n%s", typ, limit, got, want, agentLog)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

var secretPattern = regexp.MustCompile(`secret "([A-Za-z0-9+/=]+)"`)

// startZoneServer starts BIND in the internet namespace, serving testZone
// with a TSIG key that may update it and transfer it.
func startZoneServer(t testing.TB, h *netlab.Home) boxAgentSettings {
	t.Helper()
	named := testpeer.Require(t, "named", "bind9")
	keygen := testpeer.Require(t, "tsig-keygen", "bind9-utils")
	const keyName = "ddns-test-key"
	out, err := exec.Command(keygen, "-a", "hmac-sha256", keyName).Output()
	if err != nil {
		t.Fatalf("tsig-keygen: %v", err)
	}
	m := secretPattern.FindSubmatch(out)
	if m == nil {
		t.Fatalf("tsig-keygen printed no secret: %s", out)
	}

	dir := t.TempDir()
	conf := fmt.Sprintf(`%s
options {
	directory %q;
	pid-file none;
	listen-on port 53 { %s; };
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
`, out, dir, h.InternetV4, testZone, keyName, keyName)
	zone := `$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
@ IN NS ns1
ns1 IN A ` + h.InternetV4.String() + "\n"
	writeTestFile(t, filepath.Join(dir, "named.conf"), conf)
	writeTestFile(t, filepath.Join(dir, "key.conf"), string(out))
	writeTestFile(t, filepath.Join(dir, "zone.db"), zone)

	p := h.StartInInternet(named, "-g", "-c", filepath.Join(dir, "named.conf"))
	deadline := time.Now().Add(15 * time.Second)
	for {
		soa, _ := h.Command(h.Internet, "dig", "+short", "+time=1", "+tries=1", "@"+h.InternetV4.String(), testZone, "SOA").Output()
		if len(soa) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("named did not serve %s within 15s:\n%s", testZone, p.Output)
		}
		time.Sleep(100 * time.Millisecond)
	}

	return boxAgentSettings{
		Server:  net.JoinHostPort(h.InternetV4.String(), "53"),
		Zone:    testZone,
		KeyName: keyName,
		Secret:  string(m[1]),
		KeyFile: filepath.Join(dir, "key.conf"),
	}
}

func writeTestFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startBoxAgent runs TestBoxAgent from this test binary inside the box
// namespace, so that every socket of the loop, netlink included, belongs to
// the box. It returns the agent's output and a function that stops it; the
// test's cleanup stops it too.
func startBoxAgent(t testing.TB, h *netlab.Home, settings boxAgentSettings) (*testpeer.Buffer, func()) {
	t.Helper()
	encoded, err := json.Marshal(settings)
	if err != nil {
		t.Fatal(err)
	}
	cmd := h.Command(h.Box, os.Args[0], "-test.run=^TestBoxAgent$", "-test.v", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), boxAgentEnv+"="+string(encoded))
	output := &testpeer.Buffer{}
	cmd.Stdout, cmd.Stderr = output, output
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the box agent: %v", err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}
	t.Cleanup(stop)
	return output, stop
}

// TestBoxAgent is the dynamic DNS loop of the TestHomeNetwork tests. It
// runs only when startBoxAgent starts it inside the box namespace, and until
// the test kills it.
func TestBoxAgent(t *testing.T) {
	encoded := os.Getenv(boxAgentEnv)
	if encoded == "" {
		t.Skip("runs only inside the box namespace of TestHomeNetworkFollowsAddresses")
	}
	var settings boxAgentSettings
	if err := json.Unmarshal([]byte(encoded), &settings); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	changes, err := netaddr.WatchAddrs(ctx, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	log := testLogger(t)
	var outside []netaddr.IPv4Source
	if settings.Whoami != "" {
		outside = append(outside, netaddr.OpenDNS(settings.Whoami))
	}
	u, err := New(Config{
		Zone:         settings.Zone,
		Names:        []string{"@", "mail", "xmpp"},
		TTL:          60 * time.Second,
		Provider:     &rfc2136.Provider{Server: settings.Server, KeyName: settings.KeyName, Secret: settings.Secret},
		ProviderName: "rfc2136",
		IPv4: &netaddr.IPv4Finder{
			Router:       portmap.New(portmap.Config{Gateway: netip.MustParseAddr(settings.Gateway), Logger: log}),
			Sources:      outside,
			ConfirmDelay: 500 * time.Millisecond,
			Logger:       log,
		},
		IPv6:          &netaddr.IPv6Finder{Interface: netlab.PeerInterface},
		Changes:       changes,
		Verifier:      &AuthoritativeVerifier{Servers: []string{settings.Server}, Wait: 10 * time.Second, Interval: 200 * time.Millisecond},
		CheckInterval: 5 * time.Second,
		MinBackoff:    time.Second,
		MaxBackoff:    10 * time.Second,
		Logger:        log,
	})
	if err != nil {
		t.Fatal(err)
	}
	u.Run(ctx)
}

// startWhoami runs a DNS server in the internet namespace that answers
// "myip.opendns.com. A" with the query's source address, as OpenDNS does,
// and returns its host:port. Behind the router's NAT that address is the
// router's WAN address.
func startWhoami(t *testing.T, h *netlab.Home) string {
	t.Helper()
	addr := net.JoinHostPort(h.InternetV4.String(), "5300")
	var pc net.PacketConn
	err := h.InNamespace(h.Internet, func() error {
		var err error
		pc, err = net.ListenPacket("udp4", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listening on %s in the internet namespace: %v", addr, err)
	}

	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if q.Question[0].Name == "myip.opendns.com." && q.Question[0].Qtype == dns.TypeA {
			hdr := dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET}
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: w.RemoteAddr().(*net.UDPAddr).IP})
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: handler}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return addr
}
