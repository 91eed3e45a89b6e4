package netaddr

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// newNetns creates a network namespace with a veth pair "wan0" and "wan1"
// that is up, and removes it when the test ends. A veth pair works on
// kernels built without the dummy interface module.
func newNetns(t *testing.T) string {
	t.Helper()
	testpeer.RequireRoot(t, "creating a network namespace")
	testpeer.Require(t, "ip", "iproute2")

	name := fmt.Sprintf("hwnetaddr%d", os.Getpid())
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	run(t, "ip", "-n", name, "link", "add", "wan0", "type", "veth", "peer", "name", "wan1")
	run(t, "ip", "-n", name, "link", "set", "wan0", "up")
	run(t, "ip", "-n", name, "link", "set", "wan1", "up")
	return name
}

func run(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// inNetns calls f on a thread that has entered the namespace, so that the
// sockets f opens belong to it.
func inNetns(t *testing.T, name string, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()

	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatalf("entering namespace %s: %v", name, err)
	}
	defer func() {
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			panic(fmt.Sprintf("returning from namespace %s: %v", name, err))
		}
	}()
	f()
}

func lookupIn(t *testing.T, ns string) (netip.Addr, bool) {
	t.Helper()
	var (
		addr netip.Addr
		ok   bool
		err  error
	)
	inNetns(t, ns, func() { addr, ok, err = (&IPv6Finder{Interface: "wan0"}).Lookup() })
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	return addr, ok
}

func TestIPv6FinderInNamespace(t *testing.T) {
	ns := newNetns(t)

	if addr, ok := lookupIn(t, ns); ok {
		t.Fatalf("interface without addresses: got %v, want none", addr)
	}

	run(t, "ip", "-n", ns, "-6", "addr", "add", "2001:db8:1::10/64", "dev", "wan0", "nodad")
	run(t, "ip", "-n", ns, "-6", "addr", "add", "2001:db8:1::20/64", "dev", "wan0", "nodad", "preferred_lft", "0")
	run(t, "ip", "-n", ns, "-6", "addr", "add", "fd00::30/64", "dev", "wan0", "nodad")
	want := netip.MustParseAddr("2001:db8:1::10")
	if addr, ok := lookupIn(t, ns); !ok || addr != want {
		t.Errorf("after adding a global, a deprecated and a ULA address: got %v (ok %v), want %v", addr, ok, want)
	}

	// Creation stamps count hundredths of a second, so the next address
	// must come at least that much later to be newer.
	time.Sleep(20 * time.Millisecond)
	run(t, "ip", "-n", ns, "-6", "addr", "add", "2001:db8:2::10/64", "dev", "wan0", "nodad")
	want = netip.MustParseAddr("2001:db8:2::10")
	if addr, ok := lookupIn(t, ns); !ok || addr != want {
		t.Errorf("after a new prefix: got %v (ok %v), want %v", addr, ok, want)
	}
}

func TestWatchAddrsReportsWithinASecond(t *testing.T) {
	ns := newNetns(t)

	var (
		changes <-chan struct{}
		err     error
	)
	inNetns(t, ns, func() { changes, err = WatchAddrs(t.Context(), testLogger(t)) })
	if err != nil {
		t.Fatalf("WatchAddrs: %v", err)
	}

	for _, args := range [][]string{
		{"-6", "addr", "add", "2001:db8:1::10/64", "dev", "wan0", "nodad"},
		{"-4", "addr", "add", "192.0.2.10/24", "dev", "wan0"},
		{"-6", "addr", "del", "2001:db8:1::10/64", "dev", "wan0"},
	} {
		start := time.Now()
		run(t, append([]string{"ip", "-n", ns}, args...)...)
		select {
		case <-changes:
			t.Logf("ip %s reported after %v", strings.Join(args, " "), time.Since(start))
		case <-time.After(time.Second):
			t.Fatalf("ip %s: no change reported within a second", strings.Join(args, " "))
		}
		drain(changes)
	}
}

// drain empties a pending report that a second announcement of the same
// change (IPv6 sends one when DAD ends) left behind.
func drain(changes <-chan struct{}) {
	time.Sleep(50 * time.Millisecond)
	select {
	case <-changes:
	default:
	}
}

func TestWatchAddrsClosesOnCancel(t *testing.T) {
	ns := newNetns(t)
	ctx, cancel := context.WithCancel(t.Context())

	var (
		changes <-chan struct{}
		err     error
	)
	inNetns(t, ns, func() { changes, err = WatchAddrs(ctx, testLogger(t)) })
	if err != nil {
		t.Fatalf("WatchAddrs: %v", err)
	}
	cancel()

	select {
	case _, open := <-changes:
		if open {
			t.Errorf("got a change after cancel, want the channel closed")
		}
	case <-time.After(time.Second):
		t.Errorf("channel still open a second after cancel")
	}
}
