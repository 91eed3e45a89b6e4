package rrconv

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"
)

func TestRoundTrip(t *testing.T) {
	const zone = "example.org."
	long := strings.Repeat("0123456789", 30)
	tests := []struct {
		in   libdns.Record
		want string // presentation RDATA
	}{
		{libdns.Address{Name: "www", TTL: time.Minute, IP: netip.MustParseAddr("192.0.2.1")}, "192.0.2.1"},
		{libdns.Address{Name: "@", TTL: time.Minute, IP: netip.MustParseAddr("2001:db8::1")}, "2001:db8::1"},
		{libdns.TXT{Name: "_acme-challenge", TTL: time.Minute, Text: `a "quoted" \ text é`}, `"a \"quoted\" \\ text \195\169"`},
		{libdns.TXT{Name: "long", TTL: time.Minute, Text: long}, `"` + long[:255] + `" "` + long[255:] + `"`},
		{libdns.MX{Name: "@", TTL: time.Hour, Preference: 10, Target: "mail.example.org."}, "10 mail.example.org."},
		{libdns.SRV{Service: "imaps", Transport: "tcp", Name: "@", TTL: time.Hour, Priority: 0, Weight: 1, Port: 993, Target: "mail.example.org."}, "0 1 993 mail.example.org."},
		{libdns.CAA{Name: "@", TTL: time.Hour, Tag: "issue", Value: "letsencrypt.org"}, `0 issue "letsencrypt.org"`},
		{libdns.RR{Name: "_443._tcp.www", TTL: time.Hour, Type: "TLSA", Data: "3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}, "3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
	}
	for _, tt := range tests {
		in := tt.in.RR()
		got, err := Presentation(zone, tt.in)
		if err != nil {
			t.Fatalf("Presentation(%v) failed: %v", in, err)
		}
		if got != tt.want {
			t.Errorf("Presentation(%v) = %s, want %s", in, got, tt.want)
		}

		back, err := ParsePresentation(zone, in.Name, in.Type, in.TTL, got)
		if err != nil {
			t.Fatalf("ParsePresentation(%s) failed: %v", got, err)
		}
		if back.RR() != in {
			t.Errorf("ParsePresentation(%s) = %+v, want %+v", got, back.RR(), in)
		}
	}
}

func TestFromRRTypes(t *testing.T) {
	rr, err := dns.NewRR("_imaps._tcp.example.org. 60 IN SRV 0 1 993 mail.example.org.")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := FromRR("example.org.", rr)
	if err != nil {
		t.Fatal(err)
	}
	srv, ok := rec.(libdns.SRV)
	if !ok {
		t.Fatalf("FromRR(SRV) returned %T, want libdns.SRV", rec)
	}
	if srv.Service != "imaps" || srv.Transport != "tcp" || srv.Name != "@" || srv.Port != 993 {
		t.Errorf("FromRR(SRV) = %+v, want service imaps, transport tcp, name @, port 993", srv)
	}
}

func TestRelativeData(t *testing.T) {
	got, err := Presentation("example.org", libdns.MX{Name: "@", Preference: 10, Target: "mail"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "10 mail.example.org."; got != want {
		t.Errorf("Presentation(MX with relative target) = %s, want %s", got, want)
	}
}

func TestInvalidRecords(t *testing.T) {
	for _, rec := range []libdns.Record{
		libdns.RR{Name: "", Type: "A", Data: "192.0.2.1"},
		libdns.RR{Name: "www", Type: "NOPE", Data: "x"},
		libdns.RR{Name: "www", Type: "A", Data: ""},
		libdns.RR{Name: "www", Type: "A", Data: "not-an-address"},
		libdns.RR{Name: "www", Type: "MX", Data: "ten mail"},
	} {
		if _, err := ToRR("example.org.", rec); err == nil {
			t.Errorf("ToRR(%+v) succeeded, want an error", rec)
		}
	}
}

func TestRelativeName(t *testing.T) {
	tests := []struct{ name, zone, want string }{
		{"example.org.", "example.org.", "@"},
		{"WWW.Example.org.", "example.org.", "WWW"},
		{"a.b.example.org", "example.org", "a.b"},
		{"fooexample.org.", "example.org.", "fooexample.org."},
	}
	for _, tt := range tests {
		if got := RelativeName(tt.name, tt.zone); got != tt.want {
			t.Errorf("RelativeName(%q, %q) = %q, want %q", tt.name, tt.zone, got, tt.want)
		}
	}
}

// FuzzTXT checks that any text survives SplitTXT, packing into the wire
// format, unpacking and JoinTXT unchanged.
func FuzzTXT(f *testing.F) {
	for _, s := range []string{"", `\`, `"`, `\065`, "\x00\xff", strings.Repeat("x", 600)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		rr := &dns.TXT{Hdr: dns.RR_Header{Name: "a.example.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: SplitTXT(text)}
		buf := make([]byte, 70000)
		n, err := dns.PackRR(rr, buf, 0, nil, false)
		if err != nil {
			if len(text) > 60000 {
				return
			}
			t.Fatalf("packing %q: %v", text, err)
		}
		back, _, err := dns.UnpackRR(buf[:n], 0)
		if err != nil {
			t.Fatalf("unpacking %q: %v", text, err)
		}
		if got := JoinTXT(back.(*dns.TXT).Txt); got != text {
			t.Errorf("round trip of %q = %q", text, got)
		}
	})
}

// FuzzParsePresentation checks that record data from a provider's API,
// which is untrusted input, never panics the parser, and that what it
// accepts converts back to the same record.
func FuzzParsePresentation(f *testing.F) {
	for _, seed := range [][2]string{
		{"TXT", `"a" "b\"c"`}, {"MX", "10 mail"}, {"SRV", "0 1 993 mail.example.org."},
		{"CAA", `0 issue "letsencrypt.org"`}, {"TLSA", "3 1 1 abcd"}, {"A", "192.0.2.1"}, {"TXT", `"\0"`},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, typ, data string) {
		rec, err := ParsePresentation("example.org.", "www", typ, time.Minute, data)
		if err != nil {
			return
		}
		if _, err := ToRR("example.org.", rec); err != nil {
			t.Errorf("ParsePresentation(%s, %q) returned %+v, which ToRR rejects: %v", typ, data, rec.RR(), err)
		}
	})
}
