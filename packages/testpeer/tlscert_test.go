package testpeer

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestSelfSignedNamesAndDefaults(t *testing.T) {
	c := SelfSigned(t, "mail.example.test", "localhost", "127.0.0.1")

	if got, want := c.Leaf.Subject.CommonName, "mail.example.test"; got != want {
		t.Errorf("common name = %q, want %q", got, want)
	}
	if got, want := strings.Join(c.Leaf.DNSNames, ","), "mail.example.test,localhost"; got != want {
		t.Errorf("DNS names = %s, want %s", got, want)
	}
	if len(c.Leaf.IPAddresses) != 1 || !c.Leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("IP addresses = %v, want [127.0.0.1]", c.Leaf.IPAddresses)
	}
	if got := c.Leaf.SerialNumber.Int64(); got != 1 {
		t.Errorf("serial = %d, want 1", got)
	}
	if !c.Leaf.NotBefore.Before(time.Now()) {
		t.Errorf("not before = %v, want a time in the past", c.Leaf.NotBefore)
	}
	if !c.Leaf.NotAfter.After(time.Now().Add(23 * time.Hour)) {
		t.Errorf("not after = %v, want about 24 hours from now", c.Leaf.NotAfter)
	}
	for _, host := range []string{"mail.example.test", "localhost", "127.0.0.1"} {
		opts := x509.VerifyOptions{DNSName: host, Roots: c.Pool}
		if _, err := c.Leaf.Verify(opts); err != nil {
			t.Errorf("verifying for %s with Pool: %v", host, err)
		}
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: "other.example.test", Roots: c.Pool}); err == nil {
		t.Error("verifying for other.example.test succeeded, want a name mismatch")
	}
}

func TestSelfSignedWithOptions(t *testing.T) {
	notBefore := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	notAfter := time.Now().Add(time.Hour).Truncate(time.Second)
	c := SelfSignedWith(t, CertOptions{Serial: 4242, NotBefore: notBefore, NotAfter: notAfter}, "localhost")

	if got := c.Leaf.SerialNumber.Int64(); got != 4242 {
		t.Errorf("serial = %d, want 4242", got)
	}
	if !c.Leaf.NotBefore.Equal(notBefore) {
		t.Errorf("not before = %v, want %v", c.Leaf.NotBefore, notBefore)
	}
	if !c.Leaf.NotAfter.Equal(notAfter) {
		t.Errorf("not after = %v, want %v", c.Leaf.NotAfter, notAfter)
	}
}

// TestSelfSignedHandshake checks that a Go client with Pool as its roots
// completes a handshake with a server that uses ServerConfig.
func TestSelfSignedHandshake(t *testing.T) {
	c := SelfSigned(t, "localhost")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", c.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		conn.Write([]byte("hello"))
		conn.Close()
	}()

	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: c.Pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("handshake with Pool as the roots: %v", err)
	}
	defer conn.Close()
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "hello" {
		t.Errorf("read %q, want %q", got, "hello")
	}
}

// TestWriteFilesOpenSSL checks the written files with openssl: the
// certificate verifies as a TLS server certificate for its host with
// itself as the CA file, and the key belongs to it.
func TestWriteFilesOpenSSL(t *testing.T) {
	openssl := Require(t, "openssl", "openssl")
	c := SelfSigned(t, "localhost", "127.0.0.1")
	certFile, keyFile := c.WriteFiles(t, t.TempDir(), "localhost")

	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Errorf("loading the written files: %v", err)
	}
	for _, check := range [][]string{
		{"-verify_hostname", "localhost"},
		{"-verify_ip", "127.0.0.1"},
	} {
		args := append([]string{"verify", "-purpose", "sslserver", "-CAfile", certFile}, check...)
		out, err := exec.Command(openssl, append(args, certFile)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), ": OK") {
			t.Errorf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	certPub, err := exec.Command(openssl, "x509", "-noout", "-pubkey", "-in", certFile).Output()
	if err != nil {
		t.Fatalf("openssl x509 -pubkey: %v", err)
	}
	keyPub, err := exec.Command(openssl, "pkey", "-pubout", "-in", keyFile).Output()
	if err != nil {
		t.Fatalf("openssl pkey -pubout: %v", err)
	}
	if string(certPub) != string(keyPub) {
		t.Errorf("public key of %s:\n%s\nwant the one of %s:\n%s", keyFile, keyPub, certFile, certPub)
	}
}
