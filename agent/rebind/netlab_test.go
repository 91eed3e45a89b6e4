package rebind

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/packages/netlab"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// TestCheckHomeRouterDnsmasq runs the check the way the box runs it: from
// the box's namespace, against dnsmasq on the router's LAN address port 53,
// found through a resolv.conf file, with the authoritative server in the
// internet namespace behind the router's NAT.
func TestCheckHomeRouterDnsmasq(t *testing.T) {
	program := testpeer.Require(t, "dnsmasq", "dnsmasq-base")
	home := netlab.NewHomeWith(t, netlab.Options{NoUPnP: true, NoNATPMP: true})

	upstream := netip.AddrPortFrom(home.InternetV4, 53)
	startAuthoritativeIn(t, home, home.Internet, upstream)

	router := home.LANv4.Addr()
	cmd := home.Command(home.Router, program,
		"--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--pid-file="+filepath.Join(t.TempDir(), "dnsmasq.pid"),
		"--listen-address="+router.String(), "--bind-interfaces", "--port=53",
		"--server="+upstream.Addr().String(),
		"--stop-dns-rebind", "--log-queries", "--log-facility=-", "--user=root")
	log := &testpeer.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dnsmasq in the router namespace: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dnsmasq output:\n%s", log)
		}
	})

	resolvConf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolvConf, []byte("search fritz.box\nnameserver "+router.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Name:       privateName,
		Published:  []netip.Addr{home.BoxV4},
		ResolvConf: resolvConf,
		LAN:        []netip.Addr{home.BoxV4},
		Timeout:    time.Second,
	}

	// The public name resolves through the whole path, so the router's
	// resolver reaches the authoritative server. dnsmasq needs a moment to
	// bind, so the first checks may find no resolver yet.
	public := cfg
	public.Name, public.Published = publicName, []netip.Addr{publicV4}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := checkInBox(t, home, public)
		if res.State == OK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("public name: State = %q after 30s, want %q; queries: %+v", res.State, OK, res.Queries)
		}
		time.Sleep(100 * time.Millisecond)
	}

	res := checkInBox(t, home, cfg)
	if want := netip.AddrPortFrom(router, 53); res.Resolver != want {
		t.Errorf("Resolver = %s, want %s", res.Resolver, want)
	}
	if res.State != Blocked {
		t.Errorf("State = %q, want %q; queries: %+v", res.State, Blocked, res.Queries)
	}
	if !res.PrivatePublished {
		t.Errorf("PrivatePublished = false, want true for %v", res.Published)
	}
}

// checkInBox runs Check in the box's namespace.
func checkInBox(t *testing.T, home *netlab.Home, cfg Config) Result {
	t.Helper()
	var res Result
	err := home.InNamespace(home.Box, func() error {
		var err error
		res, err = Check(context.Background(), cfg)
		return err
	})
	if err != nil {
		t.Fatalf("Check(%s) in the box namespace: %v", cfg.Name, err)
	}
	return res
}

// startAuthoritativeIn serves privateName with the box's LAN address and
// publicName with publicV4 on addr inside the namespace ns. The socket belongs to ns, so the server's
// goroutines may run on any thread.
func startAuthoritativeIn(t *testing.T, home *netlab.Home, ns string, addr netip.AddrPort) {
	t.Helper()
	var conn net.PacketConn
	err := home.InNamespace(ns, func() error {
		var err error
		conn, err = net.ListenPacket("udp", addr.String())
		return err
	})
	if err != nil {
		t.Fatalf("listening on %s in %s: %v", addr, ns, err)
	}

	records := map[string]dns.RR{}
	for name, addr := range map[string]netip.Addr{privateName: home.BoxV4, publicName: publicV4} {
		rr, err := dns.NewRR(name + " 60 IN A " + addr.String())
		if err != nil {
			t.Fatalf("dns.NewRR: %v", err)
		}
		records[name] = rr
	}

	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		resp := new(dns.Msg)
		resp.SetReply(req)
		resp.Authoritative = true
		q := req.Question[0]
		if rr, ok := records[dns.CanonicalName(q.Name)]; ok && q.Qtype == dns.TypeA {
			resp.Answer = []dns.RR{rr}
		}
		w.WriteMsg(resp)
	})

	started := make(chan struct{})
	server := &dns.Server{PacketConn: conn, Handler: handler, NotifyStartedFunc: func() { close(started) }}
	go server.ActivateAndServe()
	<-started
	t.Cleanup(func() { server.Shutdown() })
}
