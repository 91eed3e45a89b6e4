package smtp

import (
	"context"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// swaksSubmit sends one message as anna to the submission port addr.
func (e *testEnv) swaksSubmit(t *testing.T, addr, tlsFlag, user, password, from, to string, extra ...string) (string, int) {
	host, port := hostPort(t, addr)
	args := []string{"--server", host, "--port", port, "--ehlo", "laptop.local",
		"--from", from, "--to", to, "--h-From", from, "--header", "Subject: submitted"}
	if tlsFlag != "" {
		args = append(args, tlsFlag)
	}
	if user != "" {
		args = append(args, "--auth", "PLAIN", "--auth-user", user, "--auth-password", password)
	}
	return testpeer.Swaks(t, append(args, extra...)...)
}

func TestSubmissionSTARTTLSQueuesRemote(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	// The user name is the mail address, as many clients send it.
	out, code := e.swaksSubmit(t, e.submission, "-tls", "anna@example.test", e.secret, "anna@example.test", "friend@remote.test")
	if code != 0 {
		t.Fatalf("swaks exit code %d, want 0:\n%s", code, out)
	}
	entries, err := e.queue.Entries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("got %d queue entries, want 1", len(entries))
	}
	if got := entries[0]; got.To != "friend@remote.test" || got.From != "anna@example.test" || got.Login != "anna" {
		t.Errorf("queue entry = %+v, want anna@example.test -> friend@remote.test by anna", got)
	}
	msg, err := e.queue.Message(context.Background(), entries[0].MessageID)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a=rsa-sha256", "s=hw-rsa", "a=ed25519-sha256", "s=hw-ed25519", "d=example.test", "with ESMTPSA"} {
		if !strings.Contains(string(msg), want) {
			t.Errorf("queued message lacks %q:\n%s", want, msg)
		}
	}
}

func TestSubmissionImplicitTLS(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	// Sent with LOGIN, the mechanism of older Outlook versions, to a local
	// user, who gets the message without the queue.
	host, port := hostPort(t, e.submissions)
	out, code := testpeer.Swaks(t, "--server", host, "--port", port, "--tlsc", "--ehlo", "laptop.local",
		"--auth", "LOGIN", "--auth-user", "anna", "--auth-password", e.secret,
		"--from", "info@example.test", "--h-From", "Anna <info@example.test>", "--to", "ben@example.test")
	if code != 0 {
		t.Fatalf("swaks exit code %d, want 0:\n%s", code, out)
	}
	msgs := e.deliverer.all()
	if len(msgs) != 1 || msgs[0].login != "ben" || msgs[0].folder != "INBOX" {
		t.Fatalf("deliveries = %+v, want one to ben/INBOX", msgs)
	}
}

func TestSubmissionWrongPassword(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	out, code := e.swaksSubmit(t, e.submission, "-tls", "anna", "wrong-password", "anna@example.test", "friend@remote.test")
	if code == 0 {
		t.Fatalf("login with a wrong password succeeded:\n%s", out)
	}
	if !strings.Contains(out, "535 5.7.8") {
		t.Errorf("wrong password not rejected with 535 5.7.8:\n%s", out)
	}
}

func TestSubmissionNoAuthBeforeTLS(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	out, code := e.swaksSubmit(t, e.submission, "", "anna", e.secret, "anna@example.test", "friend@remote.test")
	if code == 0 {
		t.Fatalf("login without TLS succeeded:\n%s", out)
	}
	if strings.Contains(out, "250-AUTH") {
		t.Errorf("AUTH offered before STARTTLS:\n%s", out)
	}
	c := dialText(t, e.submission)
	command(t, c, "EHLO laptop.local")
	if got := command(t, c, "AUTH PLAIN AGFubmEAeA=="); !strings.HasPrefix(got, "523 5.7.10") {
		t.Errorf("AUTH before STARTTLS: got %q, want 523 5.7.10", got)
	}
}

func TestSubmissionWithoutLoginIsNoRelay(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	out, code := e.swaksSubmit(t, e.submission, "-tls", "", "", "anna@example.test", "victim@elsewhere.test")
	if code == 0 {
		t.Fatalf("mail without login was accepted:\n%s", out)
	}
	if !strings.Contains(out, "530 5.7.0") {
		t.Errorf("MAIL without login not rejected with 530 5.7.0:\n%s", out)
	}
	if entries, _ := e.queue.Entries(context.Background()); len(entries) != 0 {
		t.Errorf("queue has %d entries, want 0", len(entries))
	}
}

func TestSubmissionForeignSender(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	out, _ := e.swaksSubmit(t, e.submission, "-tls", "anna", e.secret, "ben@example.test", "friend@remote.test")
	if !strings.Contains(out, "553 5.7.1") {
		t.Errorf("envelope sender of another user not rejected with 553 5.7.1:\n%s", out)
	}

	host, port := hostPort(t, e.submission)
	out, _ = testpeer.Swaks(t, "--server", host, "--port", port, "-tls", "--auth", "PLAIN", "--auth-user", "anna",
		"--auth-password", e.secret, "--from", "anna@example.test", "--h-From", "boss@bank.test", "--to", "friend@remote.test")
	if !strings.Contains(out, "550 5.7.1") {
		t.Errorf("From header of a foreign domain not rejected with 550 5.7.1:\n%s", out)
	}
	if entries, _ := e.queue.Entries(context.Background()); len(entries) != 0 {
		t.Errorf("queue has %d entries, want 0", len(entries))
	}
}

// TestSubmissionRemovesBcc guards against Bcc recipients being revealed:
// neither the queued nor the local copy may keep a Bcc or a Resent-Bcc
// field, and the local copy gets its own Return-Path in place of a forged
// one.
func TestSubmissionRemovesBcc(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	out, code := e.swaksSubmit(t, e.submission, "-tls", "anna", e.secret, "anna@example.test",
		"friend@remote.test,ben@example.test",
		"--add-header", "Bcc: ben@example.test,\r\n hidden@remote.test",
		"--add-header", "Resent-Bcc: other@remote.test",
		"--add-header", "Return-Path: <forged@evil.test>")
	if code != 0 {
		t.Fatalf("swaks exit code %d, want 0:\n%s", code, out)
	}
	if !strings.Contains(out, "Bcc: ben@example.test") {
		t.Fatalf("swaks did not send the Bcc field:\n%s", out)
	}

	entries, err := e.queue.Entries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("got %d queue entries, want 1", len(entries))
	}
	queued, err := e.queue.Message(context.Background(), entries[0].MessageID)
	if err != nil {
		t.Fatal(err)
	}
	msgs := e.deliverer.all()
	if len(msgs) != 1 || msgs[0].login != "ben" {
		t.Fatalf("deliveries = %+v, want one to ben", msgs)
	}
	local := msgs[0].msg

	for name, msg := range map[string][]byte{"queued": queued, "local": local} {
		for _, leak := range []string{"Bcc:", "hidden@remote.test", "other@remote.test", "forged@evil.test"} {
			if strings.Contains(string(msg), leak) {
				t.Errorf("%s copy contains %q:\n%s", name, leak, msg)
			}
		}
		if !strings.Contains(string(msg), "Subject: submitted") {
			t.Errorf("%s copy lost the Subject field:\n%s", name, msg)
		}
	}
	if want := "Return-Path: <anna@example.test>\r\n"; !strings.HasPrefix(string(local), want) {
		t.Errorf("local copy does not begin with %q:\n%s", want, local)
	}
	if strings.Contains(string(queued), "Return-Path:") {
		t.Errorf("queued copy has a Return-Path field, which only final delivery adds:\n%s", queued)
	}
}
