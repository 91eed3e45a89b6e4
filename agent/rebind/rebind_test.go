package rebind

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

const (
	zone = "familie-mueller.de."
	// privateName points at the box's LAN address, which dnsmasq's
	// --stop-dns-rebind removes. publicName points at a public address.
	privateName = "familie-mueller.de."
	publicName  = "www.familie-mueller.de."
)

var (
	boxV4 = netip.MustParseAddr("192.168.178.20")
	boxV6 = netip.MustParseAddr("fd00::20")
	// publicV4 is outside the documentation ranges of RFC 5737, because
	// dnsmasq 2.90's --stop-dns-rebind removes those too. The address is
	// only DNS data: no test sends a packet to it.
	publicV4 = netip.MustParseAddr("192.0.3.7")
)

// startAuthoritative serves the test zone on 127.0.0.1 over UDP, standing in
// for the zone's authoritative servers on the internet, and returns its
// address.
func startAuthoritative(t *testing.T) netip.AddrPort {
	t.Helper()
	records := map[string][]dns.RR{}
	for _, line := range []string{
		privateName + " 60 IN A " + boxV4.String(),
		privateName + " 60 IN AAAA " + boxV6.String(),
		publicName + " 60 IN A " + publicV4.String(),
	} {
		rr, err := dns.NewRR(line)
		if err != nil {
			t.Fatalf("dns.NewRR(%q): %v", line, err)
		}
		key := rr.Header().Name + "/" + dns.TypeToString[rr.Header().Rrtype]
		records[key] = append(records[key], rr)
	}
	soa, err := dns.NewRR(zone + " 60 IN SOA ns1." + zone + " hostmaster." + zone + " 1 3600 600 86400 60")
	if err != nil {
		t.Fatalf("dns.NewRR(SOA): %v", err)
	}

	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		resp := new(dns.Msg)
		resp.SetReply(req)
		resp.Authoritative = true
		q := req.Question[0]
		resp.Answer = records[dns.CanonicalName(q.Name)+"/"+dns.TypeToString[q.Qtype]]
		if len(resp.Answer) == 0 {
			resp.Ns = []dns.RR{soa}
		}
		if err := w.WriteMsg(resp); err != nil {
			t.Logf("authoritative server: writing response: %v", err)
		}
	})

	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening for the authoritative server: %v", err)
	}
	started := make(chan struct{})
	server := &dns.Server{PacketConn: conn, Handler: handler, NotifyStartedFunc: func() { close(started) }}
	go server.ActivateAndServe()
	<-started
	t.Cleanup(func() { server.Shutdown() })
	return netip.MustParseAddrPort(conn.LocalAddr().String())
}

// dnsmasq is Debian's dnsmasq running as the LAN resolver.
type dnsmasq struct {
	Addr netip.AddrPort
	Log  *testpeer.Buffer
	cmd  *exec.Cmd

	exited chan struct{} // closed when dnsmasq has exited
}

// startDnsmasq runs dnsmasq on a free port of 127.0.0.1 in the foreground,
// forwarding every query to upstream, with extra flags such as
// --stop-dns-rebind. It waits until dnsmasq responds, and starts it again
// on another port when another process took the chosen one first.
func startDnsmasq(t *testing.T, upstream netip.AddrPort, flags ...string) *dnsmasq {
	t.Helper()
	program := testpeer.Require(t, "dnsmasq", "dnsmasq-base")
	for attempt := 1; ; attempt++ {
		d := launchDnsmasq(t, program, upstream, flags)
		err := d.waitReady()
		if err == nil {
			return d
		}
		d.Stop()
		if attempt < 5 && testpeer.AddrInUse(d.Log.String()) {
			t.Logf("dnsmasq: port %d was taken, trying another", d.Addr.Port())
			continue
		}
		t.Fatalf("%v:\n%s", err, d.Log)
	}
}

func launchDnsmasq(t *testing.T, program string, upstream netip.AddrPort, flags []string) *dnsmasq {
	t.Helper()
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(testpeer.FreePort(t)))
	args := []string{
		"--keep-in-foreground",
		"--conf-file=/dev/null",
		"--no-resolv",
		"--no-hosts",
		"--pid-file=" + filepath.Join(t.TempDir(), "dnsmasq.pid"),
		"--listen-address=" + addr.Addr().String(),
		"--bind-interfaces",
		fmt.Sprintf("--port=%d", addr.Port()),
		fmt.Sprintf("--server=%s#%d", upstream.Addr(), upstream.Port()),
		"--log-queries",
		"--log-facility=-",
	}
	if os.Geteuid() == 0 {
		// Without --user, dnsmasq switches to the user nobody, which a
		// minimal container may lack.
		args = append(args, "--user=root")
	}
	args = append(args, flags...)

	d := &dnsmasq{Addr: addr, Log: &testpeer.Buffer{}, exited: make(chan struct{})}
	d.cmd = exec.Command(program, args...)
	d.cmd.Stdout, d.cmd.Stderr = d.Log, d.Log
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting dnsmasq: %v", err)
	}
	go func() {
		d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("dnsmasq output:\n%s", d.Log)
		}
	})
	return d
}

// Stop ends dnsmasq and waits for it. Calling it again does nothing.
func (d *dnsmasq) Stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.exited
}

// waitReady waits until dnsmasq responds to a query, for at most 10 seconds,
// and returns early when dnsmasq exits.
func (d *dnsmasq) waitReady() error {
	client := &dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
	msg := new(dns.Msg)
	msg.SetQuestion("ready.invalid.", dns.TypeA)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, err := client.Exchange(msg, d.Addr.String()); err == nil {
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("dnsmasq on %s exited before it responded", d.Addr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("dnsmasq on %s did not respond within 10s", d.Addr)
}

func check(t *testing.T, cfg Config) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := Check(ctx, cfg)
	if err != nil {
		t.Fatalf("Check(%s at %s): %v", cfg.Name, cfg.Resolver, err)
	}
	return res
}

func privateConfig(resolver netip.AddrPort) Config {
	return Config{
		Name:      privateName,
		Published: []netip.Addr{boxV4, boxV6},
		Resolver:  resolver,
		LAN:       []netip.Addr{boxV4, boxV6},
		Timeout:   time.Second,
	}
}

func TestCheckDnsmasqStopDNSRebind(t *testing.T) {
	upstream := startAuthoritative(t)
	d := startDnsmasq(t, upstream, "--stop-dns-rebind")

	res := check(t, privateConfig(d.Addr))
	if res.State != Blocked {
		t.Errorf("State = %q, want %q; queries: %+v", res.State, Blocked, res.Queries)
	}
	if !res.PrivatePublished {
		t.Errorf("PrivatePublished = false, want true for %v", res.Published)
	}
	if got := queryTypes(res); !slices.Equal(got, []string{"A", "AAAA"}) {
		t.Fatalf("query types = %v, want [A AAAA]", got)
	}
	for _, q := range res.Queries {
		if q.State != Blocked {
			t.Errorf("%s query: State = %q (rcode %q, answer %v, error %q), want %q", q.Type, q.State, q.Rcode, q.Answer, q.Error, Blocked)
		}
	}

	// A public address passes the same filter.
	public := check(t, Config{Name: publicName, Published: []netip.Addr{publicV4}, Resolver: d.Addr, Timeout: time.Second})
	if public.State != OK {
		t.Errorf("public name: State = %q, want %q; queries: %+v", public.State, OK, public.Queries)
	}
	if public.PrivatePublished {
		t.Errorf("public name: PrivatePublished = true, want false")
	}
}

func TestCheckDnsmasqRebindDomainOK(t *testing.T) {
	upstream := startAuthoritative(t)
	d := startDnsmasq(t, upstream, "--stop-dns-rebind", "--rebind-domain-ok=/"+zone[:len(zone)-1]+"/")

	res := check(t, privateConfig(d.Addr))
	if res.State != OK {
		t.Errorf("State = %q, want %q; queries: %+v", res.State, OK, res.Queries)
	}
	for _, q := range res.Queries {
		want := boxV4
		if q.Type == "AAAA" {
			want = boxV6
		}
		if !slices.Equal(q.Answer, []netip.Addr{want}) {
			t.Errorf("%s answer = %v, want [%s]", q.Type, q.Answer, want)
		}
		if q.Rcode != "NOERROR" {
			t.Errorf("%s rcode = %q, want NOERROR", q.Type, q.Rcode)
		}
		if q.Stale {
			t.Errorf("%s query: Stale = true, want false", q.Type)
		}
	}
}

func TestCheckDnsmasqStopped(t *testing.T) {
	upstream := startAuthoritative(t)
	d := startDnsmasq(t, upstream, "--stop-dns-rebind")
	d.Stop()

	res := check(t, privateConfig(d.Addr))
	if res.State != Unknown {
		t.Errorf("State = %q, want %q; queries: %+v", res.State, Unknown, res.Queries)
	}
	for _, q := range res.Queries {
		if q.Error == "" {
			t.Errorf("%s query: Error is empty, want the reason for the missing response", q.Type)
		}
		if q.Rcode != "" {
			t.Errorf("%s query: Rcode = %q, want empty", q.Type, q.Rcode)
		}
	}
}

func TestCheckStaleAnswer(t *testing.T) {
	upstream := startAuthoritative(t)
	d := startDnsmasq(t, upstream)

	// The zone serves publicV4 for www, but the caller expects a newer
	// address, as right after the box published a change.
	newer := netip.MustParseAddr("203.0.113.9")
	res := check(t, Config{Name: publicName, Published: []netip.Addr{newer}, Resolver: d.Addr, Timeout: time.Second})
	if res.State != OK {
		t.Errorf("State = %q, want %q", res.State, OK)
	}
	if len(res.Queries) != 1 || !res.Queries[0].Stale {
		t.Errorf("queries = %+v, want one stale A query", res.Queries)
	}
}

func queryTypes(res Result) []string {
	var types []string
	for _, q := range res.Queries {
		types = append(types, q.Type)
	}
	return types
}
