package mdns

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// TestResponderInNamespaces runs the responder in namespace "r", which has
// one link to namespace "a" (10.99.0.0/24, fd00:99::/64) and one to "b"
// (10.98.0.0/24, fd00:98::/64), and queries it from a and b with dig, Avahi
// and Go sockets. The subtests run in order and share the responder.
func TestResponderInNamespaces(t *testing.T) {
	lb := newLab(t)
	dig := testpeer.Require(t, "dig", "bind9-dnsutils")
	for _, ns := range []string{"r", "a", "b"} {
		lb.addNamespace(ns)
	}
	lb.addVeth(end{"r", "r-a", []string{"10.99.0.1/24", "fd00:99::1/64"}},
		end{"a", "a-r", []string{"10.99.0.2/24", "fd00:99::2/64"}}, true)
	lb.addVeth(end{"r", "r-b", []string{"10.98.0.1/24", "fd00:98::1/64"}},
		end{"b", "b-r", []string{"10.98.0.2/24", "fd00:98::2/64"}}, true)
	// dig sends to 224.0.0.251 without choosing an interface, so the
	// clients need a multicast route.
	lb.run("ip", "-n", lb.ns("a"), "route", "add", "224.0.0.0/4", "dev", "a-r")
	lb.run("ip", "-n", lb.ns("b"), "route", "add", "224.0.0.0/4", "dev", "b-r")

	a4 := lb.openClient("a", "a-r", netip.MustParseAddr("10.99.0.2"), group4)
	a6 := lb.openClient("a", "a-r", netip.MustParseAddr("fd00:99::2"), group6)
	b4 := lb.openClient("b", "b-r", netip.MustParseAddr("10.98.0.2"), group4)

	responder := lb.startResponder("r", "")

	t.Run("probes and announces", func(t *testing.T) {
		got := collect(a4.group, 8*time.Second, func(got []received) bool {
			return len(responsesFor(got, host)) >= 2
		})
		var probes int
		for _, r := range got {
			if !r.msg.Response && len(r.msg.Question) == 1 && r.msg.Question[0].Name == host && len(r.msg.Ns) > 0 {
				probes++
			}
		}
		if probes != 3 {
			t.Errorf("probe queries before the announcement: got %d, want 3", probes)
		}
		announcements := responsesFor(got, host)
		if len(announcements) != 2 {
			t.Fatalf("announcements: got %d, want 2", len(announcements))
		}
		if gap := announcements[1].at.Sub(announcements[0].at); gap < 900*time.Millisecond {
			t.Errorf("time between announcements: got %v, want about 1 s", gap)
		}
		rr := announcements[0].msg.Answer[0]
		if rr.Header().Class != dns.ClassINET|cacheFlush || rr.Header().Ttl != 120 {
			t.Errorf("announced record %v: got class %#x TTL %d, want class 0x8001 (cache flush) TTL 120",
				rr, rr.Header().Class, rr.Header().Ttl)
		}
		got4 := addresses(announcements[0].msg.Answer)
		for _, want := range []string{"10.99.0.1", "fd00:99::1"} {
			if !slices.Contains(got4, want) {
				t.Errorf("announcement on link a: got %v, want it to contain %s", got4, want)
			}
		}
		for _, other := range []string{"10.98.0.1", "fd00:98::1"} {
			if slices.Contains(got4, other) {
				t.Errorf("announcement on link a: got %v, which contains link b's address %s", got4, other)
			}
		}

		gotB := responsesFor(collect(b4.group, time.Second, nil), host)
		if len(gotB) == 0 || !slices.Contains(addresses(gotB[0].msg.Answer), "10.98.0.1") {
			t.Errorf("announcement on link b: got %v, want one with 10.98.0.1", gotB)
		}
		// The one-second limit per record starts from the announcement.
		time.Sleep(1100 * time.Millisecond)
	})

	t.Run("QM query gets multicast response", func(t *testing.T) {
		a4.query(t, question(host, dns.TypeA, false))
		got := responsesFor(collect(a4.group, 2*time.Second, func(got []received) bool {
			return len(responsesFor(got, host)) > 0
		}), host)
		if len(got) != 1 {
			t.Fatalf("multicast responses: got %d, want 1", len(got))
		}
		msg := got[0].msg
		if msg.Id != 0 || len(msg.Question) != 0 || !msg.Authoritative {
			t.Errorf("response header: got id %d, %d questions, AA %v; want id 0, no questions, AA set", msg.Id, len(msg.Question), msg.Authoritative)
		}
		if answer := addresses(msg.Answer); !slices.Equal(answer, []string{"10.99.0.1"}) {
			t.Errorf("answer: got %v, want [10.99.0.1]", answer)
		}
		if extra := addresses(msg.Extra); !slices.Contains(extra, "fd00:99::1") {
			t.Errorf("additional records: got %v, want the AAAA fd00:99::1", extra)
		}
		if from := got[0].from.Addr(); from != netip.MustParseAddr("10.99.0.1") {
			t.Errorf("response source: got %v, want 10.99.0.1", from)
		}
		if other := responsesFor(collect(b4.group, 300*time.Millisecond, nil), host); len(other) > 0 {
			t.Errorf("link b saw %d responses to a query on link a, want 0", len(other))
		}
	})

	t.Run("QM query within a second is not answered", func(t *testing.T) {
		time.Sleep(1100 * time.Millisecond)
		a4.query(t, question(host, dns.TypeA, false))
		time.Sleep(100 * time.Millisecond)
		again, _ := question(host, dns.TypeA, false).Pack()
		a4.sendRaw(t, again)
		got := responsesFor(collect(a4.group, 1500*time.Millisecond, nil), host)
		if len(got) != 1 {
			t.Errorf("responses to two queries 100 ms apart: got %d, want 1", len(got))
		}
	})

	t.Run("QU query gets unicast response", func(t *testing.T) {
		a4.query(t, question(host, dns.TypeA, true))
		got := responsesFor(collect(a4.unicast, 2*time.Second, func(got []received) bool {
			return len(responsesFor(got, host)) > 0
		}), host)
		if len(got) != 1 {
			t.Fatalf("unicast responses: got %d, want 1", len(got))
		}
		if answer := addresses(got[0].msg.Answer); !slices.Equal(answer, []string{"10.99.0.1"}) {
			t.Errorf("answer: got %v, want [10.99.0.1]", answer)
		}
	})

	t.Run("AAAA over IPv6", func(t *testing.T) {
		a6.query(t, question(host, dns.TypeAAAA, false))
		got := responsesFor(collect(a6.group, 2*time.Second, func(got []received) bool {
			return len(responsesFor(got, host)) > 0
		}), host)
		if len(got) != 1 {
			t.Fatalf("multicast responses on IPv6: got %d, want 1", len(got))
		}
		answer := addresses(got[0].msg.Answer)
		if !slices.Contains(answer, "fd00:99::1") || slices.Contains(answer, "fd00:98::1") {
			t.Errorf("AAAA answer: got %v, want fd00:99::1 and not link b's fd00:98::1", answer)
		}
		for _, a := range answer {
			if !strings.Contains(a, ":") {
				t.Errorf("AAAA answer contains %s, want only IPv6 addresses", a)
			}
		}
	})

	t.Run("legacy query gets conventional unicast response", func(t *testing.T) {
		// A resolver that sends from a port other than 5353 to the group
		// gets a unicast response that repeats the ID and the question.
		// dig cannot check this: it connects its socket to 224.0.0.251, so
		// the kernel drops a response from the box's own address.
		var conn *net.UDPConn
		err := lb.inNamespace("a", func() error {
			var err error
			conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("10.99.0.2")})
			return err
		})
		if err != nil {
			t.Fatalf("opening legacy client: %v", err)
		}
		defer conn.Close()
		query := question(host, dns.TypeA, false)
		query.Id = 0x4242
		data, _ := query.Pack()
		if _, err := conn.WriteToUDPAddrPort(data, netip.AddrPortFrom(group4, port)); err != nil {
			t.Fatalf("sending legacy query: %v", err)
		}
		got := collect(conn, 2*time.Second, func(got []received) bool { return len(got) > 0 })
		if len(got) != 1 {
			t.Fatalf("legacy responses: got %d, want 1", len(got))
		}
		msg := got[0].msg
		if msg.Id != 0x4242 || len(msg.Question) != 1 || msg.Question[0].Name != host {
			t.Errorf("legacy response: got id %#x questions %v, want id 0x4242 and the question repeated", msg.Id, msg.Question)
		}
		if answer := addresses(msg.Answer); !slices.Equal(answer, []string{"10.99.0.1"}) {
			t.Errorf("legacy answer: got %v, want [10.99.0.1]", answer)
		}
		for _, rr := range msg.Answer {
			if rr.Header().Class != dns.ClassINET || rr.Header().Ttl != legacyTTL {
				t.Errorf("legacy record %v: got class %#x TTL %d, want class 1 (no cache flush) TTL 10", rr, rr.Header().Class, rr.Header().Ttl)
			}
		}
	})

	t.Run("dig per link", func(t *testing.T) {
		cases := []struct {
			ns, server, qtype string
			want, notWant     string
		}{
			{"a", "10.99.0.1", "A", "10.99.0.1", "10.98.0.1"},
			{"b", "10.98.0.1", "A", "10.98.0.1", "10.99.0.1"},
			{"b", "10.98.0.1", "AAAA", "fd00:98::1", "fd00:99::1"},
			{"a", "fd00:99::1", "AAAA", "fd00:99::1", "fd00:98::1"},
		}
		for _, c := range cases {
			out := lb.dig(t, dig, c.ns, c.server, "heimwolke.local", c.qtype)
			answers := answerLines(out)
			if !containsField(answers, c.want) || containsField(answers, c.notWant) {
				t.Errorf("dig @%s %s from %s: got answer %q, want %s and not %s\n%s", c.server, c.qtype, c.ns, answers, c.want, c.notWant, out)
			}
			for _, line := range answers {
				if f := strings.Fields(line); len(f) >= 2 && f[1] != "10" {
					t.Errorf("legacy answer %q: got TTL %s, want 10 (RFC 6762 section 6.7)", line, f[1])
				}
			}
		}
	})

	t.Run("dig reverse lookup", func(t *testing.T) {
		out := lb.dig(t, dig, "a", "10.99.0.1", "-x", "10.99.0.1")
		if answers := answerLines(out); !containsField(answers, host) {
			t.Errorf("dig -x 10.99.0.1: got answer %q, want PTR %s\n%s", answers, host, out)
		}
	})

	t.Run("no answer for other names", func(t *testing.T) {
		out := lb.dig(t, dig, "a", "10.99.0.1", "other.local", "A")
		if answers := answerLines(out); len(answers) > 0 {
			t.Errorf("dig other.local: got answer %q, want none", answers)
		}
		a4.query(t, question("other.local.", dns.TypeA, false))
		if got := collect(a4.group, time.Second, func(got []received) bool { return slices.ContainsFunc(got, isResponse) }); slices.ContainsFunc(got, isResponse) {
			t.Errorf("query for other.local: got a response, want none")
		}
	})

	t.Run("malformed packets ignored", func(t *testing.T) {
		time.Sleep(1100 * time.Millisecond)
		valid, _ := question(host, dns.TypeA, false).Pack()
		response := question(host, dns.TypeA, false)
		response.Response = true
		responseData, _ := response.Pack()
		tooMany := &dns.Msg{}
		for range 33 {
			tooMany.Question = append(tooMany.Question, dns.Question{Name: host, Qtype: dns.TypeA, Qclass: dns.ClassINET})
		}
		tooManyData, _ := tooMany.Pack()
		oversized := append(slices.Clone(valid), make([]byte, maxPacketSize+1-len(valid))...)

		packets := map[string][]byte{
			"garbage":                  []byte("\xff\xfe not DNS at all"),
			"truncated header":         valid[:7],
			"truncated question":       valid[:len(valid)-3],
			"response packet":          responseData,
			"33 questions":             tooManyData,
			"9001 bytes":               oversized,
			"compression pointer loop": append(slices.Clone(valid[:12]), 0xc0, 0x0c, 0, 1, 0, 1),
		}
		for name, data := range packets {
			a4.sendRaw(t, data)
			if got := collect(a4.group, 300*time.Millisecond, nil); slices.ContainsFunc(got, isResponse) {
				t.Errorf("%s: got a response, want none", name)
			}
		}
		a4.query(t, question(host, dns.TypeA, false))
		got := responsesFor(collect(a4.group, 2*time.Second, func(got []received) bool {
			return len(responsesFor(got, host)) > 0
		}), host)
		if len(got) != 1 {
			t.Errorf("responses to a valid query after the malformed ones: got %d, want 1", len(got))
		}
	})

	t.Run("avahi resolves the name", func(t *testing.T) {
		lb.avahiResolve(t, "a", "a-r")
	})

	t.Run("interface added later", func(t *testing.T) {
		lb.addNamespace("c")
		lb.addVeth(end{"r", "r-c", []string{"10.97.0.1/24"}}, end{"c", "c-r", []string{"10.97.0.2/24"}}, false)
		lb.run("ip", "-n", lb.ns("c"), "link", "set", "c-r", "up")
		c4 := lb.openClient("c", "c-r", netip.MustParseAddr("10.97.0.2"), group4)
		lb.run("ip", "-n", lb.ns("r"), "link", "set", "r-c", "up")
		got := responsesFor(collect(c4.group, 6*time.Second, func(got []received) bool {
			return len(responsesFor(got, host)) > 0
		}), host)
		if len(got) == 0 {
			t.Fatal("announcements on the new link: got none within 6 s, want one")
		}
		answer := addresses(got[0].msg.Answer)
		if !slices.Contains(answer, "10.97.0.1") || slices.Contains(answer, "10.99.0.1") || slices.Contains(answer, "10.98.0.1") {
			t.Errorf("announcement on the new link: got %v, want 10.97.0.1 and no other link's address", answer)
		}
	})

	t.Run("conflict renames the second responder", func(t *testing.T) {
		// A second responder in b claims the same name; the first one
		// defends it on link b. The client in b would take the unicast
		// queries to 10.98.0.2 port 5353, so it goes first.
		b4.group.Close()
		b4.unicast.Close()
		second := lb.startResponder("b", "heimwolke")
		second.waitLog(t, "mdns hostname conflict", 10*time.Second)
		second.waitLog(t, "new_hostname=heimwolke-2.local.", time.Second)
		second.waitLog(t, "hostname=heimwolke-2.local. links=1", 10*time.Second)
		out := lb.dig(t, dig, "r", "10.98.0.2", "heimwolke-2.local", "A")
		if answers := answerLines(out); !containsField(answers, "10.98.0.2") {
			t.Errorf("dig heimwolke-2.local from r: got answer %q, want 10.98.0.2\n%s", answers, out)
		}
		second.stop(t)
		if strings.Contains(responder.log.String(), "mdns hostname conflict") {
			t.Errorf("first responder logged a conflict, want it to keep its name")
		}
	})

	t.Run("goodbye on shutdown", func(t *testing.T) {
		collect(a4.group, 100*time.Millisecond, nil)
		responder.stop(t)
		got := responsesFor(collect(a4.group, 3*time.Second, func(got []received) bool {
			return len(responsesFor(got, host)) > 0
		}), host)
		if len(got) == 0 {
			t.Fatal("goodbye: got no response after SIGTERM, want one with TTL 0")
		}
		if answer := addresses(got[0].msg.Answer); !slices.Contains(answer, "10.99.0.1") {
			t.Errorf("goodbye records: got %v, want 10.99.0.1", answer)
		}
		for _, rr := range got[0].msg.Answer {
			if rr.Header().Ttl != 0 {
				t.Errorf("goodbye record %v: got TTL %d, want 0", rr, rr.Header().Ttl)
			}
		}
	})
}

func isResponse(r received) bool { return r.msg.Response }

// dig runs dig inside the namespace against server port 5353 and returns
// its output. A query without response is not an error.
func (lb *lab) dig(t *testing.T, dig, short, server string, args ...string) string {
	t.Helper()
	cmdArgs := append([]string{"netns", "exec", lb.ns(short), dig, "-p", "5353", "@" + server,
		"+time=2", "+tries=1", "+noall", "+answer", "+comments"}, args...)
	out, _ := exec.Command("ip", cmdArgs...).CombinedOutput()
	return string(out)
}

// answerLines returns the record lines of dig's output.
func answerLines(out string) []string {
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		lines = append(lines, line)
	}
	return lines
}

func containsField(lines []string, field string) bool {
	for _, line := range lines {
		if slices.Contains(strings.Fields(line), field) {
			return true
		}
	}
	return false
}

// avahiResolve runs avahi-daemon in the namespace, with a D-Bus system bus
// of its own on a private /run, and checks that avahi-resolve-host-name
// finds the box's addresses on link ifname.
func (lb *lab) avahiResolve(t *testing.T, short, ifname string) {
	testpeer.Require(t, "avahi-daemon", "avahi-daemon")
	testpeer.Require(t, "avahi-resolve-host-name", "avahi-utils")
	testpeer.Require(t, "dbus-daemon", "dbus-daemon")
	dir := t.TempDir()
	busConf := `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`
	avahiConf := "[server]\nuse-ipv4=yes\nuse-ipv6=yes\nallow-interfaces=" + ifname +
		"\nenable-dbus=yes\n[publish]\ndisable-publishing=yes\n"
	// ip netns exec gives the script its own mount namespace, so the
	// tmpfs on /run hides the host's /run from it alone.
	script := `set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/dbus /run/avahi-daemon
dbus-daemon --config-file="$DIR/bus.conf" --fork --print-pid=3 3>"$DIR/dbus.pid"
trap 'avahi-daemon --kill 2>/dev/null; kill "$(cat "$DIR/dbus.pid")"' EXIT
avahi-daemon --daemonize --no-drop-root --no-chroot --no-rlimits -f "$DIR/avahi.conf"
for i in $(seq 50); do avahi-daemon --check && break; sleep 0.1; done
sleep 1
echo "v4: $(avahi-resolve-host-name -4 heimwolke.local)"
echo "v6: $(avahi-resolve-host-name -6 heimwolke.local)"
`
	for name, content := range map[string]string{"bus.conf": busConf, "avahi.conf": avahiConf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("ip", "netns", "exec", lb.ns(short), "sh", "-c", script)
	cmd.Env = append(os.Environ(), "DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("running avahi in %s: %v\n%s", short, err, out)
	}
	var v4, v6 string
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "v4: "); ok {
			v4 = rest
		}
		if rest, ok := strings.CutPrefix(line, "v6: "); ok {
			v6 = rest
		}
	}
	if f := strings.Fields(v4); len(f) != 2 || f[1] != "10.99.0.1" {
		t.Errorf("avahi-resolve-host-name -4: got %q, want heimwolke.local 10.99.0.1\n%s", v4, out)
	}
	f := strings.Fields(v6)
	if len(f) != 2 {
		t.Fatalf("avahi-resolve-host-name -6: got %q, want heimwolke.local and an address\n%s", v6, out)
	}
	if a, err := netip.ParseAddr(f[1]); err != nil || !a.Is6() || f[1] == "fd00:98::1" {
		t.Errorf("avahi-resolve-host-name -6: got %q, want an IPv6 address of link %s\n%s", v6, ifname, out)
	}
}
