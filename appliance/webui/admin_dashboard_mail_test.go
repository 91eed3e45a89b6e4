package webui

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/control"
)

// TestDashboardMailState guards against a mail card that reports no mail
// service while the box runs one: the card follows the agent's settings
// and counts the queue.
func TestDashboardMailState(t *testing.T) {
	withMail := control.Settings{
		SchemaVersion: control.SchemaVersion,
		Domain:        "familie-mueller.de",
		Mail:          control.MailSettings{Smarthost: &control.SmarthostSettings{Host: "smtp.example.net", Port: 465}},
		Services:      control.ServiceSettings{Mail: true},
	}
	mailOffSettings := withMail
	mailOffSettings.Services.Mail = false
	noDomain := withMail
	noDomain.Domain = ""

	cases := []struct {
		name     string
		settings control.Settings
		state    string
		want     []string
		dontWant []string
	}{
		{"running", withMail, "on",
			[]string{`id="mail-domain">familie-mueller.de<`, `id="mail-relay">smtp.example.net<`, `id="mail-queue"><a href="/admin/mail">2</a>`},
			[]string{`id="mail-hint"`}},
		{"not chosen", mailOffSettings, "off", []string{`id="mail-hint"`}, []string{`id="mail-domain"`}},
		{"no domain", noDomain, "no_domain", []string{`id="mail-hint"`}, []string{`id="mail-domain"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var agent *testAgent
			env := newAdminEnv(t, func(o *Options) {
				agent = startTestAgent(t, filepath.Join(t.TempDir(), "agent.sock"))
				o.AgentSocket = agent.socket
				o.Mail = MailServices{Queue: staticQueue{{To: "a@example.com"}, {To: "b@example.com"}}}
			})
			agent.serveSettings(tc.settings)

			res := env.owner.get("/admin")
			wantStatus(t, res, http.StatusOK)
			card := upTo(element(t, res.body, "service-mail"), "</li>")
			want := append([]string{`id="mail-state">` + env.message("admin.mail.state."+tc.state) + "<"}, tc.want...)
			if tc.state != "on" {
				want = append(want, env.message("admin.mail.hint."+tc.state))
			}
			for _, w := range want {
				if !strings.Contains(card, w) {
					t.Errorf("mail card lacks %q:\n%s", w, card)
				}
			}
			for _, w := range tc.dontWant {
				if strings.Contains(card, w) {
					t.Errorf("mail card contains %q:\n%s", w, card)
				}
			}
		})
	}
}

func TestDashboardMailAgentUnreachable(t *testing.T) {
	env := newAdminEnv(t, nil)
	card := upTo(element(t, env.owner.get("/admin").body, "service-mail"), "</li>")
	for _, want := range []string{
		`id="mail-state">` + env.message("admin.mail.state.unknown") + "<",
		env.message("admin.mail.hint.unknown"),
	} {
		if !strings.Contains(card, want) {
			t.Errorf("mail card lacks %q:\n%s", want, card)
		}
	}
}

// TestDashboardManualPortsFollowChat guards against manual port forwarding
// steps that list the XMPP ports while chat is off, or the mail ports while
// mail is off.
func TestDashboardManualPortsFollowChat(t *testing.T) {
	for _, chat := range []bool{false, true} {
		mail := !chat
		var agent *testAgent
		env := newAdminEnv(t, func(o *Options) {
			agent = startTestAgent(t, filepath.Join(t.TempDir(), "agent.sock"))
			o.AgentSocket = agent.socket
		})
		agent.setStatus(control.Status{Ports: &control.PortsStatus{
			Router: "upnp-igd2 192.168.178.1",
			Ports:  []control.PortStatus{{Port: 443, Reason: "no_public_ipv4"}},
		}})
		agent.serveSettings(control.Settings{SchemaVersion: control.SchemaVersion, Domain: "familie-mueller.de",
			Services: control.ServiceSettings{Mail: mail, Chat: chat}})

		res := env.owner.get("/admin")
		wantStatus(t, res, http.StatusOK)
		manual := upTo(element(t, res.body, "ports-manual"), "</details>")
		if !strings.Contains(manual, env.message("router.manual.ports")) {
			t.Errorf("chat %v: manual steps lack the port list:\n%s", chat, manual)
		}
		if got := strings.Contains(manual, "5222"); got != chat {
			t.Errorf("chat %v: manual steps name port 5222: got %v, want %v", chat, got, chat)
		}
		if got := strings.Contains(manual, "993"); got != mail {
			t.Errorf("mail %v: manual steps name port 993: got %v, want %v", mail, got, mail)
		}
	}
}
