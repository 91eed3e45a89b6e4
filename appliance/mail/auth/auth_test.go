package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/emersion/go-msgauth/dmarc"
)

func TestAligned(t *testing.T) {
	tests := []struct {
		auth, from string
		mode       dmarc.AlignmentMode
		want       bool
	}{
		{"example.org", "example.org", dmarc.AlignmentStrict, true},
		{"mail.example.org", "example.org", dmarc.AlignmentRelaxed, true},
		{"mail.example.org", "example.org", dmarc.AlignmentStrict, false},
		{"example.org", "news.example.org", "", true}, // relaxed is the default
		{"example.co.uk", "other.co.uk", dmarc.AlignmentRelaxed, false},
		{"a.example.co.uk", "b.example.co.uk", dmarc.AlignmentRelaxed, true},
		{"", "example.org", dmarc.AlignmentRelaxed, false},
		{"EXAMPLE.org.", "example.org", dmarc.AlignmentStrict, true},
	}
	for _, tc := range tests {
		if got := aligned(tc.auth, tc.from, tc.mode); got != tc.want {
			t.Errorf("aligned(%q, %q, %q) = %v, want %v", tc.auth, tc.from, tc.mode, got, tc.want)
		}
	}
}

func TestFromDomain(t *testing.T) {
	tests := []struct {
		msg, want string
		wantErr   bool
	}{
		{"From: Anna <anna@Example.ORG>\r\n\r\nbody", "example.org", false},
		{"From: Anna <anna@Example.ORG>\r\nSubject: no empty line\r\n", "example.org", false},
		{"From: a@x.test, b@y.test\r\n\r\n", "", true},
		{"From: a@x.test\r\nFrom: b@y.test\r\n\r\n", "", true},
		{"Subject: no from\r\n\r\n", "", true},
	}
	for _, tc := range tests {
		got, err := fromDomain([]byte(tc.msg))
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("fromDomain(%q) = %q, %v; want %q, error %v", tc.msg, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestApplicablePolicy(t *testing.T) {
	pct := 10
	rec := &dmarc.Record{Policy: dmarc.PolicyReject, SubdomainPolicy: dmarc.PolicyNone, Percent: &pct}
	in := &Checker{Sample: func(int) bool { return true }}
	out := &Checker{Sample: func(int) bool { return false }}
	if got := in.applicablePolicy(rec, false); got != dmarc.PolicyReject {
		t.Errorf("sampled message: policy %q, want reject", got)
	}
	if got := out.applicablePolicy(rec, false); got != dmarc.PolicyQuarantine {
		t.Errorf("message outside pct: policy %q, want quarantine", got)
	}
	if got := in.applicablePolicy(rec, true); got != dmarc.PolicyNone {
		t.Errorf("subdomain: policy %q, want the sp= policy none", got)
	}
}

// txtResolver returns TXT records from a map and no other records.
type txtResolver map[string]string

func (r txtResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	if v, ok := r[strings.TrimSuffix(name, ".")]; ok {
		return []string{v}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}
func (r txtResolver) LookupMX(context.Context, string) ([]*net.MX, error) { return nil, nil }
func (r txtResolver) LookupIPAddr(context.Context, string) ([]net.IPAddr, error) {
	return nil, nil
}
func (r txtResolver) LookupAddr(context.Context, string) ([]string, error) { return nil, nil }

func TestSignAndCheck(t *testing.T) {
	dir := t.TempDir()
	keys, err := LoadOrCreateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dkim-ed25519.pem", "dkim-rsa.pem"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	again, err := LoadOrCreateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !keys.ed25519.Equal(again.ed25519) || !keys.rsa.Equal(again.rsa) {
		t.Error("second LoadOrCreateKeys made new keys, want the stored ones")
	}
	if len(keys.ed25519) != ed25519.PrivateKeySize || keys.rsa.N.BitLen() != 2048 {
		t.Errorf("key sizes: ed25519 %d bytes, rsa %d bits; want %d and 2048", len(keys.ed25519), keys.rsa.N.BitLen(), ed25519.PrivateKeySize)
	}

	msg := []byte("From: Anna <anna@example.org>\r\nTo: b@remote.test\r\nSubject: hi\r\n\r\nHello.\r\n")
	fields, err := keys.SignatureFields("example.org", bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(fields), "DKIM-Signature:"); got != 2 {
		t.Errorf("SignatureFields returned %d DKIM-Signature fields, want 2: %q", got, fields)
	}
	signed := append(fields, msg...)
	header, body := splitMessage(signed)
	dns := txtResolver{"_dmarc.example.org": "v=DMARC1; p=reject"}
	for _, r := range keys.Records() {
		dns[r.Selector+"._domainkey.example.org"] = r.Text
	}
	c := &Checker{AuthServID: "mx.test", Resolver: dns}
	res := c.Check(context.Background(), Envelope{IP: net.IPv4(192, 0, 2, 1), Helo: "box.example.org", MailFrom: "anna@example.org"}, header, bytes.NewReader(body))
	if len(res.DKIM) != 2 {
		t.Fatalf("got %d DKIM verifications, want 2", len(res.DKIM))
	}
	for _, v := range res.DKIM {
		if v.Err != nil {
			t.Errorf("signature of %s fails: %v", v.Domain, v.Err)
		}
	}
	if res.DMARC.Result != "pass" || res.Disposition != Accept {
		t.Errorf("DMARC %s, disposition %s; want pass and accept", res.DMARC.Result, res.Disposition)
	}
	if !strings.HasPrefix(res.Header, "Authentication-Results: mx.test;") || !strings.Contains(res.Header, "dkim=pass") {
		t.Errorf("header = %q, want mx.test results with dkim=pass", res.Header)
	}

	// A changed body breaks both signatures, and p=reject then rejects.
	tampered := bytes.Replace(signed, []byte("Hello."), []byte("Pay me."), 1)
	header, body = splitMessage(tampered)
	res = c.Check(context.Background(), Envelope{IP: net.IPv4(192, 0, 2, 1), Helo: "x", MailFrom: "anna@example.org"}, header, bytes.NewReader(body))
	for _, v := range res.DKIM {
		if v.Err == nil {
			t.Errorf("tampered message: signature of %s passes", v.Domain)
		}
	}
	if res.Disposition != Reject {
		t.Errorf("tampered message under p=reject: disposition %s, want reject", res.Disposition)
	}
}

// splitMessage splits msg before the empty line that ends its header
// section, as the SMTP server's spool does.
func splitMessage(msg []byte) (header, body []byte) {
	i := bytes.Index(msg, []byte("\r\n\r\n"))
	return msg[:i+2], msg[i+2:]
}

func TestCheckWholeMessageAsHeader(t *testing.T) {
	keys, err := LoadOrCreateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("From: anna@example.org\r\nSubject: hi\r\n\r\nHello.\r\n")
	fields, err := keys.SignatureFields("example.org", bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	dns := txtResolver{"_dmarc.example.org": "v=DMARC1; p=reject"}
	for _, r := range keys.Records() {
		dns[r.Selector+"._domainkey.example.org"] = r.Text
	}
	c := &Checker{AuthServID: "mx.test", Resolver: dns}

	// A header that ends with its empty line, followed by an empty body
	// reader, must check the same as the split that the spool makes.
	res := c.Check(context.Background(), Envelope{IP: net.IPv4(192, 0, 2, 1), Helo: "x", MailFrom: "anna@example.org"},
		append(fields, msg...), bytes.NewReader(nil))
	if res.DMARC.Result != "pass" {
		t.Errorf("DMARC %s, want pass", res.DMARC.Result)
	}
	for _, v := range res.DKIM {
		if v.Err != nil {
			t.Errorf("signature of %s fails: %v", v.Domain, v.Err)
		}
	}
}

func TestSignatureFieldsReadError(t *testing.T) {
	keys, err := LoadOrCreateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	msg := io.MultiReader(strings.NewReader("From: anna@example.org\r\n\r\nHello.\r\n"),
		iotest.ErrReader(errors.New("disk read failed")))
	fields, err := keys.SignatureFields("example.org", msg)
	if err == nil || !strings.Contains(err.Error(), "disk read failed") {
		t.Errorf("SignatureFields with a failing reader: error %v, want the read error", err)
	}
	if fields != nil {
		t.Errorf("SignatureFields with a failing reader returned fields %q, want none", fields)
	}
}

func TestLoadKeysRejectsGarbage(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "dkim-ed25519.pem"), []byte("not a key"), 0o600)
	_, err := LoadOrCreateKeys(dir)
	if err == nil || !strings.Contains(err.Error(), "delete the file") {
		t.Errorf("LoadOrCreateKeys with a broken file: error %v, want one that says to delete the file", err)
	}
}
