package rfc2136

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/packages/dnsprovider/dnstest"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// updatesPerRun is the number of signed updates that each client sends in
// BenchmarkUpdate.
const updatesPerRun = 100

// BenchmarkUpdate compares the time per signed dynamic update of the
// Provider with BIND's nsupdate, both against one BIND server on loopback.
// Each update adds one TXT record and waits for the response; nsupdate
// sends all of its updates from one process.
func BenchmarkUpdate(b *testing.B) {
	nsupdate := testpeer.Require(b, "nsupdate", "bind9-dnsutils")
	s := dnstest.StartBIND(b, zone, "")
	p := provider(s)

	var ours, theirs time.Duration
	for i := 0; i < b.N; i++ {
		began := time.Now()
		for j := range updatesPerRun {
			_, err := p.AppendRecords(b.Context(), zone, []libdns.Record{
				libdns.TXT{Name: fmt.Sprintf("ours%d-%d", i, j), TTL: time.Minute, Text: "x"},
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		ours += time.Since(began)

		began = time.Now()
		runNsupdate(b, nsupdate, s, fmt.Sprintf("theirs%d", i))
		theirs += time.Since(began)

		last := fmt.Sprintf("theirs%d-%d.%s", i, updatesPerRun-1, s.Zone)
		if got := s.Query(b, last, dns.TypeTXT); len(got) != 1 {
			b.Fatalf("after nsupdate, got %d TXT records at %s, want 1", len(got), last)
		}
	}

	perOurs := float64(ours.Microseconds()) / float64(b.N*updatesPerRun) / 1000
	perTheirs := float64(theirs.Microseconds()) / float64(b.N*updatesPerRun) / 1000
	b.ReportMetric(perOurs, "heimwolke-ms/update")
	b.ReportMetric(perTheirs, "nsupdate-ms/update")
	b.ReportMetric(perOurs/perTheirs, "ratio")
}

// runNsupdate sends updatesPerRun updates over TCP with one nsupdate
// process.
func runNsupdate(b *testing.B, nsupdate string, s *dnstest.Server, prefix string) {
	host, port, _ := net.SplitHostPort(s.Addr)
	var script strings.Builder
	fmt.Fprintf(&script, "server %s %s\nzone %s\n", host, port, s.Zone)
	for j := range updatesPerRun {
		fmt.Fprintf(&script, "update add %s-%d.%s 60 TXT \"x\"\nsend\n", prefix, j, s.Zone)
	}
	cmd := exec.Command(nsupdate, "-v", "-y", s.Algorithm+":"+s.KeyName+":"+s.Secret)
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("nsupdate: %v\n%s", err, out)
	}
}

// transferRecords is the number of TXT records in the zone of
// BenchmarkTransfer.
const transferRecords = 2000

// BenchmarkTransfer compares GetRecords, a signed zone transfer (AXFR) with
// conversion to libdns records, with BIND's dig transferring the same zone
// with the same key and printing it.
func BenchmarkTransfer(b *testing.B) {
	dig := testpeer.Require(b, "dig", "bind9-dnsutils")
	var records strings.Builder
	for i := range transferRecords {
		fmt.Fprintf(&records, "r%d IN TXT \"record %d\"\n", i, i)
	}
	s := dnstest.StartBIND(b, zone, records.String())
	p := provider(s)
	host, port, _ := net.SplitHostPort(s.Addr)

	var ours, theirs time.Duration
	for i := 0; i < b.N; i++ {
		began := time.Now()
		recs, err := p.GetRecords(b.Context(), zone)
		if err != nil {
			b.Fatal(err)
		}
		ours += time.Since(began)
		if len(recs) < transferRecords {
			b.Fatalf("GetRecords returned %d records, want at least %d", len(recs), transferRecords)
		}

		began = time.Now()
		out, err := exec.Command(dig, "-p", port, "@"+host, "-y", s.Algorithm+":"+s.KeyName+":"+s.Secret, s.Zone, "AXFR").Output()
		if err != nil {
			b.Fatalf("dig: %v", err)
		}
		theirs += time.Since(began)
		if n := strings.Count(string(out), "\tTXT\t"); n != transferRecords {
			b.Fatalf("dig printed %d TXT records, want %d", n, transferRecords)
		}
	}

	perOurs := float64(ours.Microseconds()) / float64(b.N) / 1000
	perTheirs := float64(theirs.Microseconds()) / float64(b.N) / 1000
	b.ReportMetric(perOurs, "heimwolke-ms/transfer")
	b.ReportMetric(perTheirs, "dig-ms/transfer")
	b.ReportMetric(perOurs/perTheirs, "ratio")
}
