package smtp

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/mail/queue"
	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

func TestPostfixDeliversToBox(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	p := startPostfix(t, postfixOptions{boxAddr: e.inbound})
	host, port := hostPort(t, p.addr())
	out, code := testpeer.Swaks(t, "--server", host, "--port", port, "--from", "friend@remote.test",
		"--to", "anna@example.test", "--h-Subject", "via postfix")
	if code != 0 {
		t.Fatalf("swaks to postfix: exit code %d:\n%s", code, out)
	}
	waitFor(t, 30*time.Second, "the message from postfix", func() bool { return len(e.deliverer.all()) == 1 })
	got := e.deliverer.all()[0]
	if got.login != "anna" || !strings.Contains(string(got.msg), "via postfix") {
		t.Errorf("delivery = %s/%s, want anna with subject 'via postfix':\n%s", got.login, got.folder, got.msg)
	}
	if !strings.Contains(string(got.msg), "by mx.remote.test (Postfix)") {
		t.Errorf("message did not pass through postfix:\n%s", got.msg)
	}
	if !strings.Contains(string(got.msg), "by "+testHost+" with ESMTPS") {
		t.Errorf("postfix did not use STARTTLS to the box:\n%s", got.msg)
	}
}

// directEnv starts Postfix as the MX of remote.test, with a certificate
// for mx.remote.test, and a box whose queue delivers there directly.
func directEnv(t *testing.T) (*testEnv, *postfix) {
	cert := testpeer.SelfSigned(t, "mx.remote.test", "127.0.0.1")
	p := startPostfix(t, postfixOptions{cert: cert})
	e := newTestEnv(t, envOptions{runQueue: true, queue: func(o *queue.Options) {
		o.MXPort = p.port
		o.TLSConfig = &tls.Config{RootCAs: cert.Pool}
	}})
	e.dns.add(t, "remote.test. 300 IN MX 10 mx.remote.test.", "mx.remote.test. 300 IN A 127.0.0.1")
	return e, p
}

func TestBoxDeliversDirectToPostfix(t *testing.T) {
	e, p := directEnv(t)
	out, code := e.swaksSubmit(t, e.submission, "-tls", "anna", e.secret, "anna@example.test", "friend@remote.test")
	if code != 0 {
		t.Fatalf("swaks exit code %d:\n%s", code, out)
	}
	waitFor(t, 30*time.Second, "postfix to receive the message", func() bool { return len(p.received("friend")) == 1 })
	msg := p.received("friend")[0]
	if !strings.Contains(msg, "from "+testHost) || !strings.Contains(msg, "with ESMTPS") {
		t.Errorf("postfix did not receive the message over TLS from %s:\n%s", testHost, msg)
	}
	waitFor(t, 10*time.Second, "the queue to empty", func() bool {
		entries, _ := e.queue.Entries(context.Background())
		return len(entries) == 0
	})
	verifyDKIM(t, e, msg)
}

func TestBoxRetriesUntilPostfixReturns(t *testing.T) {
	e, p := directEnv(t)
	p.stop()
	out, code := e.swaksSubmit(t, e.submission, "-tls", "anna", e.secret, "anna@example.test", "friend@remote.test")
	if code != 0 {
		t.Fatalf("swaks exit code %d:\n%s", code, out)
	}
	waitFor(t, 30*time.Second, "a failed attempt", func() bool {
		entries, _ := e.queue.Entries(context.Background())
		return len(entries) == 1 && entries[0].Attempts >= 1
	})

	p.postfix("start")
	e.queue.Kick()
	waitFor(t, 60*time.Second, "delivery after postfix returned", func() bool { return len(p.received("friend")) == 1 })
	if n := len(e.deliverer.all()); n != 0 {
		t.Errorf("got %d bounces, want 0", n)
	}
}

func TestBoxBouncesRejectedRecipient(t *testing.T) {
	e, _ := directEnv(t)
	out, code := e.swaksSubmit(t, e.submission, "-tls", "anna", e.secret, "anna@example.test", "nobody@remote.test",
		"--h-Subject", "Grüße")
	if code != 0 {
		t.Fatalf("swaks exit code %d:\n%s", code, out)
	}
	waitFor(t, 30*time.Second, "the bounce", func() bool { return len(e.deliverer.all()) == 1 })
	b := e.deliverer.all()[0]
	if b.login != "anna" || b.folder != "INBOX" {
		t.Errorf("bounce went to %s/%s, want anna/INBOX", b.login, b.folder)
	}
	for _, want := range []string{
		"Return-Path: <>\r\n", // final delivery of a bounce, RFC 5321 section 4.4
		"multipart/report; report-type=delivery-status",
		"Content-Type: message/delivery-status",
		"Final-Recipient: rfc822; nobody@remote.test",
		"Action: failed",
		"Status: 5.1.1",
		"Remote-MTA: dns; mx.remote.test",
		"Deine Nachricht konnte", // anna's language is German
		"Subject: Grüße",         // the original header
	} {
		if !strings.Contains(string(b.msg), want) {
			t.Errorf("bounce lacks %q:\n%s", want, b.msg)
		}
	}
}

// TestRelayThroughPostfix sends through Postfix as the smarthost, which
// checks the login with Dovecot's auth service.
func TestRelayThroughPostfix(t *testing.T) {
	cert := testpeer.SelfSigned(t, "smtp.relay.test", "127.0.0.1")
	p := startPostfix(t, postfixOptions{cert: cert, saslUser: "box", saslPassword: "relay-secret"})

	for _, tc := range []struct {
		name, mode, password string
		port                 int
		wantDelivered        bool
	}{
		{"starttls", control.SmarthostSTARTTLS, "relay-secret", p.submission, true},
		{"implicit tls", control.SmarthostImplicitTLS, "relay-secret", p.smtps, true},
		{"wrong password", control.SmarthostSTARTTLS, "wrong", p.submission, false},
		{"set at runtime", control.SmarthostSTARTTLS, "relay-secret", p.submission, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(p.received("friend"))
			relay := &control.SmarthostSettings{Host: "smtp.relay.test", Port: tc.port, TLS: tc.mode,
				Username: "box", Password: tc.password}
			e := newTestEnv(t, envOptions{runQueue: true, queue: func(o *queue.Options) {
				if tc.name != "set at runtime" {
					o.Smarthost = relay
				}
				o.TLSConfig = &tls.Config{RootCAs: cert.Pool}
			}})
			if tc.name == "set at runtime" {
				if err := e.queue.SetSmarthost(relay); err != nil {
					t.Fatal(err)
				}
			}
			e.dns.add(t, "smtp.relay.test. 300 IN A 127.0.0.1")
			out, code := e.swaksSubmit(t, e.submission, "-tls", "anna", e.secret, "anna@example.test", "friend@remote.test")
			if code != 0 {
				t.Fatalf("swaks exit code %d:\n%s", code, out)
			}
			if tc.wantDelivered {
				waitFor(t, 30*time.Second, "relayed delivery", func() bool { return len(p.received("friend")) == before+1 })
				msgs := p.received("friend")
				if last := msgs[len(msgs)-1]; !strings.Contains(last, "with ESMTPSA") {
					t.Errorf("postfix did not see an authenticated TLS session:\n%s", last)
				}
				return
			}
			// A rejected login is a 5xx reply: the message bounces.
			waitFor(t, 30*time.Second, "the bounce", func() bool { return len(e.deliverer.all()) == 1 })
			if b := string(e.deliverer.all()[0].msg); !strings.Contains(b, "Status: 5.7.8") {
				t.Errorf("bounce lacks Status: 5.7.8:\n%s", b)
			}
			if n := len(p.received("friend")); n != before {
				t.Errorf("postfix delivered %d messages with a wrong relay password, want 0", n-before)
			}
		})
	}
}
