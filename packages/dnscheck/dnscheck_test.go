package dnscheck

import (
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/heimwolke/heimwolke/packages/dnsprovider/dnstest"
)

const zone = "example.test."

const records = `www IN A 192.0.2.1
www IN AAAA 2001:db8::1
@ IN MX 10 mail
_acme-challenge IN TXT "token one"
`

var (
	wwwA       = libdns.Address{Name: "www", IP: netip.MustParseAddr("192.0.2.1")}
	wwwOldA    = libdns.Address{Name: "www", IP: netip.MustParseAddr("192.0.2.99")}
	wwwAAAA    = libdns.Address{Name: "www", IP: netip.MustParseAddr("2001:db8::1")}
	mx         = libdns.MX{Name: "@", Preference: 10, Target: "mail.example.test."}
	challenge  = libdns.TXT{Name: "_acme-challenge", Text: "token one"}
	absentTXT  = libdns.TXT{Name: "nothing", Text: "x"}
	absentName = libdns.Address{Name: "nowhere", IP: netip.MustParseAddr("192.0.2.7")}
)

func checkStates(t *testing.T, got []Status, want []State) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d statuses, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].State != want[i] {
			t.Errorf("record %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestCheckGivenServer(t *testing.T) {
	s := dnstest.StartBIND(t, zone, records)
	r := Resolver{Servers: []string{s.Addr}, Timeout: 2 * time.Second}

	got, err := Check(t.Context(), r, "example.test", []libdns.Record{wwwA, wwwAAAA, mx, challenge, wwwOldA, absentTXT, absentName})
	if err != nil {
		t.Fatal(err)
	}
	checkStates(t, got, []State{Published, Published, Published, Published, Wrong, Missing, Missing})

	answers := got[4].Answers[s.Addr]
	if len(answers) != 1 || answers[0] != "192.0.2.1" {
		t.Errorf("got answers %v for the wrong A record, want [192.0.2.1]", answers)
	}
}

func TestCheckFindsServersFromNS(t *testing.T) {
	s := dnstest.StartBIND(t, zone, records)
	host, portText, _ := net.SplitHostPort(s.Addr)
	port, _ := strconv.Atoi(portText)
	// BIND is authoritative for the zone, so it also returns the NS
	// records and the address of ns1 (127.0.0.1) to a recursive query.
	r := Resolver{Recursive: s.Addr, Port: port, Timeout: 2 * time.Second}

	got, err := Check(t.Context(), r, zone, []libdns.Record{wwwA, absentTXT})
	if err != nil {
		t.Fatal(err)
	}
	checkStates(t, got, []State{Published, Missing})
	if _, ok := got[0].Answers[net.JoinHostPort(host, portText)]; !ok {
		t.Errorf("got answers from %v, want from %s", got[0].Answers, s.Addr)
	}
}

// TestCheckServersDisagree checks that a record that only one of two
// authoritative servers returns is not reported as published.
func TestCheckServersDisagree(t *testing.T) {
	bind := dnstest.StartBIND(t, zone, records)
	knot := dnstest.StartKnot(t, zone, "www IN A 192.0.2.99\n")
	r := Resolver{Servers: []string{bind.Addr, knot.Addr}, Timeout: 2 * time.Second}

	got, err := Check(t.Context(), r, zone, []libdns.Record{wwwA, challenge})
	if err != nil {
		t.Fatal(err)
	}
	checkStates(t, got, []State{Wrong, Missing})
	if a := got[0].Answers[knot.Addr]; len(a) != 1 || a[0] != "192.0.2.99" {
		t.Errorf("got Knot's answer %v, want [192.0.2.99]", a)
	}
}

func TestCheckUnreachableServer(t *testing.T) {
	// A UDP socket that never responds.
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	r := Resolver{Servers: []string{conn.LocalAddr().String()}, Timeout: 200 * time.Millisecond}
	got, err := Check(t.Context(), r, zone, []libdns.Record{wwwA})
	if err != nil {
		t.Fatal(err)
	}
	checkStates(t, got, []State{Unknown})
	if len(got[0].Errors) != 1 {
		t.Errorf("got errors %v, want one for the silent server", got[0].Errors)
	}
}

func TestCheckInvalidRecord(t *testing.T) {
	_, err := Check(t.Context(), Resolver{Servers: []string{"127.0.0.1:1"}}, zone, []libdns.Record{libdns.RR{Name: "x", Type: "A", Data: "not an address"}})
	if err == nil {
		t.Error("Check with an invalid A record succeeded, want an error")
	}
}
