package mdns

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const host = "heimwolke.local."

var (
	querier = netip.MustParseAddrPort("10.99.0.2:5353")
	legacy  = netip.MustParseAddrPort("10.99.0.2:40000")
)

// newTestResponder returns a responder with one ready link and its IPv4
// socket, which has no network connection: handle only returns packets.
func newTestResponder(t *testing.T, addrs ...string) (*responder, *socket) {
	t.Helper()
	r, err := newResponder(Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) == 0 {
		addrs = []string{"10.99.0.1/24", "fd00:99::1/64"}
	}
	l := &link{ifi: net.Interface{Index: 7, Name: "test0"}}
	for _, a := range addrs {
		l.addrs = append(l.addrs, netip.MustParsePrefix(a))
	}
	l.ready.Store(true)
	r.links[l.ifi.Index] = l
	r.updateOwn()
	return r, newSocket(l, nil, group4)
}

func packMsg(t *testing.T, msg *dns.Msg) []byte {
	t.Helper()
	data, err := msg.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func unpack(t *testing.T, out outgoing) *dns.Msg {
	t.Helper()
	msg := &dns.Msg{}
	if err := msg.Unpack(out.data); err != nil {
		t.Fatalf("unpacking response: %v", err)
	}
	return msg
}

func TestHandleLegacyQuery(t *testing.T) {
	r, s := newTestResponder(t)
	query := question("HeimWolke.local.", dns.TypeA, false)
	query.Id = 777
	out := r.handle(s, packMsg(t, query), legacy, group4, time.Now())
	if len(out) != 1 {
		t.Fatalf("packets: got %d, want 1", len(out))
	}
	if out[0].to != legacy {
		t.Errorf("destination: got %v, want the querier %v", out[0].to, legacy)
	}
	msg := unpack(t, out[0])
	if msg.Id != 777 || len(msg.Question) != 1 || msg.Question[0].Name != "HeimWolke.local." {
		t.Errorf("header: got id %d questions %v, want id 777 and the question repeated", msg.Id, msg.Question)
	}
	if len(msg.Answer) != 1 {
		t.Fatalf("answers: got %v, want one A record", msg.Answer)
	}
	h := msg.Answer[0].Header()
	if h.Class != dns.ClassINET || h.Ttl != legacyTTL {
		t.Errorf("record: got class %#x TTL %d, want class 1 TTL 10", h.Class, h.Ttl)
	}
}

func TestHandleLegacyQueryForMissingType(t *testing.T) {
	r, s := newTestResponder(t, "10.99.0.1/24")
	out := r.handle(s, packMsg(t, question(host, dns.TypeAAAA, false)), legacy, group4, time.Now())
	if len(out) != 1 {
		t.Fatalf("packets: got %d, want 1 empty response", len(out))
	}
	if msg := unpack(t, out[0]); len(msg.Answer) != 0 || msg.Rcode != dns.RcodeSuccess {
		t.Errorf("response: got rcode %d answers %v, want NOERROR without answers", msg.Rcode, msg.Answer)
	}
}

func TestHandleQueryMulticast(t *testing.T) {
	r, s := newTestResponder(t)
	out := r.handle(s, packMsg(t, question(host, dns.TypeA, false)), querier, group4, time.Now())
	if len(out) != 1 || out[0].to != s.group {
		t.Fatalf("packets: got %v, want one to %v", out, s.group)
	}
	msg := unpack(t, out[0])
	if msg.Id != 0 || len(msg.Question) != 0 {
		t.Errorf("header: got id %d and %d questions, want id 0 and none", msg.Id, len(msg.Question))
	}
	if got := addresses(msg.Answer); !slices.Equal(got, []string{"10.99.0.1"}) {
		t.Errorf("answer: got %v, want [10.99.0.1]", got)
	}
	if got := addresses(msg.Extra); !slices.Equal(got, []string{"fd00:99::1"}) {
		t.Errorf("additional: got %v, want [fd00:99::1]", got)
	}
	if h := msg.Answer[0].Header(); h.Class != dns.ClassINET|cacheFlush || h.Ttl != hostTTL {
		t.Errorf("record: got class %#x TTL %d, want class 0x8001 TTL 120", h.Class, h.Ttl)
	}
}

func TestHandleMulticastOncePerSecond(t *testing.T) {
	r, s := newTestResponder(t)
	now := time.Now()
	query := packMsg(t, question(host, dns.TypeA, false))
	steps := []struct {
		after time.Duration
		want  int
	}{{0, 1}, {500 * time.Millisecond, 0}, {1100 * time.Millisecond, 1}}
	for _, step := range steps {
		if got := len(r.handle(s, query, querier, group4, now.Add(step.after))); got != step.want {
			t.Errorf("packets at %v: got %d, want %d", step.after, got, step.want)
		}
	}
}

func TestHandleQUQuery(t *testing.T) {
	r, s := newTestResponder(t)
	now := time.Now()
	query := packMsg(t, question(host, dns.TypeA, true))

	// RFC 6762 section 5.4: a record not multicast within a quarter of its
	// TTL is multicast even when unicast was requested.
	out := r.handle(s, query, querier, group4, now)
	if len(out) != 1 || out[0].to != s.group {
		t.Fatalf("first QU query: got %v, want one packet to the group", out)
	}
	out = r.handle(s, query, querier, group4, now.Add(10*time.Second))
	if len(out) != 1 || out[0].to != querier {
		t.Fatalf("QU query 10 s later: got %v, want one packet to %v", out, querier)
	}
}

func TestHandleDirectQuery(t *testing.T) {
	r, s := newTestResponder(t)
	own := netip.MustParseAddr("10.99.0.1")
	out := r.handle(s, packMsg(t, question(host, dns.TypeA, false)), querier, own, time.Now())
	if len(out) != 1 || out[0].to != querier {
		t.Fatalf("direct query: got %v, want one packet to %v", out, querier)
	}
	offLink := netip.MustParseAddrPort("192.0.2.9:5353")
	if out := r.handle(s, packMsg(t, question(host, dns.TypeA, false)), offLink, own, time.Now()); len(out) != 0 {
		t.Errorf("direct query from off the link: got %d packets, want none", len(out))
	}
}

func TestHandleKnownAnswerSuppression(t *testing.T) {
	r, s := newTestResponder(t)
	query := question(host, dns.TypeA, false)
	query.Answer = addressRecords(host, []netip.Prefix{netip.MustParsePrefix("10.99.0.1/24")}, hostTTL/2, dns.ClassINET)
	if out := r.handle(s, packMsg(t, query), querier, group4, time.Now()); len(out) != 0 {
		t.Errorf("query with the answer known for 60 s: got %d packets, want none", len(out))
	}
	query.Answer[0].Header().Ttl = hostTTL/2 - 1
	if out := r.handle(s, packMsg(t, query), querier, group4, time.Now()); len(out) != 1 {
		t.Errorf("query with the answer known for 59 s: got %d packets, want 1", len(out))
	}
}

func TestHandleNegativeResponse(t *testing.T) {
	r, s := newTestResponder(t, "10.99.0.1/24")
	out := r.handle(s, packMsg(t, question(host, dns.TypeAAAA, false)), querier, group4, time.Now())
	if len(out) != 1 {
		t.Fatalf("packets: got %d, want 1", len(out))
	}
	msg := unpack(t, out[0])
	if len(msg.Answer) != 1 {
		t.Fatalf("answer: got %v, want one NSEC record", msg.Answer)
	}
	nsec, ok := msg.Answer[0].(*dns.NSEC)
	if !ok || !slices.Equal(nsec.TypeBitMap, []uint16{dns.TypeA}) {
		t.Errorf("answer: got %v, want NSEC listing only A", msg.Answer[0])
	}
	if got := addresses(msg.Extra); !slices.Equal(got, []string{"10.99.0.1"}) {
		t.Errorf("additional: got %v, want the A record", got)
	}
}

func TestHandleReverseQuery(t *testing.T) {
	r, s := newTestResponder(t)
	out := r.handle(s, packMsg(t, question("1.0.99.10.in-addr.arpa.", dns.TypePTR, false)), legacy, group4, time.Now())
	if len(out) != 1 {
		t.Fatalf("packets: got %d, want 1", len(out))
	}
	msg := unpack(t, out[0])
	if len(msg.Answer) != 1 || msg.Answer[0].(*dns.PTR).Ptr != host {
		t.Errorf("answer: got %v, want PTR %s", msg.Answer, host)
	}
	other := question("2.0.99.10.in-addr.arpa.", dns.TypePTR, false)
	if out := r.handle(s, packMsg(t, other), legacy, group4, time.Now()); len(out) != 0 {
		t.Errorf("reverse query for another address: got %d packets, want none", len(out))
	}
}

func TestHandleIgnores(t *testing.T) {
	valid := question(host, dns.TypeA, false)
	response := question(host, dns.TypeA, false)
	response.Response = true
	update := question(host, dns.TypeA, false)
	update.Opcode = dns.OpcodeUpdate
	withRcode := question(host, dns.TypeA, false)
	withRcode.Rcode = dns.RcodeServerFailure
	chaos := question(host, dns.TypeA, false)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	tooMany := &dns.Msg{}
	for range maxQuestions + 1 {
		tooMany.Question = append(tooMany.Question, valid.Question[0])
	}

	cases := []struct {
		name string
		data []byte
	}{
		{"other name", packMsg(t, question("other.local.", dns.TypeA, false))},
		{"response", packMsg(t, response)},
		{"update opcode", packMsg(t, update)},
		{"non-zero rcode", packMsg(t, withRcode)},
		{"chaos class", packMsg(t, chaos)},
		{"33 questions", packMsg(t, tooMany)},
		{"9001 bytes", append(packMsg(t, valid), make([]byte, maxPacketSize+1-len(packMsg(t, valid)))...)},
		{"empty", nil},
		{"header only", packMsg(t, valid)[:12]},
	}
	for _, c := range cases {
		r, s := newTestResponder(t)
		if out := r.handle(s, c.data, querier, group4, time.Now()); len(out) != 0 {
			t.Errorf("%s: got %d packets, want none", c.name, len(out))
		}
	}

	r, s := newTestResponder(t)
	s.link.ready.Store(false)
	if out := r.handle(s, packMsg(t, valid), querier, group4, time.Now()); len(out) != 0 {
		t.Errorf("query while probing: got %d packets, want none", len(out))
	}
}

func TestHandleRateLimitsSource(t *testing.T) {
	r, s := newTestResponder(t)
	query := packMsg(t, question(host, dns.TypeA, false))
	answered := 0
	for range 20 {
		answered += len(r.handle(s, query, legacy, group4, time.Now()))
	}
	if answered < 8 || answered > 10 {
		t.Errorf("legacy responses to 20 quick queries: got %d, want about 8 (the burst)", answered)
	}
	other := netip.MustParseAddrPort("10.99.0.3:40000")
	if out := r.handle(s, query, other, group4, time.Now()); len(out) != 1 {
		t.Errorf("another source: got %d packets, want 1", len(out))
	}
}

func TestCheckConflict(t *testing.T) {
	foreignA := addressRecords(host, []netip.Prefix{netip.MustParsePrefix("10.99.0.50/24")}, hostTTL, dns.ClassINET|cacheFlush)
	ownA := addressRecords(host, []netip.Prefix{netip.MustParsePrefix("10.99.0.1/24")}, hostTTL, dns.ClassINET|cacheFlush)
	goodbye := addressRecords(host, []netip.Prefix{netip.MustParsePrefix("10.99.0.50/24")}, 0, dns.ClassINET|cacheFlush)
	peer := netip.MustParseAddrPort("10.99.0.50:5353")
	self := netip.MustParseAddrPort("10.99.0.1:5353")

	cases := []struct {
		name    string
		answer  []dns.RR
		from    netip.AddrPort
		probing bool
		want    bool
	}{
		{"foreign address", foreignA, peer, false, true},
		{"own address from a peer", ownA, peer, false, false},
		{"own packet looped back", foreignA, self, false, false},
		{"goodbye", goodbye, peer, false, false},
		{"own address while probing", ownA, peer, true, true},
	}
	for _, c := range cases {
		r, s := newTestResponder(t)
		s.link.ready.Store(!c.probing)
		msg := &dns.Msg{}
		msg.Response = true
		msg.Answer = c.answer
		r.handle(s, packMsg(t, msg), c.from, group4, time.Now())
		var got bool
		select {
		case <-r.conflicts:
			got = true
		default:
		}
		if got != c.want {
			t.Errorf("%s: conflict reported %v, want %v", c.name, got, c.want)
		}
	}
}

func TestNextName(t *testing.T) {
	r, _ := newTestResponder(t)
	for _, want := range []string{"heimwolke-2.local.", "heimwolke-3.local."} {
		if got := r.nextName(); got != want {
			t.Errorf("nextName() = %q, want %q", got, want)
		}
	}
	long, err := newResponder(Options{Hostname: "a23456789012345678901234567890123456789012345678901234567890123"})
	if err != nil {
		t.Fatal(err)
	}
	if got := long.nextName(); len(got) != 63+len(".local.") {
		t.Errorf("nextName() for a 63-byte name = %q (%d bytes), want a 63-byte label", got, len(got))
	}
}

func TestCheckLabel(t *testing.T) {
	for _, good := range []string{"heimwolke", "box-1", "A"} {
		if err := checkLabel(good); err != nil {
			t.Errorf("checkLabel(%q) = %v, want nil", good, err)
		}
	}
	for _, bad := range []string{"heimwolke.local", "-box", "box-", "bäume", "a b", string(make([]byte, 64))} {
		if err := checkLabel(bad); err == nil {
			t.Errorf("checkLabel(%q) = nil, want an error", bad)
		}
	}
}

// FuzzHandle feeds arbitrary packets to handle, as queries from a full
// querier and from a legacy resolver, and checks that every reply parses and
// fits the packet size limit.
func FuzzHandle(f *testing.F) {
	add := func(msg *dns.Msg) {
		data, err := msg.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	add(question(host, dns.TypeA, false))
	add(question(host, dns.TypeANY, true))
	add(question("1.0.99.10.in-addr.arpa.", dns.TypePTR, false))
	known := question(host, dns.TypeAAAA, false)
	known.Answer = addressRecords(host, []netip.Prefix{netip.MustParsePrefix("fd00:99::1/64")}, hostTTL, dns.ClassINET)
	add(known)
	response := &dns.Msg{}
	response.Response = true
	response.Answer = allRecords(host, []netip.Prefix{netip.MustParsePrefix("10.99.0.50/24")}, hostTTL)
	add(response)
	f.Add([]byte("\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		r, s := newTestResponder(t)
		now := time.Now()
		for _, src := range []netip.AddrPort{querier, legacy} {
			for _, out := range r.handle(s, data, src, group4, now) {
				if len(out.data) > maxPacketSize {
					t.Errorf("reply of %d bytes, want at most %d", len(out.data), maxPacketSize)
				}
				if err := new(dns.Msg).Unpack(out.data); err != nil {
					t.Errorf("reply does not parse: %v", err)
				}
			}
		}
	})
}

// addresses returns the A and AAAA data in rrs.
func addresses(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	return out
}

func question(name string, qtype uint16, unicast bool) *dns.Msg {
	msg := &dns.Msg{}
	class := uint16(dns.ClassINET)
	if unicast {
		class |= unicastResponse
	}
	msg.Question = []dns.Question{{Name: name, Qtype: qtype, Qclass: class}}
	return msg
}
