package smtp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/appliance/mail/auth"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// freeDNSLoopback returns an address in 127.83.0.0/16 whose port 53 is
// free for UDP and TCP, for a DNS server that opendkim-testmsg reaches
// through a private /etc/resolv.conf, which names no port. A random
// address keeps two test runs on one machine apart.
func freeDNSLoopback(t *testing.T) string {
	t.Helper()
	for range 20 {
		addr := fmt.Sprintf("127.83.%d.%d", rand.IntN(254)+1, rand.IntN(254)+1)
		pc, err := net.ListenPacket("udp", addr+":53")
		if err != nil {
			continue
		}
		l, err := net.Listen("tcp", addr+":53")
		pc.Close()
		if err != nil {
			continue
		}
		l.Close()
		return addr
	}
	t.Fatal("no address in 127.83.0.0/16 has port 53 free for UDP and TCP")
	return ""
}

// verifyDKIM checks the signatures of msg with OpenDKIM's
// opendkim-testmsg, which finds the keys with the C library's resolver.
// It runs in its own mount namespace (unshare), where a bind mount puts a
// resolv.conf naming a DNS server of this test over /etc/resolv.conf, so
// the lookup stays on loopback. It also checks the signatures with
// go-msgauth through auth.Checker.
func verifyDKIM(t *testing.T, e *testEnv, msg string) {
	t.Helper()
	c := &auth.Checker{AuthServID: "verifier.test", Resolver: e.dns.resolver()}
	header, body, _ := strings.Cut(msg, "\r\n\r\n")
	res := c.Check(context.Background(), auth.Envelope{IP: net.IPv4(127, 0, 0, 1), Helo: testHost, MailFrom: "anna@example.test"},
		[]byte(header+"\r\n"), strings.NewReader("\r\n"+body))
	if len(res.DKIM) != 2 {
		t.Errorf("go-msgauth found %d signatures, want 2", len(res.DKIM))
	}
	for _, v := range res.DKIM {
		if v.Err != nil {
			t.Errorf("go-msgauth: signature of %s fails: %v", v.Domain, v.Err)
		}
	}

	testmsg := testpeer.Require(t, "opendkim-testmsg", "opendkim-tools")
	unshare := testpeer.Require(t, "unshare", "util-linux")
	testpeer.RequireRoot(t, "opendkim-testmsg reads a private resolv.conf bind-mounted in a mount namespace")

	dnsAddr := freeDNSLoopback(t)
	d := newTestDNS(t, dnsAddr+":53")
	for _, r := range e.keys.Records() {
		d.addTXT(t, r.Selector+"._domainkey."+testDomain, r.Text)
	}
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	os.WriteFile(resolv, []byte("nameserver "+dnsAddr+"\noptions attempts:1 timeout:2\n"), 0o644)

	for _, tc := range []struct {
		name, text string
	}{{"both signatures", msg}, {"rsa only", dropSignature(msg, "s=hw-ed25519")}, {"ed25519 only", dropSignature(msg, "s=hw-rsa")}} {
		script := "mount --bind " + resolv + " /etc/resolv.conf && exec " + testmsg
		cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", script)
		cmd.Stdin = strings.NewReader(strings.ReplaceAll(tc.text, "\r\n", "\n"))
		out, err := cmd.CombinedOutput()
		if err != nil || len(out) != 0 {
			t.Errorf("opendkim-testmsg (%s): %v, output %q, want success and no output", tc.name, err, out)
		}
	}

	// A changed body must fail, or the check above proves nothing.
	tampered := strings.Replace(msg, "This is a test mailing", "This is a changed mailing", 1)
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c",
		"mount --bind "+resolv+" /etc/resolv.conf && exec "+testmsg)
	cmd.Stdin = strings.NewReader(strings.ReplaceAll(tampered, "\r\n", "\n"))
	if out, err := cmd.CombinedOutput(); err == nil && len(out) == 0 {
		t.Errorf("opendkim-testmsg accepted a tampered body")
	}
}

// dropSignature removes the DKIM-Signature field that contains marker.
func dropSignature(msg, marker string) string {
	lines := strings.SplitAfter(msg, "\n")
	var out []string
	skip := false
	for _, l := range lines {
		if strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
			if !skip {
				out = append(out, l)
			}
			continue
		}
		skip = false
		if strings.HasPrefix(l, "DKIM-Signature:") && fieldContains(lines, l, marker) {
			skip = true
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "")
}

// fieldContains reports whether the field that starts at line first
// contains marker in any of its lines.
func fieldContains(lines []string, first, marker string) bool {
	for i, l := range lines {
		if l != first {
			continue
		}
		field := l
		for _, c := range lines[i+1:] {
			if !strings.HasPrefix(c, " ") && !strings.HasPrefix(c, "\t") {
				break
			}
			field += c
		}
		return strings.Contains(field, marker)
	}
	return false
}
