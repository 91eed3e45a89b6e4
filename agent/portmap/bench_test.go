package portmap

import (
	"strconv"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/netlab"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// The benchmarks map DefaultPorts on miniupnpd, once with the mapper and once
// with miniupnpc's client for the same protocol, and report the wall time of
// each from process start to the last mapping. Run them with
// go test -run '^$' -bench . -benchtime 1x ./agent/portmap/ as root.

func BenchmarkMapUPnP(b *testing.B) {
	h := netlab.NewHomeWith(b, netlab.Options{NoNATPMP: true})
	upnpc := testpeer.Require(b, "upnpc", "miniupnpc")

	for b.Loop() {
		ours := timeMapper(b, h, ProtocolUPnP)

		// upnpc -r maps each listed port to the box; -e sets the description.
		args := []string{upnpc, "-e", "upnpc", "-r"}
		for _, p := range DefaultPorts {
			args = append(args, strconv.Itoa(int(p)), "TCP")
		}
		start := time.Now()
		h.Run(h.Box, args...)
		theirs := time.Since(start)
		// DeletePortMappingRange removes them all with one discovery.
		h.Run(h.Box, upnpc, "-N", "1", "65535", "TCP")

		report(b, ours, theirs, "upnpc")
	}
}

func BenchmarkMapNATPMP(b *testing.B) {
	h := netlab.NewHomeWith(b, netlab.Options{NoUPnP: true})
	natpmpc := testpeer.Require(b, "natpmpc", "natpmpc")
	gateway := h.LANv4.Addr().String()

	for b.Loop() {
		ours := timeMapper(b, h, ProtocolNATPMP)

		// natpmpc maps one port per run.
		start := time.Now()
		for _, p := range DefaultPorts {
			port := strconv.Itoa(int(p))
			h.Run(h.Box, natpmpc, "-g", gateway, "-a", port, port, "tcp", "3600")
		}
		theirs := time.Since(start)
		for _, p := range DefaultPorts {
			port := strconv.Itoa(int(p))
			h.Run(h.Box, natpmpc, "-g", gateway, "-a", port, port, "tcp", "0")
		}

		report(b, ours, theirs, "natpmpc")
	}
}

// timeMapper starts the mapper for DefaultPorts in the box, returns the time
// until every port is mapped, and stops it, which removes the mappings.
func timeMapper(b *testing.B, h *netlab.Home, protocol Protocol) time.Duration {
	b.Helper()
	start := time.Now()
	c := startChild(b, h, helperConfig{Ports: DefaultPorts, Protocols: []Protocol{protocol}, RetryInterval: time.Minute})
	c.waitFor(b, time.Minute, "all ports mapped", func(l helperLine) bool {
		return allPorts(l.State, func(p PortState) bool { return p.Mapped })
	})
	elapsed := time.Since(start)
	c.stop(b)
	return elapsed
}

func report(b *testing.B, ours, theirs time.Duration, peer string) {
	b.ReportMetric(float64(ours.Milliseconds()), "ms/heimwolke")
	b.ReportMetric(float64(theirs.Milliseconds()), "ms/"+peer)
	b.ReportMetric(float64(ours)/float64(theirs), "heimwolke/"+peer)
}
