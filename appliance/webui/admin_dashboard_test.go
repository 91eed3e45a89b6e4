package webui

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"html"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// dashboardEnv returns an admin environment whose agent reports status.
// configure may change the options before the Handler is made.
func dashboardEnv(t *testing.T, status control.Status, configure func(*Options)) *adminEnv {
	t.Helper()
	status.Program, status.Version, status.StartedAt = "heimwolke-agent", "v1.0.0", time.Now()
	socket := serveAgent(t, &fakeAgent{status: status})
	return newAdminEnv(t, func(o *Options) {
		o.AgentSocket = socket
		if configure != nil {
			configure(o)
		}
	})
}

// messageIn returns the catalog message key in lang, as html/template
// escapes it.
func (env *adminEnv) messageIn(lang, key string, pairs ...any) string {
	return html.EscapeString(env.h.t(lang, key, pairs...))
}

// timeIn formats t as the pages in lang show it.
func (env *adminEnv) timeIn(lang string, t time.Time) string {
	p := &page{Lang: lang, catalog: env.h.catalog}
	return p.Time(t)
}

// setOwnerLanguage switches the owner's pages to lang.
func (env *adminEnv) setOwnerLanguage(t *testing.T, lang accounts.Language) {
	t.Helper()
	if err := env.accounts.SetProfile(context.Background(), env.userID(t, "anna"), "Anna Müller", lang); err != nil {
		t.Fatalf("SetProfile(anna, %q): %v", lang, err)
	}
}

// element returns the HTML from the start tag whose id attribute is id up
// to the end of the page, so that checks can look at what follows it.
func element(t *testing.T, body, id string) string {
	t.Helper()
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		t.Fatalf("page has no element with id %q", id)
	}
	return body[strings.LastIndex(body[:i], "<"):]
}

// upTo returns s up to the first occurrence of end, or all of s.
func upTo(s, end string) string {
	if i := strings.Index(s, end); i >= 0 {
		return s[:i]
	}
	return s
}

func TestDashboardNetworkCGNAT(t *testing.T) {
	env := dashboardEnv(t, control.Status{Network: &control.NetworkStatus{
		Class:      control.NetworkCGNAT,
		WAN:        "100.64.12.34",
		PublicIPv6: "2001:db8::7",
		CheckedAt:  time.Now(),
	}}, nil)

	for _, lang := range []accounts.Language{accounts.LanguageGerman, accounts.LanguageEnglish} {
		t.Run(string(lang), func(t *testing.T) {
			env.setOwnerLanguage(t, lang)
			res := env.owner.get("/admin")
			wantStatus(t, res, http.StatusOK)
			l := string(lang)
			network := upTo(element(t, res.body, "network"), "</section>")
			for _, part := range []string{"title", "meaning", "action"} {
				if want := env.messageIn(l, "network.class.cgnat."+part); !strings.Contains(network, want) {
					t.Errorf("network section lacks the CGNAT %s %q:\n%s", part, want, network)
				}
			}
			if !strings.Contains(network, `class="card waiting" id="network"`) {
				t.Errorf("CGNAT card is not marked as waiting:\n%s", network)
			}
			wantBody(t, res, `id="network-wan">100.64.12.34<`, `id="network-ipv6">2001:db8::7<`,
				`id="network-ipv4">`+env.messageIn(l, "admin.dns.no_address")+"<")
			wantNotInBody(t, res, "network-no-ipv6", "network.class.")
		})
	}
}

func TestDashboardNetworkHints(t *testing.T) {
	env := dashboardEnv(t, control.Status{Network: &control.NetworkStatus{
		Class:        control.NetworkPublic,
		PublicIPv4:   "198.51.100.7",
		Disagreement: "router=198.51.100.7, web=203.0.113.9",
	}}, nil)
	res := env.owner.get("/admin")
	wantBody(t, res,
		`class="card done" id="network"`,
		env.message("network.class.public.title"),
		`id="network-ipv4">198.51.100.7<`,
		env.message("network.ipv4.disagreement", "answers", "router=198.51.100.7, web=203.0.113.9"),
		`id="network-no-ipv6">`+env.message("network.ipv6.none"),
	)

	unknown := dashboardEnv(t, control.Status{Network: &control.NetworkStatus{Class: "carrier_pigeon"}}, nil)
	res = unknown.owner.get("/admin")
	wantBody(t, res, unknown.message("admin.network.unrecognized.meaning", "code", "carrier_pigeon"))
	wantNotInBody(t, res, "network.class.")
}

func TestDashboardNetworkNotChecked(t *testing.T) {
	env := dashboardEnv(t, control.Status{}, nil)
	wantBody(t, env.owner.get("/admin"), `id="network">`+env.message("admin.network.none"))
}

func TestDashboardDNSRecords(t *testing.T) {
	updated := time.Date(2026, 5, 1, 9, 30, 0, 0, time.Local)
	env := dashboardEnv(t, control.Status{DNS: &control.DNSStatus{
		Provider: "desec", Hostname: "box.example.org", IPv4: "198.51.100.7",
		Records: []control.RecordStatus{
			{Name: "box.example.org", Type: "A", Value: "198.51.100.7", State: "published", LastUpdate: updated},
			{Name: "box.example.org", Type: "AAAA", State: "missing"},
			{Name: "mail.example.org", Type: "A", Value: "198.51.100.6", State: "wrong", LastError: "desec: 403 Forbidden"},
			{Name: "mail.example.org", Type: "AAAA", Value: "2001:db8::7", State: "pending", LastUpdate: updated},
		},
	}}, nil)
	res := env.owner.get("/admin")
	wantStatus(t, res, http.StatusOK)

	cases := []struct {
		id, card, state string
		more            []string
	}{
		{"record-A-box.example.org", "done", "eingetragen", []string{"198.51.100.7", "01.05.2026, 09:30"}},
		{"record-AAAA-box.example.org", "failed", "fehlt", []string{env.message("admin.dns.record.hint.missing"), env.message("admin.never")}},
		{"record-A-mail.example.org", "failed", "Aktualisierung gescheitert", []string{"desec: 403 Forbidden", env.message("admin.dns.record.hint.wrong")}},
		{"record-AAAA-mail.example.org", "waiting", "wartet auf den DNS-Anbieter", []string{"2001:db8::7", env.message("admin.dns.record.hint.pending")}},
	}
	for _, c := range cases {
		card := upTo(element(t, res.body, c.id), "</li>")
		if !strings.HasPrefix(card, `<li class="card `+c.card+`"`) {
			t.Errorf("record %s: card starts %q, want class %q", c.id, upTo(card, ">"), c.card)
		}
		for _, want := range append([]string{`class="record-state">` + c.state + "<"}, c.more...) {
			if !strings.Contains(card, want) {
				t.Errorf("record %s lacks %q:\n%s", c.id, want, card)
			}
		}
	}
	if published := upTo(element(t, res.body, cases[0].id), "</li>"); strings.Contains(published, `class="hint"`) {
		t.Errorf("published record has a hint:\n%s", published)
	}
}

func TestDashboardPortsUnmapped(t *testing.T) {
	expires := time.Now().Add(2 * time.Hour)
	env := dashboardEnv(t, control.Status{Ports: &control.PortsStatus{
		Router: "upnp-igd2 192.168.178.1",
		Ports: []control.PortStatus{
			{Port: 443, Mapped: true, Protocol: "upnp-igd2", Expires: expires},
			{Port: 993, Mapped: true, Protocol: "pcp"},
			{Port: 25, Reason: "no_service", Error: "no answer from 192.168.178.1"},
			{Port: 587, Reason: "no_service", Error: "no answer from 192.168.178.1"},
			{Port: 80, Reason: "port_in_use", Error: "718 ConflictInMappingEntry"},
			{Port: 5269, Reason: "laser_shark"},
		},
	}}, nil)
	res := env.owner.get("/admin")
	wantStatus(t, res, http.StatusOK)
	ports := upTo(element(t, res.body, "ports-title"), "</section>")

	wants := []string{
		env.message("admin.ports.router", "router", "UPnP 192.168.178.1"),
		env.message("router.port.mapped", "port", 443, "protocol", "UPnP", "expires", env.timeIn("de", expires)),
		env.message("router.port.mapped_permanent", "port", 993, "protocol", "PCP"),
		// The two ports without a UPnP service share one set of steps.
		env.message("router.reason.no_service.title"),
		env.message("admin.ports.closed", "ports", "25, 587"),
		env.message("router.reason.no_service.action"),
		"no answer from 192.168.178.1",
		env.message("router.reason.port_in_use.text", "port", "80"),
		env.message("router.port.closed", "port", "80"),
		env.message("router.reason.port_in_use.action"),
		"718 ConflictInMappingEntry",
		env.message("admin.ports.reason_unknown.text", "code", "laser_shark"),
		`id="ports-manual"`,
		env.message("router.manual.steps"),
	}
	for _, want := range wants {
		if !strings.Contains(ports, want) {
			t.Errorf("ports section lacks %q", want)
		}
	}
	if n := strings.Count(ports, env.message("router.reason.no_service.action")); n != 1 {
		t.Errorf("FRITZ!Box steps for no_service shown %d times, want 1", n)
	}
	if n := strings.Count(ports, "no answer from 192.168.178.1"); n != 1 {
		t.Errorf("router's answer shown %d times, want 1", n)
	}
	if strings.Contains(ports, "router.reason.") {
		t.Errorf("ports section shows a catalog key:\n%s", ports)
	}

	env.setOwnerLanguage(t, accounts.LanguageEnglish)
	english := env.owner.get("/admin").body
	for _, key := range []string{"router.reason.no_service.title", "router.reason.no_service.action"} {
		if want := env.messageIn("en", key); !strings.Contains(english, want) {
			t.Errorf("English dashboard lacks %s %q", key, want)
		}
	}
}

func TestDashboardPortsAllMapped(t *testing.T) {
	env := dashboardEnv(t, control.Status{Ports: &control.PortsStatus{
		Router: "nat-pmp 192.168.178.1",
		Ports:  []control.PortStatus{{Port: 443, Mapped: true, Protocol: "nat-pmp", Expires: time.Now().Add(time.Hour)}},
	}}, nil)
	res := env.owner.get("/admin")
	wantBody(t, res, `id="port-443"`, "(NAT-PMP)")
	wantNotInBody(t, res, "ports-manual", "ports-closed-")

	none := dashboardEnv(t, control.Status{Ports: &control.PortsStatus{
		Ports: []control.PortStatus{{Port: 443, Reason: "no_service"}},
	}}, nil)
	wantBody(t, none.owner.get("/admin"), `id="ports">`+none.message("admin.ports.no_router"), `id="ports-manual"`)
}

func TestDashboardCertificateWarning(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name    string
		cert    control.CertificateStatus
		want    []string
		notWant []string
	}{
		{
			name: "agent's expiry warning",
			cert: control.CertificateStatus{
				Names: []string{"example.org"}, NotAfter: now.Add(20 * 24 * time.Hour), ExpiryWarning: true,
				Issuer: "(STAGING) Ersatz Edamame E1", Challenge: "http-01",
			},
			want:    []string{`id="certificate-warning"`, "läuft bald ab", `id="certificate-issuer">(STAGING) Ersatz Edamame E1<`, `id="certificate-challenge">HTTP-01<`},
			notWant: []string{"certificate-failed", "certificate-next"},
		},
		{
			name:    "valid",
			cert:    control.CertificateStatus{Names: []string{"example.org"}, NotAfter: now.Add(60 * 24 * time.Hour), Issuer: "R11", Challenge: "dns-01"},
			want:    []string{`id="certificate-challenge">DNS-01<`},
			notWant: []string{"certificate-warning", "certificate-failed", `class="error"`},
		},
		{
			name: "renewal failed",
			cert: control.CertificateStatus{
				Names: []string{"example.org"}, NotAfter: now.Add(40 * 24 * time.Hour), Issuer: "R11",
				LastError: "acme: urn:ietf:params:acme:error:connection: 203.0.113.5: Timeout during connect", NextAttempt: now.Add(time.Hour),
			},
			want: []string{
				`id="certificate-failed"`, "Port 80 oder 443 ist nicht an die Box weitergeleitet",
				"Timeout during connect", `id="certificate-next">`, "Sie nutzt das bisherige weiter",
			},
			notWant: []string{"certificate-warning"},
		},
		{
			// Without a certificate there is none to keep using.
			name: "first certificate failed",
			cert: control.CertificateStatus{
				Names: []string{"example.org"}, ExpiryWarning: true,
				LastError: "acme: urn:ietf:params:acme:error:dns: NXDOMAIN looking up A for example.org", NextAttempt: now.Add(time.Hour),
			},
			want:    []string{`id="certificate-warning"`, "noch kein Zertifikat", "hat noch kein Zertifikat bekommen", "Port 80 oder 443"},
			notWant: []string{"bisherige"},
		},
		{
			name: "first local certificate failed",
			cert: control.CertificateStatus{
				Names: []string{"heimwolke.local"}, ExpiryWarning: true, Local: true,
				LastError: "writing certificate: no space left on device",
			},
			want:    []string{"konnte sich noch kein eigenes Zertifikat ausstellen"},
			notWant: []string{"bisherige"},
		},
		{
			name:    "expired",
			cert:    control.CertificateStatus{Names: []string{"example.org"}, NotAfter: now.Add(-time.Hour), ExpiryWarning: true},
			want:    []string{`id="certificate-warning"`, "ist am", "abgelaufen"},
			notWant: []string{"läuft bald ab"},
		},
		{
			name:    "none issued yet",
			cert:    control.CertificateStatus{Names: []string{"example.org"}, ExpiryWarning: true},
			want:    []string{`id="certificate-warning"`, "noch kein Zertifikat"},
			notWant: []string{"läuft bald ab", "abgelaufen"},
		},
		{
			// The agent flags every certificate of the local CA, whose
			// lifetime is 14 days.
			name:    "local, renewed in time",
			cert:    control.CertificateStatus{Names: []string{"heimwolke.local"}, NotAfter: now.Add(9 * 24 * time.Hour), ExpiryWarning: true, Local: true},
			want:    []string{"der eigenen Zertifizierungsstelle der Box"},
			notWant: []string{"certificate-warning", "läuft bald ab", "certificate-challenge"},
		},
		{
			name:    "local, renewal overdue",
			cert:    control.CertificateStatus{Names: []string{"heimwolke.local"}, NotAfter: now.Add(2 * 24 * time.Hour), ExpiryWarning: true, Local: true},
			want:    []string{`id="certificate-warning"`, "läuft bald ab"},
			notWant: []string{"certificate-challenge"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cert := c.cert
			env := dashboardEnv(t, control.Status{Certificate: &cert}, nil)
			res := env.owner.get("/admin")
			wantStatus(t, res, http.StatusOK)
			section := upTo(element(t, res.body, "certificate-title"), "</section>")
			for _, want := range c.want {
				if !strings.Contains(section, want) {
					t.Errorf("certificate section lacks %q:\n%s", want, section)
				}
			}
			for _, notWant := range c.notWant {
				if strings.Contains(section, notWant) {
					t.Errorf("certificate section contains %q:\n%s", notWant, section)
				}
			}
			if !cert.NotAfter.IsZero() && strings.Contains(section, `id="certificate-warning"`) {
				date := html.EscapeString(env.timeIn("de", cert.NotAfter))
				if !strings.Contains(upTo(element(t, section, "certificate-warning"), "</p>"), date) {
					t.Errorf("warning does not name the expiry %s", date)
				}
			}
		})
	}
}

// writeTestRoot makes a self-signed CA certificate like the box's local
// root, writes it to a root.pem in a temporary folder followed by extra,
// and returns the path and the certificate.
func writeTestRoot(t *testing.T, extra string) (string, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	template := &x509.Certificate{
		SerialNumber:          big.NewInt(42),
		Subject:               pkix.Name{CommonName: "Heimwolke box local CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		PermittedDNSDomains:   []string{"heimwolke.local"},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(t.TempDir(), "localca", "root.pem")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), extra...)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, cert
}

// localEnv is a dashboard whose agent reports a certificate of the local
// CA, with the root at rootFile.
func localEnv(t *testing.T, rootFile string) *adminEnv {
	t.Helper()
	return dashboardEnv(t, control.Status{Certificate: &control.CertificateStatus{
		Names: []string{"heimwolke.local"}, NotAfter: time.Now().Add(10 * 24 * time.Hour), Local: true,
		Issuer: "Heimwolke box local CA",
	}}, func(o *Options) { o.LocalRootFile = rootFile })
}

func TestLocalRootDashboardLinks(t *testing.T) {
	path, _ := writeTestRoot(t, "")
	env := localEnv(t, path)
	res := env.owner.get("/admin")
	wantBody(t, res, `id="local-ca"`, `href="/ca/heimwolke-root.crt"`, `href="/ca/heimwolke-root.cer"`, `href="/ca/"`)

	missing := localEnv(t, filepath.Join(t.TempDir(), "root.pem"))
	res = missing.owner.get("/admin")
	wantBody(t, res, `id="local-ca-missing"`)
	wantNotInBody(t, res, "/ca/heimwolke-root")
}

func TestLocalRootDownload(t *testing.T) {
	// A key after the certificate, as in a wrongly set LocalRootFile,
	// must never be served.
	keyBlock := "-----BEGIN EC PRIVATE KEY-----\nc2VjcmV0IGtleSBtYXRlcmlhbA==\n-----END EC PRIVATE KEY-----\n"
	path, root := writeTestRoot(t, keyBlock)
	env := localEnv(t, path)
	visitor := newBrowser(t, env.h, otherLANAddr) // not logged in

	pemRes := visitor.get("/ca/heimwolke-root.crt")
	wantStatus(t, pemRes, http.StatusOK)
	if got := pemRes.header.Get("Content-Type"); got != "application/x-x509-ca-cert" {
		t.Errorf(".crt Content-Type = %q, want application/x-x509-ca-cert", got)
	}
	if got := pemRes.header.Get("Content-Disposition"); got != `attachment; filename="heimwolke-root.crt"` {
		t.Errorf(".crt Content-Disposition = %q", got)
	}
	block, rest := pem.Decode([]byte(pemRes.body))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf(".crt body is not a PEM certificate:\n%s", pemRes.body)
	}
	if len(rest) != 0 || strings.Contains(pemRes.body, "PRIVATE KEY") {
		t.Errorf(".crt body has more than the certificate:\n%s", pemRes.body)
	}
	fromPEM, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parsing the .crt download: %v", err)
	}
	if !fromPEM.Equal(root) {
		t.Errorf(".crt download is %q, want the root %q", fromPEM.Subject, root.Subject)
	}

	derRes := visitor.get("/ca/heimwolke-root.cer")
	wantStatus(t, derRes, http.StatusOK)
	if got := derRes.header.Get("Content-Disposition"); got != `attachment; filename="heimwolke-root.cer"` {
		t.Errorf(".cer Content-Disposition = %q", got)
	}
	fromDER, err := x509.ParseCertificate([]byte(derRes.body))
	if err != nil {
		t.Fatalf("parsing the .cer download as DER: %v", err)
	}
	if !fromDER.Equal(root) || !fromDER.IsCA {
		t.Errorf(".cer download is %q (CA %v), want the root CA %q", fromDER.Subject, fromDER.IsCA, root.Subject)
	}

	// The page shows the fingerprint that OpenSSL computes from the DER
	// download.
	openssl := testpeer.Require(t, "openssl", "openssl")
	derFile := filepath.Join(t.TempDir(), "heimwolke-root.cer")
	if err := os.WriteFile(derFile, []byte(derRes.body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(openssl, "x509", "-inform", "DER", "-in", derFile, "-noout", "-fingerprint", "-sha256").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509 -inform DER: %v\n%s", err, out)
	}
	_, sum, found := strings.Cut(strings.TrimSpace(string(out)), "=")
	if !found {
		t.Fatalf("openssl printed no fingerprint: %s", out)
	}
	page := visitor.get("/ca/")
	wantStatus(t, page, http.StatusOK)
	wantBody(t, page, `id="root-fingerprint">`+sum+"<", "Heimwolke box local CA")
}

func TestLocalRootPage(t *testing.T) {
	path, _ := writeTestRoot(t, "")
	env := localEnv(t, path)
	visitor := newBrowser(t, env.h, otherLANAddr)

	res := visitor.get("/ca/?lang=en")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res,
		env.messageIn("en", "admin.localca.title"),
		`href="/ca/heimwolke-root.crt"`, `href="/ca/heimwolke-root.cer"`,
		`id="steps-android"`, `id="steps-ios"`, `id="steps-windows"`, `id="steps-macos"`, `id="steps-linux"`,
		env.messageIn("en", "admin.localca.ios.3"),
		`href="`+certificateDocs["en"]+`"`,
		`href="/ca/?lang=de"`,
	)
	wantNotInBody(t, res, "admin.localca.")

	res = visitor.get("/ca/?lang=de")
	wantBody(t, res, env.messageIn("de", "admin.localca.android.2"), `href="`+certificateDocs["de"]+`"`)
}

func TestLocalRootNotAvailable(t *testing.T) {
	cases := []struct{ name, file string }{
		{"no option", ""},
		{"no file", filepath.Join(t.TempDir(), "root.pem")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := localEnv(t, c.file)
			visitor := newBrowser(t, env.h, otherLANAddr)
			for _, path := range []string{"/ca/", "/ca/heimwolke-root.crt", "/ca/heimwolke-root.cer"} {
				wantStatus(t, visitor.get(path), http.StatusNotFound)
			}
		})
	}

	broken := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(broken, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := localEnv(t, broken)
	wantStatus(t, newBrowser(t, env.h, otherLANAddr).get("/ca/heimwolke-root.cer"), http.StatusNotFound)
	if !strings.Contains(strings.Join(env.logs.Lines(), "\n"), "local root certificate unreadable") {
		t.Error("unreadable root not logged")
	}
}

func TestLocalRootGates(t *testing.T) {
	path, _ := writeTestRoot(t, "")
	env := localEnv(t, path)

	// Plain HTTP from the internet gets the LAN-only page, as everywhere.
	res := newBrowser(t, env.h, internetAddr).get("/ca/heimwolke-root.crt")
	wantStatus(t, res, http.StatusForbidden)

	// Over HTTPS the root is public.
	b := newBrowser(t, env.h, internetAddr)
	b.tls = true
	wantStatus(t, b.get("/ca/heimwolke-root.cer"), http.StatusOK)
}
