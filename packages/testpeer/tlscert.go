package testpeer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Cert is a self-signed TLS server certificate with its ECDSA P-256 key.
// The certificate is its own CA, so a peer trusts it when the certificate
// file is the peer's CA file (curl --cacert, mbsync's CertificateFile), and
// a Go client trusts it with Pool as RootCAs.
type Cert struct {
	// Leaf is the parsed certificate.
	Leaf *x509.Certificate
	// CertPEM is the certificate as one PEM block of type CERTIFICATE.
	CertPEM []byte
	// KeyPEM is the private key as one PEM block of type PRIVATE KEY
	// (PKCS #8).
	KeyPEM []byte
	// Pair is the certificate with its key, for tls.Config.Certificates.
	Pair tls.Certificate
	// Pool contains only this certificate.
	Pool *x509.CertPool
}

// CertOptions are the fields of a certificate that a test may set. A zero
// field takes its default.
type CertOptions struct {
	// Serial is the serial number, 1 by default.
	Serial int64
	// NotBefore is the start of the validity, an hour ago by default.
	NotBefore time.Time
	// NotAfter is the end of the validity, 24 hours from now by default.
	NotAfter time.Time
}

// SelfSigned makes a self-signed server certificate for hosts, with
// serial number 1, valid from an hour ago until 24 hours from now. Each
// host that parses as an IP address becomes an IP address SAN, every other
// one a DNS name SAN, and the first host is also the subject's common name.
func SelfSigned(t testing.TB, hosts ...string) *Cert {
	t.Helper()
	return SelfSignedWith(t, CertOptions{}, hosts...)
}

// SelfSignedWith is SelfSigned with the serial number and validity that
// opts sets.
func SelfSignedWith(t testing.TB, opts CertOptions, hosts ...string) *Cert {
	t.Helper()
	if len(hosts) == 0 {
		t.Fatal("making a test certificate: no hosts given, want at least one DNS name or IP address")
	}
	if opts.Serial == 0 {
		opts.Serial = 1
	}
	if opts.NotBefore.IsZero() {
		opts.NotBefore = time.Now().Add(-time.Hour)
	}
	if opts.NotAfter.IsZero() {
		opts.NotAfter = time.Now().Add(24 * time.Hour)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("making a test certificate: generating the key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(opts.Serial),
		Subject:               pkix.Name{CommonName: hosts[0]},
		NotBefore:             opts.NotBefore,
		NotAfter:              opts.NotAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, host := range hosts {
		if ip := net.ParseIP(host); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("making a test certificate for %v: %v", hosts, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parsing the test certificate for %v: %v", hosts, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("encoding the test certificate's key: %v", err)
	}

	c := &Cert{
		Leaf:    leaf,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		Pair:    tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		Pool:    x509.NewCertPool(),
	}
	c.Pool.AddCert(leaf)
	return c
}

// ServerConfig returns a TLS configuration that presents the certificate
// and accepts TLS 1.2 and later.
func (c *Cert) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.Pair}, MinVersion: tls.VersionTLS12}
}

// WriteFiles writes the certificate to dir/name.crt (mode 0644) and the key
// to dir/name.key (mode 0600), for peers that read PEM files, and returns
// both paths. The certificate file also serves as the CA file.
func (c *Cert) WriteFiles(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, c.CertPEM, 0o644); err != nil {
		t.Fatalf("writing the test certificate: %v", err)
	}
	if err := os.WriteFile(keyFile, c.KeyPEM, 0o600); err != nil {
		t.Fatalf("writing the test certificate's key: %v", err)
	}
	return certFile, keyFile
}
