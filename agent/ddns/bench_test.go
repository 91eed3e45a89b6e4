package ddns

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/netlab"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// BenchmarkPrefixChange measures how long the AAAA record takes to follow a
// new IPv6 prefix on the box, for this loop and for Debian's ddclient, both
// running at once in the box namespace of one home network against one
// BIND. ddclient 3.10.0 sends only IPv4 addresses of its usev6 strategies
// to nsupdate, so it reads the address with its legacy "use=cmd" from ip(8).
// It polls every 60 seconds, its shortest daemon interval, so its latency
// depends on when in that interval the prefix changes. ddclient 3.10.0 also
// treated its first nsupdate of an IPv6 address as a failed attempt and
// skipped its next poll, so it took about two minutes in our runs.
func BenchmarkPrefixChange(b *testing.B) {
	dig := testpeer.Require(b, "dig", "bind9-dnsutils")
	ddclient := testpeer.Require(b, "ddclient", "ddclient")
	testpeer.Require(b, "nsupdate", "bind9-dnsutils")
	h := netlab.NewHome(b)

	settings := startZoneServer(b, h)
	settings.Gateway = h.LANv4.Addr().String()
	agentLog, _ := startBoxAgent(b, h, settings)
	ddclientLog := startDDClient(b, h, ddclient, settings)
	query := func(name string) func(string) string {
		return func(typ string) string {
			out, _ := h.Command(h.Internet, dig, "+short", "+norecurse", "+time=1", "+tries=1", "@"+h.InternetV4.String(), name, typ).Output()
			return strings.TrimSpace(string(out))
		}
	}
	ours, theirs := query("mail."+testZone), query("dd."+testZone)
	waitForRecord(b, ours, "AAAA", h.BoxV6.String(), 30*time.Second, agentLog)
	waitForRecord(b, theirs, "AAAA", h.BoxV6.String(), 30*time.Second, ddclientLog)

	for b.Loop() {
		newBox := h.AddBoxIPv6(netip.MustParsePrefix("2001:db8:0:2::/64"))
		h.Run(h.Box, "ip", "-6", "addr", "del", h.BoxV6.String()+"/64", "dev", netlab.PeerInterface)

		// ours follows within a second, so measuring it first does not
		// delay the measurement of ddclient, which takes up to a minute.
		oursTook := waitForRecord(b, ours, "AAAA", newBox.String(), time.Minute, agentLog)
		theirsTook := waitForRecord(b, theirs, "AAAA", newBox.String(), 2*time.Minute, ddclientLog)
		b.Logf("AAAA followed the new prefix: heimwolke after %v, ddclient after %v", oursTook, theirsTook)

		b.ReportMetric(oursTook.Seconds(), "s/heimwolke")
		b.ReportMetric(theirsTook.Seconds(), "s/ddclient")
		b.ReportMetric(theirsTook.Seconds()/oursTook.Seconds(), "ddclient/heimwolke")
	}
}

// startDDClient runs ddclient in the foreground inside the box namespace,
// updating dd.testZone's AAAA record from the box's interface, and stops it
// when the benchmark ends.
func startDDClient(b *testing.B, h *netlab.Home, ddclient string, settings boxAgentSettings) *testpeer.Buffer {
	b.Helper()
	dir := b.TempDir()
	conf := fmt.Sprintf(`daemon=60
foreground=yes
pid=%s
cache=%s
use=cmd
cmd='ip -6 -o addr show dev %s scope global'
protocol=nsupdate
server=%s
password=%s
zone=%s
ttl=60
dd.%s
`, filepath.Join(dir, "ddclient.pid"), filepath.Join(dir, "ddclient.cache"), netlab.PeerInterface,
		strings.TrimSuffix(settings.Server, ":53"), settings.KeyFile, strings.TrimSuffix(testZone, "."), strings.TrimSuffix(testZone, "."))
	path := filepath.Join(dir, "ddclient.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}

	cmd := h.Command(h.Box, ddclient, "-file", path, "-verbose", "-noquiet")
	output := &testpeer.Buffer{}
	cmd.Stdout, cmd.Stderr = output, output
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting ddclient: %v", err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return output
}
