package netlab

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// routerRules is the router's firewall: IPv4 masquerading towards the WAN,
// and a forward policy of drop that lets through what the LAN sends out and
// the replies. Inbound traffic passes only through the chains that miniupnpd
// fills: port forwardings (prerouting_miniupnpd and the forward rules in
// miniupnpd) and IPv6 pinholes (miniupnpd). Table and chain names are those
// miniupnpd's configuration names.
const routerRules = `table inet heimwolke_router {
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "lan" oifname "wan" accept
		jump miniupnpd
	}
	chain miniupnpd {
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump prerouting_miniupnpd
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		jump postrouting_miniupnpd
		meta nfproto ipv4 oifname "wan" masquerade
	}
	chain prerouting_miniupnpd {
	}
	chain postrouting_miniupnpd {
	}
}
`

// RouterTable is the nftables table (family inet) that holds the router's
// firewall, NAT and miniupnpd's rules.
const RouterTable = "heimwolke_router"

// configureRouter turns on forwarding and loads the firewall.
func (h *Home) configureRouter() {
	h.t.Helper()
	h.setSysctl(h.Router, "net/ipv4/ip_forward", "1")
	h.setSysctl(h.Router, "net/ipv6/conf/all/forwarding", "1")

	path := filepath.Join(h.Dir, "router.nft")
	if err := os.WriteFile(path, []byte(routerRules), 0o600); err != nil {
		h.t.Fatalf("netlab: writing %s: %v", path, err)
	}
	h.Run(h.Router, "nft", "-f", path)
}

// miniupnpdConfig returns the configuration for miniupnpd 2.3.1 (nftables
// backend). The allow lines permit every port, but only to the client's own
// address (secure_mode), as a FRITZ!Box does for a device that may open
// ports by itself.
func (h *Home) miniupnpdConfig() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ext_ifname=%s\n", RouterWAN)
	fmt.Fprintf(&b, "ext_ifname6=%s\n", RouterWAN)
	fmt.Fprintf(&b, "listening_ip=%s\n", RouterLAN)
	fmt.Fprintf(&b, "enable_upnp=%s\n", yesNo(!h.opts.NoUPnP))
	fmt.Fprintf(&b, "enable_natpmp=%s\n", yesNo(!h.opts.NoNATPMP))
	fmt.Fprintf(&b, "force_igd_desc_v1=%s\n", yesNo(h.opts.IGDv1))
	fmt.Fprintf(&b, "secure_mode=yes\n")
	fmt.Fprintf(&b, "system_uptime=yes\n")
	fmt.Fprintf(&b, "uuid=%s\n", randomUUID(h))
	fmt.Fprintf(&b, "lease_file=%s\n", filepath.Join(h.Dir, "miniupnpd.leases"))
	fmt.Fprintf(&b, "upnp_table_name=%s\n", RouterTable)
	fmt.Fprintf(&b, "upnp_nat_table_name=%s\n", RouterTable)
	fmt.Fprintf(&b, "upnp_forward_chain=miniupnpd\n")
	fmt.Fprintf(&b, "upnp_nat_chain=prerouting_miniupnpd\n")
	fmt.Fprintf(&b, "upnp_nat_postrouting_chain=postrouting_miniupnpd\n")
	if h.opts.MinLifetime > 0 {
		fmt.Fprintf(&b, "min_lifetime=%d\n", h.opts.MinLifetime)
	}
	if h.opts.DenyBox {
		fmt.Fprintf(&b, "deny 0-65535 %s/32 0-65535\n", h.BoxV4)
	}
	fmt.Fprintf(&b, "allow 1-65535 %s 1-65535\n", h.LANv4.Masked())
	fmt.Fprintf(&b, "deny 0-65535 0.0.0.0/0 0-65535\n")
	return b.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func randomUUID(h *Home) string {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		h.t.Fatalf("netlab: reading random UUID: %v", err)
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// startMiniupnpd starts miniupnpd in the foreground (-d) in the router
// namespace and waits until it listens. The test's cleanup stops it.
func (h *Home) startMiniupnpd() {
	h.t.Helper()
	conf := filepath.Join(h.Dir, "miniupnpd.conf")
	if err := os.WriteFile(conf, []byte(h.miniupnpdConfig()), 0o600); err != nil {
		h.t.Fatalf("netlab: writing %s: %v", conf, err)
	}

	cmd := h.Command(h.Router, "miniupnpd", "-f", conf, "-d", "-P", filepath.Join(h.Dir, "miniupnpd.pid"))
	cmd.Stdout = h.MiniupnpdLog
	cmd.Stderr = h.MiniupnpdLog
	if err := cmd.Start(); err != nil {
		h.t.Fatalf("netlab: starting miniupnpd: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	h.t.Cleanup(func() {
		cmd.Process.Signal(sigterm)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if h.t.Failed() {
			h.t.Logf("miniupnpd output:\n%s", withoutSendLines(h.MiniupnpdLog.String()))
		}
	})

	// miniupnpd logs the NAT-PMP/PCP line after the HTTP line, so the last
	// enabled service's line means it is ready.
	ready := "HTTP listening on port"
	if !h.opts.NoNATPMP {
		ready = "Listening for NAT-PMP/PCP traffic"
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(h.MiniupnpdLog.String(), ready) {
		select {
		case <-exited:
			h.t.Fatalf("netlab: miniupnpd exited during start: %v\n%s", waitErr, h.MiniupnpdLog)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("netlab: miniupnpd not ready after 10s, output:\n%s", h.MiniupnpdLog)
		}
	}
}

// withoutSendLines drops the debug lines that miniupnpd -d writes for every
// SSDP packet it sends, which would bury the rest of its output.
func withoutSendLines(log string) string {
	var b strings.Builder
	for line := range strings.Lines(log) {
		if !strings.Contains(line, "finalize_sendto()") {
			b.WriteString(line)
		}
	}
	return b.String()
}
