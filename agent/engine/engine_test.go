package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/agent/netaddr"
	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/dnsprovider/dnstest"
	"github.com/heimwolke/heimwolke/packages/tlsstore"
)

// staticSource is an IPv4 source that names one address, standing in for
// the outside DNS servers that a test must not ask.
type staticSource struct{ addr netip.Addr }

func (s staticSource) Name() string { return "static" }

func (s staticSource) IPv4(context.Context) (netip.Addr, error) { return s.addr, nil }

func newEngine(t *testing.T, opts Options) (*Engine, *tlsstore.Store) {
	t.Helper()
	store, err := tlsstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts.TLS = store
	ctx, cancel := context.WithCancel(context.Background())
	e, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		e.Stop()
	})
	return e, store
}

// bindDNS returns DNS settings for familie.test at the BIND server bind,
// with its TSIG key.
func bindDNS(bind *dnstest.Server) control.DNSSettings {
	return control.DNSSettings{
		Provider: control.DNSRFC2136,
		Hostname: "familie.test",
		RFC2136: &control.RFC2136Settings{
			Server: bind.Addr, Zone: "familie.test", KeyName: bind.KeyName,
			Algorithm: bind.Algorithm, Secret: bind.Secret,
		},
	}
}

// waitFor polls cond until it holds or 30 seconds pass: on a loaded CI
// machine, BIND and the engine's jobs can take more than ten.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLocalCertificateBeforeSetup checks that without settings the engine
// issues a local certificate for the box's LAN names, which the store
// serves, and reports it in the status.
func TestLocalCertificateBeforeSetup(t *testing.T) {
	e, store := newEngine(t, Options{Hostname: "heimwolke", LocalNames: []string{"localhost"}})
	e.Apply(nil)

	var st control.Status
	waitFor(t, "a local certificate", func() bool {
		st = control.Status{}
		e.Fill(&st)
		return st.Certificate != nil && !st.Certificate.NotAfter.IsZero()
	})
	if !st.Certificate.Local {
		t.Errorf("certificate status %+v: Local = false, want true", st.Certificate)
	}
	if st.DNS != nil || st.Ports != nil {
		t.Errorf("status without settings has DNS %+v and ports %+v, want neither", st.DNS, st.Ports)
	}

	cert, err := store.GetCertificate(&tls.ClientHelloInfo{ServerName: "heimwolke.local"})
	if err != nil {
		t.Fatalf("store has no certificate for heimwolke.local: %v", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.VerifyHostname("heimwolke.local"); err != nil {
		t.Errorf("local certificate: %v", err)
	}
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Errorf("local certificate: %v", err)
	}
}

// TestSettingsPublishARecord applies settings with an RFC 2136 provider
// against a real BIND and checks that the dynamic DNS job publishes the
// box's address and that the status shows the record as published.
func TestSettingsPublishARecord(t *testing.T) {
	bind := dnstest.StartBIND(t, "familie.test.", "")
	public := netip.MustParseAddr("198.51.100.23")
	e, _ := newEngine(t, Options{IPv4Sources: []netaddr.IPv4Source{staticSource{public}}})
	e.Apply(&control.Settings{
		Domain: "familie.test",
		DNS:    bindDNS(bind),
		// An ACME directory that does not answer keeps the certificate job
		// from reaching out; this test is about DNS.
		ACME: control.ACMESettings{Email: "anna@familie.test", DirectoryURL: "https://127.0.0.1:1/directory"},
	})

	waitFor(t, "the A record in BIND", func() bool {
		for _, rr := range bind.Query(t, "familie.test.", dns.TypeA) {
			if a, ok := rr.(*dns.A); ok && a.A.String() == public.String() {
				return true
			}
		}
		return false
	})
	var st control.Status
	waitFor(t, "the record's state", func() bool {
		st = control.Status{}
		e.Fill(&st)
		return st.DNS != nil && len(st.DNS.Records) > 0 && st.DNS.Records[0].State == "published"
	})
	if got := st.DNS.IPv4; got != public.String() {
		t.Errorf("DNS status IPv4 = %q, want %s", got, public)
	}
	if st.DNS.Provider != control.DNSRFC2136 || st.DNS.Hostname != "familie.test" {
		t.Errorf("DNS status provider %q hostname %q, want rfc2136 familie.test", st.DNS.Provider, st.DNS.Hostname)
	}
	if st.Network == nil || st.Network.PublicIPv4 != public.String() {
		t.Errorf("network status %+v, want public IPv4 %s", st.Network, public)
	}
	if st.Certificate == nil || st.Certificate.Local {
		t.Errorf("certificate status %+v, want the ACME certificate's state", st.Certificate)
	}
}

// TestUnknownProviderReported checks that a provider the agent does not
// know is reported in the status instead of being dropped.
func TestUnknownProviderReported(t *testing.T) {
	e, _ := newEngine(t, Options{})
	e.Apply(&control.Settings{Domain: "familie.test", DNS: control.DNSSettings{Provider: "carrier-pigeon", Hostname: "familie.test"},
		ACME: control.ACMESettings{DirectoryURL: "https://127.0.0.1:1/directory"}})
	var st control.Status
	e.Fill(&st)
	if st.DNS == nil || st.DNS.LastError == "" {
		t.Fatalf("status %+v, want a DNS error that names the provider", st.DNS)
	}
}

// TestLocalCertificateNoWarning checks that a fresh local certificate,
// which lives only 14 days, raises no expiry warning.
func TestLocalCertificateNoWarning(t *testing.T) {
	e, _ := newEngine(t, Options{})
	e.Apply(nil)
	var st control.Status
	waitFor(t, "a local certificate", func() bool {
		st = control.Status{}
		e.Fill(&st)
		return st.Certificate != nil && !st.Certificate.NotAfter.IsZero()
	})
	if st.Certificate.ExpiryWarning {
		t.Errorf("fresh local certificate until %v: ExpiryWarning = true, want false", st.Certificate.NotAfter)
	}
}

// TestServiceRecordsPublished hands the engine mail records for a zone at
// a real BIND and checks that they are published, that a TXT record of
// another kind at the apex survives, and that the status marks each
// record as published.
func TestServiceRecordsPublished(t *testing.T) {
	// BIND refuses an MX whose target in the zone has no address, so the
	// mail host's A record is there already, as the dynamic DNS job would
	// have published it.
	bind := dnstest.StartBIND(t, "familie.test.", `@ 300 IN TXT "google-site-verification=abc123"`+"\nmail 300 IN A 192.0.2.25\n")
	e, _ := newEngine(t, Options{})
	e.Apply(&control.Settings{
		Domain: "familie.test",
		DNS:    bindDNS(bind),
		ACME:   control.ACMESettings{Email: "anna@familie.test", DirectoryURL: "https://127.0.0.1:1/directory"},
	})
	e.PublishRecords(control.ServiceRecords{Zone: "familie.test", Records: []control.ServiceRecord{
		{Name: "@", Type: "MX", Data: "10 mail.familie.test.", TTL: 3600},
		{Name: "@", Type: "TXT", Data: `"v=spf1 mx -all"`, TTL: 3600},
		{Name: "_dmarc", Type: "TXT", Data: `"v=DMARC1; p=quarantine"`, TTL: 3600},
		{Name: "_caldavs._tcp", Type: "SRV", Data: "0 1 443 familie.test.", TTL: 3600},
	}})

	var st control.Status
	waitFor(t, "four published service records", func() bool {
		st = control.Status{}
		e.Fill(&st)
		if st.DNS == nil {
			return false
		}
		published := 0
		for _, r := range st.DNS.Records {
			if r.State == "published" && r.Type != "A" && r.Type != "AAAA" {
				published++
			}
		}
		return published == 4
	})
	var txt []string
	for _, rr := range bind.Query(t, "familie.test.", dns.TypeTXT) {
		if r, ok := rr.(*dns.TXT); ok {
			txt = append(txt, r.Txt...)
		}
	}
	if len(txt) != 2 {
		t.Errorf("TXT records at the apex = %q, want the SPF record and the site verification", txt)
	}
	if mx := bind.Query(t, "familie.test.", dns.TypeMX); len(mx) != 1 {
		t.Errorf("MX records at the apex = %v, want one", mx)
	}
}

func TestTXTKind(t *testing.T) {
	for in, want := range map[string]string{
		`"v=spf1 mx -all"`:                "v=spf1",
		"v=DMARC1; p=none":                "v=dmarc1",
		"google-site-verification=abc123": "google-site-verification=abc123",
	} {
		if got := txtKind(in); got != want {
			t.Errorf("txtKind(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestACMEDirectoryOverride checks that Options.ACMEDirectory replaces
// the settings' directory URL, so the error contains the replacement.
func TestACMEDirectoryOverride(t *testing.T) {
	bind := dnstest.StartBIND(t, "familie.test.", "")
	e, _ := newEngine(t, Options{ACMEDirectory: "https://127.0.0.1:2/override"})
	e.Apply(&control.Settings{
		Domain: "familie.test",
		DNS:    bindDNS(bind),
		ACME:   control.ACMESettings{Email: "anna@familie.test", DirectoryURL: "https://127.0.0.1:1/directory"},
	})
	var st control.Status
	waitFor(t, "a certificate error", func() bool {
		st = control.Status{}
		e.Fill(&st)
		return st.Certificate != nil && st.Certificate.LastError != ""
	})
	if !strings.Contains(st.Certificate.LastError, "127.0.0.1:2/override") {
		t.Errorf("certificate error %q, want it to name the replacement directory https://127.0.0.1:2/override", st.Certificate.LastError)
	}
}

// TestNoPortMappingWithoutDomain checks that a box without a domain opens
// no router ports, although the wizard's router step allowed it: the
// household chose the home network only.
func TestNoPortMappingWithoutDomain(t *testing.T) {
	e, _ := newEngine(t, Options{})
	e.Apply(&control.Settings{Router: control.RouterSettings{PortMapping: true}})
	var st control.Status
	e.Fill(&st)
	if st.Ports != nil {
		t.Errorf("ports status %+v without a domain, want none: the router must not be asked", st.Ports)
	}
}
