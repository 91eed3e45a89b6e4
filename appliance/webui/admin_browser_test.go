package webui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// TestBrowserAdminPages drives headless Chromium on a phone-sized screen
// through the owner's admin pages, and checks that no page scrolls
// sideways and that every form control has a label. It writes a PNG
// screenshot of every page to $HEIMWOLKE_SCREENSHOTS, or to a temporary
// folder that the test output names.
func TestBrowserAdminPages(t *testing.T) {
	chromium := testpeer.Require(t, "chromium", "chromium")
	shots := screenshotDir(t)

	started := time.Now().Add(-50 * time.Hour)
	socket := serveAgent(t, &fakeAgent{status: control.Status{
		Program:   "heimwolke-agent",
		Version:   "v0.4.0-rc.1+a1b2c3d-dirty",
		StartedAt: started,
		DNS: &control.DNSStatus{
			Provider: "desec", Hostname: "familie-mustermann.dedyn.io",
			IPv6: "2001:db8:1234:5678:9abc:def0:1234:5678", LastUpdate: started,
			Records: []control.RecordStatus{
				{Name: "familie-mustermann.dedyn.io", Type: "AAAA", Value: "2001:db8:1234:5678:9abc:def0:1234:5678", State: "published", LastUpdate: started},
				{Name: "familie-mustermann.dedyn.io", Type: "A", State: "missing"},
				{Name: "mail.familie-mustermann.dedyn.io", Type: "AAAA", Value: "2001:db8:1234:5678:9abc:def0:1234:5678", State: "wrong",
					LastError: "desec: PATCH https://desec.io/api/v1/domains/familie-mustermann.dedyn.io/rrsets/: 429 Too Many Requests"},
			},
		},
		Network: &control.NetworkStatus{
			Class: control.NetworkDSLite, PublicIPv6: "2001:db8:1234:5678:9abc:def0:1234:5678", CheckedAt: started,
			Disagreement: "fritzbox=100.64.0.1, ipify.org=198.51.100.77, icanhazip.com=198.51.100.78",
		},
		Ports: &control.PortsStatus{
			Router: "upnp-igd2 192.168.178.1",
			Ports: []control.PortStatus{
				{Port: 443, Mapped: true, Protocol: "upnp-igd2", Expires: time.Now().Add(2 * time.Hour)},
				{Port: 25, Reason: "port_in_use", Error: "AddPortMapping: UPnP error 718 ConflictInMappingEntry"},
				{Port: 587, Reason: "no_public_ipv4"},
				{Port: 993, Reason: "no_public_ipv4"},
			},
		},
		Certificate: &control.CertificateStatus{
			Names:    []string{"familie-mustermann.dedyn.io", "mail.familie-mustermann.dedyn.io"},
			NotAfter: time.Now().Add(10 * 24 * time.Hour), LastRenewal: started, ExpiryWarning: true,
			Issuer: "R11", Challenge: "tls-alpn-01", NextAttempt: time.Now().Add(time.Hour),
			LastError: "acme: error code 400 \"urn:ietf:params:acme:error:connection\": 198.51.100.77: Timeout during connect (likely firewall problem)",
		},
		Update: &control.UpdateStatus{State: control.UpdateFailed, LastCheck: started,
			LastError: "downloading https://updates.example.org/heimwolke/stable/rpi/manifest.json: connection timed out"},
	}})
	env := newAdminEnv(t, func(o *Options) { o.AgentSocket = socket })

	srv := httptest.NewServer(env.h) // listens on 127.0.0.1, a LAN address
	t.Cleanup(srv.Close)
	tab := newTab(t, chromium, srv.URL, shots, "de")
	tab.open("/login")
	tab.fill("login_name", "anna")
	tab.fill("login_password", ownerPassword)
	tab.click("login")

	if status := tab.open("/admin"); status != http.StatusOK {
		t.Fatalf("GET /admin: status %d, want 200", status)
	}
	tab.want(env.testEnv, "dashboard heading", tab.heading(), "admin.dashboard.title")
	checkPhoneLayout(t, tab, "dashboard")
	tab.shot("admin-1-dashboard")
	if !tab.eval(`(document.getElementById("log").open = true)`) {
		t.Fatal("log section is not a details element")
	}
	checkPhoneLayout(t, tab, "dashboard with the log open")
	tab.shot("admin-2-dashboard-log")
	if !tab.eval(`(document.getElementById("ports-manual").open = true)`) {
		t.Fatal("FRITZ!Box steps are not a details element")
	}
	checkPhoneLayout(t, tab, "dashboard with the FRITZ!Box steps open")
	tab.shot("admin-2b-dashboard-ports")

	tab.click("reboot")
	tab.want(env.testEnv, "reboot confirmation heading", tab.heading(), "admin.reboot.title")
	tab.shot("admin-3-reboot-confirm")
	tab.click("cancel")
	if env.rebooter.count() != 0 {
		t.Fatalf("reboots after cancel: got %d, want 0", env.rebooter.count())
	}
	tab.click("reboot")
	tab.click("confirm")
	tab.want(env.testEnv, "reboot started heading", tab.heading(), "admin.reboot.started.title")
	if env.rebooter.count() != 1 {
		t.Errorf("reboots after the confirmation: got %d, want 1", env.rebooter.count())
	}

	tab.open("/admin/people")
	checkPhoneLayout(t, tab, "people")
	tab.shot("admin-4-people")
	tab.fill("name", "clara")
	tab.fill("display_name", "Clara Zetkin-Müller-Lüdenscheidt")
	tab.fill("password", "tulpe fenster regen")
	tab.fill("password2", "tulpe fenster regen")
	tab.click("add-member")
	if got := tab.at(); got != "/admin/people?notice=member_added" {
		t.Fatalf("after adding a member at %s, want /admin/people?notice=member_added", got)
	}
	if got := tab.text("users"); !strings.Contains(got, "Clara Zetkin-Müller-Lüdenscheidt") {
		t.Errorf("user list %q lacks the new member", got)
	}
	checkPhoneLayout(t, tab, "people with three users")
	tab.shot("admin-5-people-added")

	tab.click("delete-clara")
	tab.want(env.testEnv, "delete confirmation heading", tab.heading(), "admin.people.delete.title")
	tab.shot("admin-6-delete-confirm")
	tab.click("confirm")
	if got := tab.at(); got != "/admin/people?notice=member_deleted" {
		t.Errorf("after deleting at %s, want /admin/people?notice=member_deleted", got)
	}

	tab.open("/admin/reset")
	checkPhoneLayout(t, tab, "factory reset")
	tab.shot("admin-7-reset")
	tab.fill("reset_box_name", "box.example.org")
	tab.fill("reset_password", ownerPassword)
	tab.click("reset")
	tab.want(env.testEnv, "reset done heading", tab.heading(), "admin.reset.done.title")
	tab.shot("admin-8-reset-done")
	if env.resetter.count() != 1 {
		t.Errorf("resets: got %d, want 1", env.resetter.count())
	}

	member := newTab(t, chromium, srv.URL, shots, "en")
	member.open("/login")
	member.fill("login_name", "ben")
	member.fill("login_password", memberPassword)
	member.click("login")
	if status := member.open("/admin"); status != http.StatusForbidden {
		t.Errorf("GET /admin as a member: status %d, want 403", status)
	}
	member.want(env.testEnv, "member's heading", member.heading(), "admin.forbidden.title")
	member.shot("admin-9-member-forbidden")
}

// checkPhoneLayout fails the test when the page is wider than the screen or
// has a form control without a label.
func checkPhoneLayout(t *testing.T, b *tab, page string) {
	t.Helper()
	// clientWidth is the width of the layout viewport, 390 CSS pixels
	// here. innerWidth would not do: a phone zooms out to fit a page that is
	// too wide, and innerWidth grows with it.
	if !b.eval(`document.documentElement.scrollWidth <= document.documentElement.clientWidth`) {
		t.Errorf("%s: the page is wider than the phone's screen", page)
	}
	unlabelled := `Array.from(document.querySelectorAll("main input:not([type=hidden]):not([hidden]), main select"))` +
		`.every(e => e.labels.length > 0)`
	if !b.eval(unlabelled) {
		t.Errorf("%s: a form control has no label", page)
	}
	buttons := `Array.from(document.querySelectorAll("main button")).every(e => e.textContent.trim() !== "")`
	if !b.eval(buttons) {
		t.Errorf("%s: a button has no text", page)
	}
}

// TestBrowserLocalRoot checks on a phone-sized screen in headless Chromium
// the dashboard of a box without a domain, which offers its own root
// certificate, and the install page that the household opens without
// logging in.
func TestBrowserLocalRoot(t *testing.T) {
	chromium := testpeer.Require(t, "chromium", "chromium")
	shots := screenshotDir(t)
	rootFile, _ := writeTestRoot(t, "")
	env := localEnv(t, rootFile)

	srv := httptest.NewServer(env.h) // listens on 127.0.0.1, a LAN address
	t.Cleanup(srv.Close)
	tab := newTab(t, chromium, srv.URL, shots, "de")
	tab.open("/login")
	tab.fill("login_name", "anna")
	tab.fill("login_password", ownerPassword)
	tab.click("login")
	if status := tab.open("/admin"); status != http.StatusOK {
		t.Fatalf("GET /admin: status %d, want 200", status)
	}
	if got := tab.text("download-cer"); got != "heimwolke-root.cer" {
		t.Errorf("DER download link reads %q, want heimwolke-root.cer", got)
	}
	checkPhoneLayout(t, tab, "dashboard in LAN-only mode")
	tab.shot("admin-10-dashboard-local-ca")

	for _, lang := range []string{"de", "en"} {
		visitor := newTab(t, chromium, srv.URL, shots, lang)
		if status := visitor.open("/ca/"); status != http.StatusOK {
			t.Fatalf("GET /ca/ in %s: status %d, want 200", lang, status)
		}
		visitor.want(env.testEnv, "install page heading", visitor.heading(), "admin.localca.title")
		if !visitor.eval(`Array.from(document.querySelectorAll("details")).every(d => (d.open = true))`) {
			t.Fatal("install steps are not details elements")
		}
		checkPhoneLayout(t, visitor, "install page with every step open")
		visitor.shot("admin-11-local-ca")
	}
}
