package webui

import (
	"net/http"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/control"
)

// TestProgressFollowsAgentStatus checks how the progress page reads the
// agent's status: what it waits for, what failed and where to fix it, and
// when it stops reloading itself.
func TestProgressFollowsAgentStatus(t *testing.T) {
	now := time.Now()
	const domain = "familie-mueller.de"
	dnsDone := &control.DNSStatus{Provider: "hetzner", Hostname: domain, IPv4: "198.51.100.7", IPv6: "2001:db8::7", LastUpdate: now}
	// A dynDNS account has no API for other records, so the agent proves
	// the domain over HTTP-01, which needs the router.
	dynDNSDone := &control.DNSStatus{Provider: "dyndns2", Hostname: domain, IPv4: "198.51.100.7", IPv6: "2001:db8::7", LastUpdate: now}
	certDone := &control.CertificateStatus{Names: []string{domain}, NotAfter: now.Add(90 * 24 * time.Hour)}
	tests := []struct {
		name          string
		status        control.Status
		servicesReady func() bool
		// want holds the states of dns, certificate and services.
		want     [3]string
		fix      [3]string
		detail   string
		refresh  bool
		allDone  bool
		textKeys [3]string
	}{
		{"agent does nothing yet", control.Status{}, nil,
			[3]string{progressWaiting, progressWaiting, progressWaiting}, [3]string{}, "", true, false,
			[3]string{"setup.progress.dns.waiting", "setup.progress.certificate.waiting", "setup.progress.services.after_certificate"}},
		{"provider rejects the token", control.Status{DNS: &control.DNSStatus{Hostname: domain, LastError: "401 Unauthorized from api.hetzner.cloud"}}, nil,
			[3]string{progressFailed, progressWaiting, progressWaiting}, [3]string{"/setup/domain", "", ""}, "401 Unauthorized from api.hetzner.cloud", true, false,
			[3]string{"setup.progress.dns.failed", "setup.progress.certificate.waiting", "setup.progress.services.after_certificate"}},
		{"DNS of another name", control.Status{DNS: &control.DNSStatus{Hostname: "old.example.net", LastUpdate: now}}, nil,
			[3]string{progressWaiting, progressWaiting, progressWaiting}, [3]string{}, "", true, false,
			[3]string{"setup.progress.dns.waiting", "setup.progress.certificate.waiting", "setup.progress.services.after_certificate"}},
		{"certificate for other names", control.Status{DNS: dnsDone, Certificate: &control.CertificateStatus{Names: []string{"heimwolke.local"}, NotAfter: now.Add(time.Hour)}}, nil,
			[3]string{progressDone, progressWaiting, progressWaiting}, [3]string{}, "", true, false,
			[3]string{"setup.progress.dns.done", "setup.progress.certificate.waiting", "setup.progress.services.after_certificate"}},
		{"certificate authority fails", control.Status{DNS: dynDNSDone, Certificate: &control.CertificateStatus{LastError: "http-01 challenge: connection refused"}}, nil,
			[3]string{progressDone, progressFailed, progressWaiting}, [3]string{"", "/setup/router", ""}, "http-01 challenge: connection refused", true, false,
			[3]string{"setup.progress.dns.done", "setup.progress.certificate.failed", "setup.progress.services.after_certificate"}},
		{"DNS-01 fails at the provider", control.Status{DNS: dnsDone, Certificate: &control.CertificateStatus{LastError: "dns-01: 401 Unauthorized from api.hetzner.cloud"}}, nil,
			[3]string{progressDone, progressFailed, progressWaiting}, [3]string{"", "/setup/domain", ""}, "dns-01: 401 Unauthorized from api.hetzner.cloud", true, false,
			[3]string{"setup.progress.dns.done", "setup.progress.certificate.failed_dns", "setup.progress.services.after_certificate"}},
		{"services cannot be checked", control.Status{DNS: dnsDone, Certificate: certDone}, nil,
			[3]string{progressDone, progressDone, progressWaiting}, [3]string{}, "", true, false,
			[3]string{"setup.progress.dns.done", "setup.progress.certificate.done", "setup.progress.services.unknown"}},
		{"services starting", control.Status{DNS: dnsDone, Certificate: certDone}, func() bool { return false },
			[3]string{progressDone, progressDone, progressWaiting}, [3]string{}, "", true, false,
			[3]string{"setup.progress.dns.done", "setup.progress.certificate.done", "setup.progress.services.starting"}},
		{"everything done", control.Status{DNS: dnsDone, Certificate: certDone}, func() bool { return true },
			[3]string{progressDone, progressDone, progressDone}, [3]string{}, "", false, true,
			[3]string{"setup.progress.dns.done", "setup.progress.certificate.done", "setup.progress.services.done"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newWizardEnv(t, func(o *Options) { o.ServicesReady = tt.servicesReady })
			env.agent.setStatus(tt.status)
			b := newBrowser(t, env.h, lanAddr)
			walkWizard(t, b)
			wantRedirect(t, b.submit("/setup/summary", "/setup/apply", form()), "/setup/progress")

			report := progressOf(t, b)
			if len(report.Steps) != 5 {
				t.Fatalf("got %d steps, want 5", len(report.Steps))
			}
			until := ""
			if c := tt.status.Certificate; c != nil {
				until = c.NotAfter.In(time.Local).Format(env.h.t("de", "format.datetime"))
			}
			for i, id := range []string{"dns", "certificate", "services"} {
				s := report.Steps[i+2]
				if s.ID != id {
					t.Fatalf("step %d is %q, want %q", i+2, s.ID, id)
				}
				if s.State != tt.want[i] {
					t.Errorf("%s: state %q, want %q", id, s.State, tt.want[i])
				}
				if s.FixPath != tt.fix[i] {
					t.Errorf("%s: fix path %q, want %q", id, s.FixPath, tt.fix[i])
				}
				if s.Text != env.h.t("de", tt.textKeys[i], "name", domain, "addresses", "198.51.100.7, 2001:db8::7",
					"until", until) {
					t.Errorf("%s: text %q, want the message %s", id, s.Text, tt.textKeys[i])
				}
			}
			if tt.detail != "" {
				res := b.get("/setup/progress")
				wantBody(t, res, tt.detail)
			}
			if report.Waiting != tt.refresh || report.AllDone != tt.allDone || !report.CanFinish {
				t.Errorf("report: waiting %v, all done %v, can finish %v; want %v, %v, true",
					report.Waiting, report.AllDone, report.CanFinish, tt.refresh, tt.allDone)
			}

			res := b.get("/setup/progress")
			wantStatus(t, res, http.StatusOK)
			wantRefresh := ""
			if tt.refresh {
				wantRefresh = "5"
			}
			if got := res.header.Get("Refresh"); got != wantRefresh {
				t.Errorf("Refresh header: got %q, want %q", got, wantRefresh)
			}
			wantBody(t, res, `id="finish"`)
		})
	}
}

func TestProgressWithoutDomain(t *testing.T) {
	env := newWizardEnv(t, func(o *Options) { o.ServicesReady = func() bool { return true } })
	env.agent.setStatus(control.Status{Certificate: &control.CertificateStatus{
		Names: []string{"heimwolke.local"}, NotAfter: time.Now().Add(365 * 24 * time.Hour)}})
	b := newBrowser(t, env.h, lanAddr)
	walkWizard(t, b)
	wantRedirect(t, b.submit("/setup/domain", "/setup/domain", form("domain_mode", "none")), "/setup/router")
	wantBody(t, b.get("/setup/router"), `id="router-lan-only"`)
	summary := b.get("/setup/summary")
	wantBody(t, summary, env.message("de", "setup.summary.lan_only"))
	wantNotInBody(t, summary, hetznerToken)
	wantRedirect(t, b.submit("/setup/summary", "/setup/apply", form()), "/setup/progress")

	report := progressOf(t, b)
	var states []string
	for _, s := range report.Steps {
		states = append(states, s.State)
	}
	want := []string{progressDone, progressDone, progressSkipped, progressDone, progressDone}
	for i := range want {
		if states[i] != want[i] {
			t.Errorf("states: got %v, want %v", states, want)
			break
		}
	}
	if report.Steps[3].Text != env.h.t("de", "setup.progress.certificate.local_done") {
		t.Errorf("certificate text %q, want the local certificate authority's message", report.Steps[3].Text)
	}
	if !report.AllDone {
		t.Error("all done: got false, want true")
	}
	if got := env.agent.received(); len(got) != 1 || got[0].Domain != "" || got[0].DNS != (control.DNSSettings{}) || got[0].ACME.Email != "" {
		t.Errorf("settings without a domain: got %+v, want no domain, DNS or ACME address", got)
	}
}

// TestProgressAgentGone checks the page when the agent took the settings
// and then stopped responding: the page keeps waiting rather than failing.
func TestProgressAgentGone(t *testing.T) {
	env := newTestEnv(t)
	b := newBrowser(t, env.h, lanAddr)
	walkWizard(t, b)
	wantRedirect(t, b.submit("/setup/summary", "/setup/apply", form()), "/setup/progress")
	env.h.wizard.agent = control.NewClient(env.agent.socket + ".gone")

	report := progressOf(t, b)
	for _, s := range report.Steps[2:4] {
		if s.State != progressWaiting || s.Text != env.h.t("de", "setup.progress.agent.no_status") {
			t.Errorf("%s: got %q %q, want waiting for the agent", s.ID, s.State, s.Text)
		}
	}
	if !report.CanFinish {
		t.Error("cannot finish although the agent has the settings")
	}
}

func TestProgressJSONBeforeApply(t *testing.T) {
	env := newTestEnv(t)
	b := newBrowser(t, env.h, lanAddr)
	walkWizard(t, b)
	res := b.get("/setup/progress.json")
	wantStatus(t, res, http.StatusNotFound)
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
}
