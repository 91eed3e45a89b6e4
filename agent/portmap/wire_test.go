package portmap

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseNATPMPMapping(t *testing.T) {
	// RFC 6886 section 3.3: version 0, opcode 130, result 0, epoch,
	// internal port 443, mapped external port 443, lifetime 7200.
	resp := []byte{0, 130, 0, 0, 0, 0, 0, 42, 0x01, 0xbb, 0x01, 0xbb, 0, 0, 0x1c, 0x20}
	got, err := parseNATPMPMapping(resp)
	if err != nil {
		t.Fatalf("parseNATPMPMapping: %v", err)
	}
	want := natpmpMapping{internalPort: 443, externalPort: 443, lifetime: 2 * time.Hour}
	if got != want {
		t.Errorf("parseNATPMPMapping = %+v, want %+v", got, want)
	}
}

func TestParseNATPMPResultCode(t *testing.T) {
	resp := []byte{0, 130, 0, 2, 0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0, 0}
	_, err := parseNATPMPMapping(resp)
	var code natpmpResultError
	if !errors.As(err, &code) || code != 2 {
		t.Fatalf("parseNATPMPMapping error = %v, want NAT-PMP result 2", err)
	}
	if got := classify(err); got != ReasonNotAllowed {
		t.Errorf("classify(%v) = %q, want %q", err, got, ReasonNotAllowed)
	}
}

func TestParseNATPMPExternalAddress(t *testing.T) {
	resp := []byte{0, 128, 0, 0, 0, 0, 0, 42, 192, 0, 3, 2}
	got, err := parseNATPMPExternalAddress(resp)
	if err != nil {
		t.Fatalf("parseNATPMPExternalAddress: %v", err)
	}
	if want := netip.MustParseAddr("192.0.3.2"); got != want {
		t.Errorf("parseNATPMPExternalAddress = %s, want %s", got, want)
	}
}

func TestBuildPCPMap(t *testing.T) {
	client := netip.MustParseAddr("192.168.178.20")
	nonce := [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	req := buildPCPMap(client, nonce, 5222, time.Hour)

	if len(req) != 60 {
		t.Fatalf("MAP request has %d bytes, want 60", len(req))
	}
	if req[0] != 2 || req[1] != 1 {
		t.Errorf("version and opcode = %d, %d, want 2, 1", req[0], req[1])
	}
	if got := binary.BigEndian.Uint32(req[4:]); got != 3600 {
		t.Errorf("lifetime = %d, want 3600", got)
	}
	if got := netip.AddrFrom16([16]byte(req[8:24])); got.Unmap() != client {
		t.Errorf("client address = %s, want %s", got, client)
	}
	if got := [12]byte(req[24:36]); got != nonce {
		t.Errorf("nonce = %x, want %x", got, nonce)
	}
	if req[36] != 6 {
		t.Errorf("protocol = %d, want 6 (TCP)", req[36])
	}
	if in, ext := binary.BigEndian.Uint16(req[40:]), binary.BigEndian.Uint16(req[42:]); in != 5222 || ext != 5222 {
		t.Errorf("internal and external port = %d, %d, want 5222, 5222", in, ext)
	}
	if got := netip.AddrFrom16([16]byte(req[44:60])); got != netip.MustParseAddr("::ffff:0.0.0.0") {
		t.Errorf("suggested external address = %s, want ::ffff:0.0.0.0", got)
	}
}

func TestParsePCPMap(t *testing.T) {
	resp := make([]byte, 60)
	resp[0], resp[1] = 2, 0x81
	binary.BigEndian.PutUint32(resp[4:], 120)
	resp[36] = 6
	binary.BigEndian.PutUint16(resp[40:], 443)
	binary.BigEndian.PutUint16(resp[42:], 443)
	external := netip.MustParseAddr("192.0.3.2")
	mapped := external.As16() // ::ffff:192.0.3.2
	copy(resp[44:], mapped[:])

	got, err := parsePCPMap(resp)
	if err != nil {
		t.Fatalf("parsePCPMap: %v", err)
	}
	want := pcpMapping{externalPort: 443, externalAddr: external, lifetime: 2 * time.Minute}
	if got != want {
		t.Errorf("parsePCPMap = %+v, want %+v", got, want)
	}
}

func TestParsePCPResultCode(t *testing.T) {
	// RFC 6887 section 9: a NAT-PMP server responds to a PCP request with a
	// version 0 response carrying result 1, UNSUPP_VERSION.
	resp := []byte{0, 0x81, 0, 1, 0, 0, 0, 0}
	_, err := parsePCPMap(resp)
	if !errors.Is(err, pcpUnsuppVersion) {
		t.Errorf("parsePCPMap error = %v, want UNSUPP_VERSION", err)
	}

	resp = make([]byte, 60)
	resp[0], resp[1], resp[3] = 2, 0x81, 11
	_, err = parsePCPMap(resp)
	if got := classify(err); got != ReasonPortInUse {
		t.Errorf("classify(%v) = %q, want %q", err, got, ReasonPortInUse)
	}
}

func TestParseDefaultGateway(t *testing.T) {
	table := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"eth0\t00000000\t01B2A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
	got, err := parseDefaultGateway(strings.NewReader(table), "route")
	if err != nil {
		t.Fatalf("parseDefaultGateway: %v", err)
	}
	if want := netip.MustParseAddr("192.168.178.1"); got != want {
		t.Errorf("parseDefaultGateway = %s, want %s", got, want)
	}

	if _, err := parseDefaultGateway(strings.NewReader(table[:strings.LastIndex(table, "eth0")]), "route"); err == nil {
		t.Error("parseDefaultGateway without a default route succeeded, want an error")
	}
}

func TestParseDefaultGatewayV6(t *testing.T) {
	table := "20010db8000000010000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n" +
		"00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000003 00000000 00000003     eth0\n"
	got, err := parseDefaultGatewayV6(strings.NewReader(table), "ipv6_route")
	if err != nil {
		t.Fatalf("parseDefaultGatewayV6: %v", err)
	}
	if want := netip.MustParseAddr("fe80::1%eth0"); got != want {
		t.Errorf("parseDefaultGatewayV6 = %s, want %s", got, want)
	}
}

func TestIsPublic(t *testing.T) {
	cases := map[string]bool{
		"192.0.3.2":   true,
		"192.168.1.1": false,
		"10.0.0.1":    false,
		"100.64.0.2":  false,
		"0.0.0.0":     false,
	}
	for addr, want := range cases {
		if got := isPublic(netip.MustParseAddr(addr)); got != want {
			t.Errorf("isPublic(%s) = %v, want %v", addr, got, want)
		}
	}
}

func FuzzParseNATPMP(f *testing.F) {
	f.Add([]byte{0, 130, 0, 0, 0, 0, 0, 42, 0x01, 0xbb, 0x01, 0xbb, 0, 0, 0x1c, 0x20})
	f.Add([]byte{0, 128, 0, 0, 0, 0, 0, 42, 192, 0, 3, 2})
	f.Add([]byte{0, 130, 0, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := parseNATPMPMapping(b); err == nil && len(b) < 16 {
			t.Errorf("parseNATPMPMapping accepted %d bytes: %+v", len(b), m)
		}
		if a, err := parseNATPMPExternalAddress(b); err == nil && !a.Is4() {
			t.Errorf("parseNATPMPExternalAddress returned %s, want an IPv4 address", a)
		}
	})
}

func FuzzParsePCPMap(f *testing.F) {
	seed := make([]byte, 60)
	seed[0], seed[1] = 2, 0x81
	f.Add(seed)
	f.Add([]byte{0, 0x81, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := parsePCPMap(b); err == nil && len(b) < 60 {
			t.Errorf("parsePCPMap accepted %d bytes: %+v", len(b), m)
		}
	})
}

func TestRunRejectsInvalidConfig(t *testing.T) {
	m := New(Config{Ports: []uint16{443, 0, 443}, Protocols: []Protocol{ProtocolUPnP, "smoke-signals"}})
	err := m.Run(t.Context())
	if err == nil {
		t.Fatal("Run with port 0, a duplicate port and an unknown protocol returned nil, want an error")
	}
	for _, want := range []string{"port 0", "port 443 appears twice", `"smoke-signals"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Run error %q does not mention %s", err, want)
		}
	}
}

func TestNewStartsPending(t *testing.T) {
	s := New(Config{}).State()
	if len(s.Ports) != len(DefaultPorts) {
		t.Fatalf("State().Ports has %d entries, want %d", len(s.Ports), len(DefaultPorts))
	}
	for i, p := range s.Ports {
		if p.Port != DefaultPorts[i] || p.Mapped || p.Reason != ReasonPending {
			t.Errorf("State().Ports[%d] = %+v, want port %d, not mapped, reason %q", i, p, DefaultPorts[i], ReasonPending)
		}
	}
}
