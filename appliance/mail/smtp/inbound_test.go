package smtp

import (
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// swaksInbound sends one message to the inbound port from 127.0.0.1.
func (e *testEnv) swaksInbound(t *testing.T, from, to string, extra ...string) (string, int) {
	host, port := hostPort(t, e.inbound)
	args := []string{"--server", host, "--port", port, "--ehlo", "client.sender.test",
		"--from", from, "--to", to, "--header", "Subject: test"}
	return testpeer.Swaks(t, append(args, extra...)...)
}

func TestInboundDeliversWithSTARTTLS(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	out, code := e.swaksInbound(t, "someone@sender.test", "anna@example.test", "-tls",
		"--h-From", "someone@sender.test")
	if code != 0 {
		t.Fatalf("swaks exit code %d, want 0:\n%s", code, out)
	}
	if !strings.Contains(out, "STARTTLS") {
		t.Errorf("transcript lacks STARTTLS:\n%s", out)
	}

	msgs := e.deliverer.all()
	if len(msgs) != 1 {
		t.Fatalf("got %d deliveries, want 1", len(msgs))
	}
	got := msgs[0]
	if got.login != "anna" || got.folder != "INBOX" {
		t.Errorf("delivered to %s/%s, want anna/INBOX", got.login, got.folder)
	}
	for _, want := range []string{
		"Authentication-Results: " + testHost + ";",
		"spf=none",
		"dmarc=none",
		"with ESMTPS",
		"Received: from client.sender.test ([127.0.0.1])",
	} {
		if !strings.Contains(string(got.msg), want) {
			t.Errorf("delivered message lacks %q:\n%s", want, got.msg)
		}
	}
}

func TestInboundAliasTagAndCatchAll(t *testing.T) {
	e := newTestEnv(t, envOptions{server: func(o *Options) {
		d := o.Directory.(*StaticDirectory)
		d.CatchAll["example.test"] = "ben"
	}})
	for _, rcpt := range []string{"info@example.test", "whatever@EXAMPLE.test", "anna+shop@example.test"} {
		if out, code := e.swaksInbound(t, "a@sender.test", rcpt); code != 0 {
			t.Fatalf("swaks to %s: exit code %d:\n%s", rcpt, code, out)
		}
	}
	msgs := e.deliverer.all()
	if len(msgs) != 3 {
		t.Fatalf("got %d deliveries, want 3", len(msgs))
	}
	if msgs[0].login != "anna" {
		t.Errorf("alias info@ delivered to %q, want anna", msgs[0].login)
	}
	if msgs[1].login != "ben" {
		t.Errorf("catch-all delivered to %q, want ben", msgs[1].login)
	}
	if msgs[2].login != "anna" {
		t.Errorf("anna+shop@ delivered to %q, want anna before the catch-all", msgs[2].login)
	}
}

func TestInboundRelayRejected(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	out, code := e.swaksInbound(t, "someone@sender.test", "victim@elsewhere.test")
	if code == 0 {
		t.Fatalf("relay attempt succeeded:\n%s", out)
	}
	if !strings.Contains(out, "550 5.7.1") {
		t.Errorf("relay attempt not rejected with 550 5.7.1:\n%s", out)
	}
	if n := len(e.deliverer.all()); n != 0 {
		t.Errorf("got %d deliveries, want 0", n)
	}
}

func TestInboundUnknownUser(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	out, _ := e.swaksInbound(t, "someone@sender.test", "nobody@example.test")
	if !strings.Contains(out, "550 5.1.1") {
		t.Errorf("unknown user not rejected with 550 5.1.1:\n%s", out)
	}
}

func TestInboundOversize(t *testing.T) {
	e := newTestEnv(t, envOptions{server: func(o *Options) { o.MaxMessageBytes = 10000 }})
	body := strings.Repeat("0123456789abcdef\n", 1000)
	out, code := e.swaksInbound(t, "someone@sender.test", "anna@example.test", "--body", body)
	if code == 0 {
		t.Fatalf("oversize message accepted:\n%s", out[:min(len(out), 2000)])
	}
	if !strings.Contains(out, "552 5.3.4") {
		t.Errorf("oversize message not rejected with 552 5.3.4:\n%s", lastLines(out, 10))
	}

	// A client that declares the size with SIZE= is rejected at MAIL.
	c := dialText(t, e.inbound)
	command(t, c, "EHLO client.test")
	if got := command(t, c, "MAIL FROM:<a@sender.test> SIZE=20000"); !strings.HasPrefix(got, "552 5.3.4") {
		t.Errorf("MAIL with SIZE=20000: got %q, want 552 5.3.4", got)
	}
}

func TestInboundMalformedCommands(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	out, _ := e.swaksInbound(t, "not an address", "anna@example.test")
	if !strings.Contains(out, "501 5.5.2") {
		t.Errorf("MAIL FROM:<not an address> not rejected with 501 5.5.2:\n%s", out)
	}

	c := dialText(t, e.inbound)
	for _, tc := range []struct{ cmd, want string }{
		{"EHLO client.test", "250"},
		{"RCPT TO:<anna@example.test>", "502 5.5.1"},
		{"MAIL FROM:garbage", "501 5.5.2"},
		{"XYZA", "500 5.5.2"},
		{"DATA", "502 5.5.1"},
		{"EHLO " + strings.Repeat("x", 3000), "500 5.4.0"},
	} {
		if got := command(t, c, tc.cmd); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%.20s: got %q, want %s", tc.cmd, got, tc.want)
		}
	}
}

func TestInboundTooManyRecipients(t *testing.T) {
	e := newTestEnv(t, envOptions{server: func(o *Options) { o.MaxRecipients = 2 }})
	out, _ := e.swaksInbound(t, "someone@sender.test", "anna@example.test,ben@example.test,info@example.test")
	if !strings.Contains(out, "452 4.5.3") {
		t.Errorf("third recipient not rejected with 452 4.5.3:\n%s", out)
	}
}

func TestInboundConnectionLimit(t *testing.T) {
	e := newTestEnv(t, envOptions{server: func(o *Options) { o.MaxConnectionsPerAddress = 2 }})
	for range 2 {
		c := dialText(t, e.inbound)
		if got := command(t, c, "NOOP"); !strings.HasPrefix(got, "250") {
			t.Fatalf("NOOP: got %q, want 250", got)
		}
	}
	conn, err := net.Dial("tcp", e.inbound)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := textproto.NewReader(bufioReader(conn)).ReadLine()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, "421 4.7.0") {
		t.Errorf("third connection: got %q, want 421 4.7.0", line)
	}
}

func TestInboundMessageRate(t *testing.T) {
	e := newTestEnv(t, envOptions{server: func(o *Options) { o.MessagesPerHour = 20 }})
	// The burst is a tenth of the hourly rate: two messages.
	for i := range 2 {
		if out, code := e.swaksInbound(t, "a@sender.test", "anna@example.test"); code != 0 {
			t.Fatalf("message %d: exit code %d:\n%s", i, code, out)
		}
	}
	out, _ := e.swaksInbound(t, "a@sender.test", "anna@example.test")
	if !strings.Contains(out, "450 4.7.0") {
		t.Errorf("third message not deferred with 450 4.7.0:\n%s", out)
	}
}

func TestInboundStorageFailure(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	e.deliverer.setFail(true)
	out, _ := e.swaksInbound(t, "a@sender.test", "anna@example.test")
	if !strings.Contains(out, "451 4.3.0") {
		t.Errorf("storage failure not answered with 451 4.3.0:\n%s", out)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestInboundReturnPath guards against a sender's forged Return-Path
// reaching the inbox: final delivery removes it and puts the envelope
// sender, or <> for a bounce, at the top of the message.
func TestInboundReturnPath(t *testing.T) {
	for _, tc := range []struct {
		from, want string
	}{
		{"someone@sender.test", "Return-Path: <someone@sender.test>\r\n"},
		{"<>", "Return-Path: <>\r\n"},
	} {
		t.Run(tc.from, func(t *testing.T) {
			e := newTestEnv(t, envOptions{})
			out, code := e.swaksInbound(t, tc.from, "anna@example.test",
				"--add-header", "Return-Path: <forged@evil.test>",
				"--add-header", "return-path:\r\n <forged2@evil.test>")
			if code != 0 {
				t.Fatalf("swaks exit code %d, want 0:\n%s", code, out)
			}
			msgs := e.deliverer.all()
			if len(msgs) != 1 {
				t.Fatalf("got %d deliveries, want 1", len(msgs))
			}
			got := string(msgs[0].msg)
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("delivered message does not begin with %q:\n%s", tc.want, got)
			}
			if n := strings.Count(strings.ToLower(got), "return-path:"); n != 1 {
				t.Errorf("delivered message has %d Return-Path fields, want 1:\n%s", n, got)
			}
			if strings.Contains(got, "forged") {
				t.Errorf("delivered message keeps a forged Return-Path:\n%s", got)
			}
		})
	}
}
