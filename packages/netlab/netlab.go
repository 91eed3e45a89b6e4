// Package netlab builds a home network for tests out of Linux network
// namespaces: an "internet", a router with NAT, a firewall and Debian's
// miniupnpd (UPnP IGD, NAT-PMP, PCP), and the box on the router's LAN. It needs
// root and changes nothing outside the namespaces it creates.
package netlab

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

const sigterm = syscall.SIGTERM

// Interface names inside the namespaces. Each namespace has its own set of
// interfaces, so the fixed names never clash between tests.
const (
	// RouterWAN is the router's interface towards the internet namespace.
	RouterWAN = "wan"
	// RouterLAN is the router's interface towards the box.
	RouterLAN = "lan"
	// PeerInterface is the only interface of the internet and box namespaces.
	PeerInterface = "eth0"
)

// Addresses of a home network. The router's WAN address is not taken from the
// documentation ranges of RFC 5737 because miniupnpd 2.3.1 treats them as
// reserved and then rejects every mapping. Nothing leaves the namespaces, so
// the addresses never reach a real network.
var (
	defaultInternetV4 = netip.MustParseAddr("192.0.3.1")
	defaultWANv4      = netip.MustParseAddr("192.0.3.2")
	defaultLANv4      = netip.MustParsePrefix("192.168.178.1/24")
	defaultBoxV4      = netip.MustParseAddr("192.168.178.20")

	defaultInternetV6  = netip.MustParseAddr("2001:db8::1")
	defaultWANv6       = netip.MustParseAddr("2001:db8::2")
	defaultLANPrefixV6 = netip.MustParsePrefix("2001:db8:0:1::/64")
)

// Options change the router of a home network. The zero value gives a router
// with a public IPv4 address and miniupnpd offering UPnP IGD, NAT-PMP and PCP.
type Options struct {
	// NoUPnP turns off miniupnpd's UPnP IGD service (SSDP and SOAP).
	NoUPnP bool
	// IGDv1 makes miniupnpd describe itself as an Internet Gateway Device
	// v1 (force_igd_desc_v1), as older routers do.
	IGDv1 bool
	// NoNATPMP turns off NAT-PMP and PCP. miniupnpd 2.3.1 has one switch
	// (enable_natpmp) for both protocols.
	NoNATPMP bool
	// WANv4 is the router's IPv4 address on the internet side. The zero value
	// means 192.0.3.2. A private or shared address (100.64.0.0/10) makes the
	// router behave like one behind carrier-grade NAT, because miniupnpd
	// then rejects mappings. The internet namespace is always in the same
	// /24 network.
	WANv4 netip.Addr
	// DenyBox makes miniupnpd reject every mapping for the box, as a router
	// does for a device that may not open ports.
	DenyBox bool
	// MinLifetime is miniupnpd's min_lifetime for PCP mappings, in seconds.
	// Zero keeps miniupnpd's default of 120 seconds.
	MinLifetime int
}

// A Home is a running home network. Its namespaces, processes and files are
// removed by the test's cleanup. Methods that take no error result fail the
// test, so call them from the test's goroutine only.
type Home struct {
	// Internet, Router and Box are the names of the three namespaces, for
	// "ip netns exec" and Run.
	Internet, Router, Box string

	// InternetV4 and InternetV6 are the addresses of the internet namespace,
	// where StartInInternet's servers listen.
	InternetV4, InternetV6 netip.Addr
	// WANv6 is the router's IPv6 address towards the internet.
	WANv6 netip.Addr
	// LANv4 is the router's address and network on the LAN; its address is
	// the box's IPv4 default gateway.
	LANv4 netip.Prefix
	// LANv6 is the router's IPv6 address on the LAN, the box's IPv6 default
	// gateway.
	LANv6 netip.Addr
	// BoxV4 and BoxV6 are the box's first addresses. AddBoxIPv6 adds more.
	BoxV4, BoxV6 netip.Addr
	// LANPrefixV6 is the IPv6 prefix of the LAN that BoxV6 is in.
	LANPrefixV6 netip.Prefix

	// Dir contains the router's nftables and miniupnpd files.
	Dir string
	// MiniupnpdLog contains miniupnpd's output; it is empty when both
	// Options.NoUPnP and Options.NoNATPMP are set, because then miniupnpd
	// does not run.
	MiniupnpdLog *testpeer.Buffer

	t    testing.TB
	opts Options

	mu    sync.Mutex
	wanV4 netip.Addr
}

// NewHome builds a home network with the default Options.
func NewHome(t testing.TB) *Home {
	t.Helper()
	return NewHomeWith(t, Options{})
}

// NewHomeWith builds a home network whose router is set up by opts. It skips
// the test without root, ip, nft or miniupnpd (or fails it under CI=true).
func NewHomeWith(t testing.TB, opts Options) *Home {
	t.Helper()
	testpeer.RequireRoot(t, "network namespaces for the home network")
	testpeer.Require(t, "ip", "iproute2")
	testpeer.Require(t, "nft", "nftables")
	testpeer.Require(t, "miniupnpd", "miniupnpd-nftables")

	if !opts.WANv4.IsValid() {
		opts.WANv4 = defaultWANv4
	}
	if !opts.WANv4.Is4() {
		t.Fatalf("netlab: Options.WANv4 %s is not an IPv4 address", opts.WANv4)
	}

	prefix := "hw" + randomHex(t, 4)
	h := &Home{
		Internet:     prefix + "-inet",
		Router:       prefix + "-rtr",
		Box:          prefix + "-box",
		InternetV4:   internetV4For(opts.WANv4),
		InternetV6:   defaultInternetV6,
		WANv6:        defaultWANv6,
		LANv4:        defaultLANv4,
		LANv6:        hostAddr(defaultLANPrefixV6, 1),
		BoxV4:        defaultBoxV4,
		BoxV6:        hostAddr(defaultLANPrefixV6, 2),
		LANPrefixV6:  defaultLANPrefixV6,
		Dir:          t.TempDir(),
		MiniupnpdLog: &testpeer.Buffer{},
		t:            t,
		opts:         opts,
		wanV4:        opts.WANv4,
	}

	h.createNamespaces()
	h.wireLinks()
	h.configureRouter()
	if !opts.NoUPnP || !opts.NoNATPMP {
		h.startMiniupnpd()
	}
	return h
}

// WANv4 returns the router's current IPv4 address on the internet side.
func (h *Home) WANv4() netip.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.wanV4
}

// internetV4For returns the internet namespace's address: .1 in the /24 of the
// router's WAN address, or .2 when the router itself has .1.
func internetV4For(wan netip.Addr) netip.Addr {
	b := wan.As4()
	if b[3] == 1 {
		b[3] = 2
	} else {
		b[3] = 1
	}
	return netip.AddrFrom4(b)
}

// hostAddr returns the address with the interface identifier id in prefix.
func hostAddr(prefix netip.Prefix, id byte) netip.Addr {
	b := prefix.Masked().Addr().As16()
	b[15] = id
	return netip.AddrFrom16(b)
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("netlab: reading random namespace name: %v", err)
	}
	return hex.EncodeToString(b)
}

// createNamespaces adds the three namespaces and registers their removal
// before anything else can fail.
func (h *Home) createNamespaces() {
	for _, ns := range []string{h.Internet, h.Router, h.Box} {
		h.ip("netns", "add", ns)
		h.t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				h.t.Errorf("netlab: deleting namespace %s: %v: %s", ns, err, out)
			}
		})
		h.ip("-n", ns, "link", "set", "lo", "up")

		// Duplicate address detection would hold the link-local addresses
		// of the new interfaces back for a second or two, and with them
		// neighbour discovery for the first packets.
		h.setSysctl(ns, "net/ipv6/conf/default/accept_dad", "0")
	}
}

// wireLinks connects the namespaces with two veth pairs, addresses them and
// adds the routes. The veth pairs are created inside the router namespace,
// so no interface ever appears in the host's namespace.
func (h *Home) wireLinks() {
	h.ip("-n", h.Router, "link", "add", RouterWAN, "type", "veth", "peer", "name", PeerInterface, "netns", h.Internet)
	h.ip("-n", h.Router, "link", "add", RouterLAN, "type", "veth", "peer", "name", PeerInterface, "netns", h.Box)

	// The WAN link uses /32 addresses with host routes, so that ChangeWANv4
	// can move the router to any address without renumbering the internet.
	h.ip("-n", h.Internet, "addr", "add", h.InternetV4.String()+"/24", "dev", PeerInterface)
	h.ip("-n", h.Internet, "-6", "addr", "add", h.InternetV6.String()+"/64", "dev", PeerInterface, "nodad")
	h.ip("-n", h.Internet, "link", "set", PeerInterface, "up")
	h.ip("-n", h.Router, "addr", "add", h.wanV4.String()+"/32", "dev", RouterWAN)
	h.ip("-n", h.Router, "-6", "addr", "add", h.WANv6.String()+"/64", "dev", RouterWAN, "nodad")
	h.ip("-n", h.Router, "link", "set", RouterWAN, "up")
	h.ip("-n", h.Router, "route", "add", h.InternetV4.String(), "dev", RouterWAN)
	h.ip("-n", h.Router, "route", "add", "default", "via", h.InternetV4.String(), "dev", RouterWAN)
	h.ip("-n", h.Router, "-6", "route", "add", "default", "via", h.InternetV6.String(), "dev", RouterWAN)
	h.ip("-n", h.Internet, "route", "add", h.wanV4.String()+"/32", "dev", PeerInterface)
	h.ip("-n", h.Internet, "-6", "route", "add", h.LANPrefixV6.String(), "via", h.WANv6.String())

	h.ip("-n", h.Router, "addr", "add", h.LANv4.String(), "dev", RouterLAN)
	h.ip("-n", h.Router, "-6", "addr", "add", h.LANv6.String()+"/64", "dev", RouterLAN, "nodad")
	h.ip("-n", h.Router, "link", "set", RouterLAN, "up")
	h.ip("-n", h.Box, "addr", "add", netip.PrefixFrom(h.BoxV4, h.LANv4.Bits()).String(), "dev", PeerInterface)
	h.ip("-n", h.Box, "-6", "addr", "add", h.BoxV6.String()+"/64", "dev", PeerInterface, "nodad")
	h.ip("-n", h.Box, "link", "set", PeerInterface, "up")
	h.ip("-n", h.Box, "route", "add", "default", "via", h.LANv4.Addr().String())
	h.ip("-n", h.Box, "-6", "route", "add", "default", "via", h.LANv6.String())
}

// ip runs ip(8) with args and fails the test when it fails.
func (h *Home) ip(args ...string) {
	h.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		h.t.Fatalf("netlab: ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Run runs argv inside the namespace ns and returns its combined output. It
// fails the test when the program fails.
func (h *Home) Run(ns string, argv ...string) string {
	h.t.Helper()
	out, err := h.Command(ns, argv...).CombinedOutput()
	if err != nil {
		h.t.Fatalf("netlab: running %s in %s: %v: %s", strings.Join(argv, " "), ns, err, out)
	}
	return string(out)
}

// Command returns a command that runs argv inside the namespace ns, for
// programs whose failure the test expects or whose output it streams.
func (h *Home) Command(ns string, argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
}

// Process is a program that StartInInternet started.
type Process struct {
	Cmd *exec.Cmd
	// Output contains the program's standard output and standard error.
	Output *testpeer.Buffer
}

// StartInInternet starts argv in the internet namespace, for example an
// authoritative DNS server that listens on InternetV4. The test's cleanup
// stops it with SIGTERM, then SIGKILL after five seconds.
func (h *Home) StartInInternet(argv ...string) *Process {
	h.t.Helper()
	p := &Process{Cmd: h.Command(h.Internet, argv...), Output: &testpeer.Buffer{}}
	p.Cmd.Stdout = p.Output
	p.Cmd.Stderr = p.Output
	if err := p.Cmd.Start(); err != nil {
		h.t.Fatalf("netlab: starting %s in %s: %v", strings.Join(argv, " "), h.Internet, err)
	}
	h.t.Cleanup(func() { stopProcess(p.Cmd) })
	return p
}

// stopProcess ends cmd with SIGTERM and waits; a program that is still
// running after five seconds gets SIGKILL.
func stopProcess(cmd *exec.Cmd) {
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	cmd.Process.Signal(sigterm)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// ChangeWANv4 moves the router's WAN address to addr, as a provider does when
// it hands out a new dynamic address. miniupnpd reads the address of its
// external interface for every request and reports the new one.
func (h *Home) ChangeWANv4(addr netip.Addr) {
	h.t.Helper()
	if !addr.Is4() {
		h.t.Fatalf("netlab: ChangeWANv4(%s): not an IPv4 address", addr)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.wanV4
	if addr == old {
		return
	}

	// Add before delete: the kernel flushes the routes of an interface that
	// loses its last IPv4 address.
	h.ip("-n", h.Router, "addr", "add", addr.String()+"/32", "dev", RouterWAN)
	h.ip("-n", h.Router, "addr", "del", old.String()+"/32", "dev", RouterWAN)
	h.ip("-n", h.Internet, "route", "add", addr.String()+"/32", "dev", PeerInterface)
	h.ip("-n", h.Internet, "route", "del", old.String()+"/32", "dev", PeerInterface)
	h.wanV4 = addr
}

// AddBoxIPv6 gives the box an address in the /64 prefix (interface identifier
// ::2) and the router one (::1), and routes the prefix from the internet to
// the router, as after a prefix delegation. It returns the box's address.
func (h *Home) AddBoxIPv6(prefix netip.Prefix) netip.Addr {
	h.t.Helper()
	prefix = h.checkPrefix(prefix)
	box := hostAddr(prefix, 2)
	h.ip("-n", h.Router, "-6", "addr", "add", hostAddr(prefix, 1).String()+"/64", "dev", RouterLAN, "nodad")
	h.ip("-n", h.Box, "-6", "addr", "add", box.String()+"/64", "dev", PeerInterface, "nodad")
	h.ip("-n", h.Internet, "-6", "route", "add", prefix.String(), "via", h.WANv6.String())
	return box
}

// RemoveBoxIPv6 undoes AddBoxIPv6 for prefix, as when the provider withdraws
// the old prefix.
func (h *Home) RemoveBoxIPv6(prefix netip.Prefix) {
	h.t.Helper()
	prefix = h.checkPrefix(prefix)
	h.ip("-n", h.Box, "-6", "addr", "del", hostAddr(prefix, 2).String()+"/64", "dev", PeerInterface)
	h.ip("-n", h.Router, "-6", "addr", "del", hostAddr(prefix, 1).String()+"/64", "dev", RouterLAN)
	h.ip("-n", h.Internet, "-6", "route", "del", prefix.String(), "via", h.WANv6.String())
}

func (h *Home) checkPrefix(prefix netip.Prefix) netip.Prefix {
	h.t.Helper()
	if !prefix.Addr().Is6() || prefix.Bits() != 64 {
		h.t.Fatalf("netlab: IPv6 prefix %s is not a /64", prefix)
	}
	return prefix.Masked()
}

// String describes the network for test logs.
func (h *Home) String() string {
	return fmt.Sprintf("internet %s (%s, %s), router %s (WAN %s, %s; LAN %s, %s), box %s (%s, %s)",
		h.Internet, h.InternetV4, h.InternetV6,
		h.Router, h.WANv4(), h.WANv6, h.LANv4, h.LANv6,
		h.Box, h.BoxV4, h.BoxV6)
}
