package smtp

import (
	"strings"
	"testing"
)

// TestInboundChecks sends from 127.0.0.1 for sender domains whose SPF and
// DMARC records the test DNS server publishes, and checks where each
// message ends up.
func TestInboundChecks(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	e.dns.addTXT(t, "good.test", "v=spf1 ip4:127.0.0.1 -all")
	e.dns.addTXT(t, "_dmarc.good.test", "v=DMARC1; p=reject")
	e.dns.addTXT(t, "strict.test", "v=spf1 -all")
	e.dns.addTXT(t, "_dmarc.strict.test", "v=DMARC1; p=reject")
	e.dns.addTXT(t, "lax.test", "v=spf1 -all")
	e.dns.addTXT(t, "_dmarc.lax.test", "v=DMARC1; p=none")
	e.dns.addTXT(t, "nodmarc.test", "v=spf1 -all")
	e.dns.addTXT(t, "sub.org.test", "v=spf1 -all")
	e.dns.addTXT(t, "_dmarc.org.test", "v=DMARC1; p=none; sp=reject")

	tests := []struct {
		name, from string
		wantReply  string // a reply that the transcript must contain
		wantFolder string // "" when the message must be rejected
		wantAR     []string
	}{
		{"spf pass aligned", "news@good.test", "250 2.0.0", "INBOX", []string{"spf=pass", "dmarc=pass header.from=good.test"}},
		{"dmarc reject", "ceo@strict.test", "550 5.7.1", "", nil},
		{"dmarc none fails to junk", "x@lax.test", "250 2.0.0", "Junk", []string{"spf=fail", "dmarc=fail header.from=lax.test"}},
		{"spf fail without dmarc to junk", "x@nodmarc.test", "250 2.0.0", "Junk", []string{"spf=fail", "dmarc=none"}},
		{"subdomain policy reject", "x@sub.org.test", "550 5.7.1", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.deliverer.all())
			out, _ := e.swaksInbound(t, tc.from, "anna@example.test", "--h-From", tc.from)
			if !strings.Contains(out, tc.wantReply) {
				t.Fatalf("transcript lacks %q:\n%s", tc.wantReply, out)
			}
			msgs := e.deliverer.all()[before:]
			if tc.wantFolder == "" {
				if len(msgs) != 0 {
					t.Fatalf("rejected message was delivered to %s", msgs[0].folder)
				}
				return
			}
			if len(msgs) != 1 {
				t.Fatalf("got %d deliveries, want 1", len(msgs))
			}
			if msgs[0].folder != tc.wantFolder {
				t.Errorf("delivered to %s, want %s", msgs[0].folder, tc.wantFolder)
			}
			for _, want := range tc.wantAR {
				if !strings.Contains(string(msgs[0].msg), want) {
					t.Errorf("message lacks %q:\n%s", want, msgs[0].msg)
				}
			}
		})
	}
}

// TestInboundRemovesForgedResults guards against a sender that adds an
// Authentication-Results field in the box's name to fake a pass.
func TestInboundRemovesForgedResults(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	e.dns.addTXT(t, "lax.test", "v=spf1 -all")
	out, code := e.swaksInbound(t, "x@lax.test", "anna@example.test",
		"--add-header", "Authentication-Results: "+testHost+"; dmarc=pass header.from=lax.test")
	if code != 0 {
		t.Fatalf("swaks exit code %d:\n%s", code, out)
	}
	msgs := e.deliverer.all()
	if len(msgs) != 1 {
		t.Fatalf("got %d deliveries, want 1", len(msgs))
	}
	if n := strings.Count(string(msgs[0].msg), "Authentication-Results: "+testHost); n != 1 {
		t.Errorf("message has %d Authentication-Results fields of the box, want 1:\n%s", n, msgs[0].msg)
	}
	if strings.Contains(string(msgs[0].msg), "dmarc=pass") {
		t.Errorf("forged dmarc=pass survived:\n%s", msgs[0].msg)
	}
}
