package mdns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// This file builds the test network: network namespaces joined by veth
// pairs, the responder running as a helper process inside one of them, and
// mDNS client sockets inside the others.

const (
	helperEnv         = "HEIMWOLKE_MDNS_HELPER"
	helperHostnameEnv = "HEIMWOLKE_MDNS_HOSTNAME"
	helperRescanEnv   = "HEIMWOLKE_MDNS_RESCAN"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(runHelper())
	}
	os.Exit(m.Run())
}

// runHelper runs Serve in a process that the test started inside a network
// namespace, until SIGTERM.
func runHelper() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rescan, _ := time.ParseDuration(os.Getenv(helperRescanEnv))
	err := Serve(ctx, Options{Hostname: os.Getenv(helperHostnameEnv), Logger: log, RescanInterval: rescan})
	if err != nil {
		log.Error("serve failed", "err", err)
		return 1
	}
	return 0
}

// lab is a set of network namespaces that a test creates and removes.
type lab struct {
	t      *testing.T
	prefix string
}

func newLab(t *testing.T) *lab {
	testpeer.RequireRoot(t, "creating network namespaces")
	testpeer.Require(t, "ip", "iproute2")
	return &lab{t: t, prefix: fmt.Sprintf("hwmdns%d", os.Getpid())}
}

// ns returns the full name of the lab's namespace short.
func (lb *lab) ns(short string) string { return lb.prefix + short }

// addNamespace creates a namespace without duplicate address detection, so
// that IPv6 addresses are usable at once, and with its loopback up.
func (lb *lab) addNamespace(short string) {
	name := lb.ns(short)
	lb.run("ip", "netns", "add", name)
	lb.t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	lb.run("ip", "netns", "exec", name, "sysctl", "-qw",
		"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	lb.run("ip", "-n", name, "link", "set", "lo", "up")
}

// end is one side of a veth pair.
type end struct {
	ns, ifname string
	addrs      []string // with prefix length
}

// addVeth joins two namespaces with a veth pair and gives both ends their
// addresses. The ends stay down when up is false.
func (lb *lab) addVeth(a, b end, up bool) {
	lb.run("ip", "link", "add", a.ifname, "netns", lb.ns(a.ns), "type", "veth",
		"peer", "name", b.ifname, "netns", lb.ns(b.ns))
	for _, e := range []end{a, b} {
		for _, addr := range e.addrs {
			lb.run("ip", "-n", lb.ns(e.ns), "addr", "add", addr, "dev", e.ifname)
		}
		lb.run("ip", "-n", lb.ns(e.ns), "link", "set", e.ifname, "multicast", "on")
		if up {
			lb.run("ip", "-n", lb.ns(e.ns), "link", "set", e.ifname, "up")
		}
	}
}

func (lb *lab) run(name string, args ...string) string {
	lb.t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		lb.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inNamespace runs fn on a new OS thread that has joined the namespace.
// The thread is never handed back to the Go scheduler, so no other
// goroutine runs in the namespace; sockets that fn opens stay in it.
func (lb *lab) inNamespace(short string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + lb.ns(short))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("joining namespace %s: %w", short, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// helper is a responder process running inside a namespace.
type helper struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan error
}

type syncBuffer = testpeer.Buffer

// startResponder starts the test binary as a responder in the namespace.
func (lb *lab) startResponder(short, hostname string) *helper {
	t := lb.t
	cmd := exec.Command("ip", "netns", "exec", lb.ns(short), os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperHostnameEnv+"="+hostname, helperRescanEnv+"=1s")
	h := &helper{cmd: cmd, log: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout = h.log
	cmd.Stderr = h.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting responder in %s: %v", short, err)
	}
	go func() { h.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-h.done
		}
		if t.Failed() {
			t.Logf("responder log (%s):\n%s", short, h.log)
		}
	})
	return h
}

// stop sends SIGTERM and waits for the responder to exit.
func (h *helper) stop(t *testing.T) {
	t.Helper()
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-h.done:
		h.done <- err
		if err != nil {
			t.Errorf("responder exit: got %v, want success", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("responder still running 10 s after SIGTERM")
	}
}

// waitLog waits until the responder's log contains substr.
func (h *helper) waitLog(t *testing.T, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(h.log.String(), substr) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("responder log has no %q after %v", substr, timeout)
}

// client is an mDNS querier on one link of a namespace. group receives what
// is multicast on the link; unicast, bound to the client's own address and
// port 5353, sends queries and receives unicast responses.
type client struct {
	group   *net.UDPConn
	unicast *net.UDPConn
	dest    netip.AddrPort
}

// openClient opens a client in the namespace on ifname, with self as the
// client's own address and groupAddr as the mDNS group.
func (lb *lab) openClient(short, ifname string, self, groupAddr netip.Addr) *client {
	t := lb.t
	c := &client{}
	err := lb.inNamespace(short, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		network, zone := "udp4", ""
		if groupAddr.Is6() {
			network, zone = "udp6", ifname
		}
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var optErr error
			rc.Control(func(fd uintptr) {
				optErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			})
			return optErr
		}}
		c.dest = netip.AddrPortFrom(groupAddr.WithZone(zone), port)
		// The group socket binds the group address, so it receives no
		// unicast packets.
		pc, err := lc.ListenPacket(context.Background(), network, c.dest.String())
		if err != nil {
			return err
		}
		c.group = pc.(*net.UDPConn)
		if err := joinForTest(c.group, ifi, groupAddr); err != nil {
			return err
		}
		pc, err = lc.ListenPacket(context.Background(), network, netip.AddrPortFrom(self, port).String())
		if err != nil {
			return err
		}
		c.unicast = pc.(*net.UDPConn)
		// Keep the client's own queries out of its group socket.
		return setLoop(c.unicast, groupAddr.Is4(), false)
	})
	if err != nil {
		t.Fatalf("opening mDNS client in %s on %s: %v", short, ifname, err)
	}
	t.Cleanup(func() {
		c.group.Close()
		c.unicast.Close()
	})
	return c
}

func joinForTest(conn *net.UDPConn, ifi *net.Interface, groupAddr netip.Addr) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var joinErr error
	err = rc.Control(func(fd uintptr) {
		if groupAddr.Is4() {
			joinErr = unix.SetsockoptIPMreqn(int(fd), unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP,
				&unix.IPMreqn{Multiaddr: groupAddr.As4(), Ifindex: int32(ifi.Index)})
			return
		}
		joinErr = unix.SetsockoptIPv6Mreq(int(fd), unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP,
			&unix.IPv6Mreq{Multiaddr: groupAddr.As16(), Interface: uint32(ifi.Index)})
	})
	return errors.Join(err, joinErr)
}

func setLoop(conn *net.UDPConn, v4, on bool) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	value := 0
	if on {
		value = 1
	}
	var optErr error
	err = rc.Control(func(fd uintptr) {
		if v4 {
			optErr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, value)
			return
		}
		optErr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, value)
	})
	return errors.Join(err, optErr)
}

// drain drops the packets that the client's sockets received so far.
func (c *client) drain() {
	collect(c.group, 50*time.Millisecond, nil)
	collect(c.unicast, 10*time.Millisecond, nil)
}

// query drops what the client received so far, then sends msg from the
// client's unicast socket to the mDNS group.
func (c *client) query(t *testing.T, msg *dns.Msg) {
	t.Helper()
	c.drain()
	data, err := msg.Pack()
	if err != nil {
		t.Fatalf("packing query: %v", err)
	}
	c.sendRaw(t, data)
}

func (c *client) sendRaw(t *testing.T, data []byte) {
	t.Helper()
	if _, err := c.unicast.WriteToUDPAddrPort(data, c.dest); err != nil {
		t.Fatalf("sending to %s: %v", c.dest, err)
	}
}

// received is one packet that a client read.
type received struct {
	msg  *dns.Msg
	from netip.AddrPort
	at   time.Time
}

// collect reads DNS messages from conn until d has passed or until done
// returns true for the messages read so far. Packets that do not parse are
// skipped.
func collect(conn *net.UDPConn, d time.Duration, done func([]received) bool) []received {
	var got []received
	deadline := time.Now().Add(d)
	buf := make([]byte, 65536)
	for time.Now().Before(deadline) {
		conn.SetReadDeadline(deadline)
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		msg := &dns.Msg{}
		if msg.Unpack(buf[:n]) != nil {
			continue
		}
		got = append(got, received{msg: msg, from: from, at: time.Now()})
		if done != nil && done(got) {
			break
		}
	}
	return got
}

// responsesFor returns the responses among got that carry a record named
// name.
func responsesFor(got []received, name string) []received {
	var out []received
	for _, r := range got {
		if r.msg.Response && hasName(r.msg, name) {
			out = append(out, r)
		}
	}
	return out
}

func hasName(msg *dns.Msg, name string) bool {
	for _, rr := range append(append([]dns.RR{}, msg.Answer...), msg.Extra...) {
		if strings.EqualFold(rr.Header().Name, name) {
			return true
		}
	}
	return false
}
