package webui

import (
	"net/http"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/control"
)

func TestDashboardRebindBlocked(t *testing.T) {
	env := dashboardEnv(t, control.Status{Network: &control.NetworkStatus{
		Class:      control.NetworkPublic,
		PublicIPv4: "198.51.100.7",
		Rebind:     "blocked",
		RebindName: "familie-mueller.de",
	}}, nil)

	for _, lang := range []accounts.Language{accounts.LanguageGerman, accounts.LanguageEnglish} {
		t.Run(string(lang), func(t *testing.T) {
			env.setOwnerLanguage(t, lang)
			res := env.owner.get("/admin")
			wantStatus(t, res, http.StatusOK)
			l := string(lang)

			card := upTo(element(t, res.body, "rebind"), "</section>")
			if !strings.Contains(card, `class="card failed" id="rebind"`) {
				t.Errorf("blocked rebind card is not marked as failed:\n%s", card)
			}
			for _, key := range []string{"rebind.blocked.title", "rebind.blocked.meaning", "rebind.blocked.fritzbox", "rebind.blocked.other"} {
				want := env.messageIn(l, key, "name", "familie-mueller.de")
				if !strings.Contains(card, want) {
					t.Errorf("rebind card lacks %s %q:\n%s", key, want, card)
				}
				if !strings.Contains(want, "familie-mueller.de") {
					t.Errorf("%s in %s does not name the checked name: %q", key, l, want)
				}
			}
			if strings.Contains(card, "{name}") {
				t.Errorf("rebind card has an unfilled {name}:\n%s", card)
			}
			if strings.Contains(card, `id="rebind-action"`) {
				t.Errorf("blocked rebind card has a retry action:\n%s", card)
			}
		})
	}
}

func TestDashboardRebindStates(t *testing.T) {
	cases := []struct {
		rebind, card, key string
		action            bool
	}{
		{"ok", "done", "rebind.ok", false},
		{"unknown", "waiting", "rebind.unknown", true},
		{"carrier_pigeon", "waiting", "rebind.unrecognized", false},
	}
	for _, c := range cases {
		t.Run(c.rebind, func(t *testing.T) {
			// Without RebindName, the card names the DNS host name.
			env := dashboardEnv(t, control.Status{
				Network: &control.NetworkStatus{Class: control.NetworkPublic, Rebind: c.rebind},
				DNS:     &control.DNSStatus{Hostname: "box.example.org"},
			}, nil)
			res := env.owner.get("/admin")
			wantStatus(t, res, http.StatusOK)

			card := upTo(element(t, res.body, "rebind"), "</section>")
			if want := `class="card ` + c.card + `" id="rebind"`; !strings.Contains(card, want) {
				t.Errorf("card lacks %q:\n%s", want, card)
			}
			for _, part := range []string{".title", ".meaning"} {
				want := env.message(c.key+part, "name", "box.example.org", "code", c.rebind)
				if !strings.Contains(card, want) {
					t.Errorf("card lacks %s%s %q:\n%s", c.key, part, want, card)
				}
			}
			if got := strings.Contains(card, `id="rebind-action"`); got != c.action {
				t.Errorf("card has an action: got %v, want %v", got, c.action)
			}
			if strings.Contains(card, `id="rebind-fritzbox"`) {
				t.Errorf("card shows the FRITZ!Box steps for %q:\n%s", c.rebind, card)
			}
		})
	}
}

func TestDashboardRebindNotChecked(t *testing.T) {
	env := dashboardEnv(t, control.Status{Network: &control.NetworkStatus{Class: control.NetworkPublic}}, nil)
	wantNotInBody(t, env.owner.get("/admin"), `id="rebind"`)
}
