// Package localca is the certificate authority that a box makes for itself
// when it has no public domain. Its ECDSA P-256 root is limited by name
// constraints (RFC 5280 section 4.2.1.10) to the box's LAN names and to
// private and loopback addresses, and it issues short-lived server
// certificates, which devices trust once the household installs the root.
package localca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/heimwolke/heimwolke/packages/tlsstore"
)

// RootLifetime is the validity of a new root certificate.
const RootLifetime = 10 * 365 * 24 * time.Hour

const (
	rootCertFile = "root.pem"
	rootKeyFile  = "root-key.pem"
)

// permittedNetworks are the address ranges that the root's name constraints
// allow: RFC 1918 private IPv4, IPv4 link-local, IPv6 unique local and
// link-local addresses, and loopback.
var permittedNetworks = []string{
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8",
	"fc00::/7", "fe80::/10", "::1/128",
}

// CA is a local certificate authority whose root key is kept in a folder.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
}

// Open loads the CA from dir, or creates one there when dir has none: a root
// named "Heimwolke HOSTNAME local CA", valid for RootLifetime, whose name
// constraints permit the DNS names in domains (each with its subdomains) and
// permittedNetworks. An existing root keeps the constraints it was made
// with; a leaf outside them is rejected by Issue. dir must exist and be
// private to the agent (the TLS store's PrivateDir), because it contains
// the root's private key.
func Open(dir, hostname string, domains []string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, rootCertFile), filepath.Join(dir, rootKeyFile)
	ca, err := load(certPath, keyPath)
	if err == nil {
		return ca, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("opening local CA in %s: %w (remove the folder to make a new CA, then install the new root on every device)", dir, err)
	}

	ca, err = create(hostname, domains, time.Now())
	if err != nil {
		return nil, fmt.Errorf("creating local CA: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("creating local CA: encoding key: %w", err)
	}
	// The key goes first: a root certificate without its key would be
	// loaded as an error, while a key alone is replaced on the next start.
	if err := tlsstore.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, fmt.Errorf("creating local CA: %w", err)
	}
	if err := tlsstore.WriteFile(certPath, ca.certPEM, 0o600); err != nil {
		return nil, fmt.Errorf("creating local CA: %w", err)
	}
	return ca, nil
}

func load(certPath, keyPath string) (*CA, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	certBlock, _ := pem.Decode(certPEM)
	keyBlock, _ := pem.Decode(keyPEM)
	if certBlock == nil || keyBlock == nil {
		return nil, fmt.Errorf("%s or %s contains no PEM block", certPath, keyPath)
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", certPath, err)
	}
	parsedKey, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", keyPath, err)
	}
	key, ok := parsedKey.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s does not contain the key of %s", keyPath, certPath)
	}
	return &CA{cert: cert, certPEM: certPEM, key: key}, nil
}

func create(hostname string, domains []string, now time.Time) (*CA, error) {
	if hostname == "" {
		return nil, errors.New("the hostname is empty; pass the box's name, such as heimwolke")
	}
	if len(domains) == 0 {
		return nil, errors.New("no permitted domains; pass at least the box's .local name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	var permittedIPs []*net.IPNet
	for _, cidr := range permittedNetworks {
		_, network, err := net.ParseCIDR(cidr)
		if err != nil {
			return nil, err
		}
		permittedIPs = append(permittedIPs, network)
	}

	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("Heimwolke %s local CA", hostname), Organization: []string{"Heimwolke"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(RootLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		// RFC 5280 section 4.2.1.10: conforming CAs mark the extension
		// critical.
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         normalizeNames(domains),
		PermittedIPRanges:           permittedIPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("signing root certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}, nil
}

// Root returns the parsed root certificate.
func (ca *CA) Root() *x509.Certificate { return ca.cert }

// RootPEM returns the root certificate in PEM, for devices that import .pem
// or .crt files.
func (ca *CA) RootPEM() []byte { return slices.Clone(ca.certPEM) }

// RootDER returns the root certificate in DER, for devices that import .cer
// or .der files (Android, Windows).
func (ca *CA) RootDER() []byte { return slices.Clone(ca.cert.Raw) }

// Issue signs a new server certificate for dnsNames and ips with a new
// ECDSA P-256 key, valid until lifetime from now, and returns the PEM
// chain (leaf, then root) and the PEM key. It rejects names and addresses
// outside the root's name constraints, which clients would reject too.
func (ca *CA) Issue(dnsNames []string, ips []net.IP, lifetime time.Duration) (chainPEM, keyPEM []byte, err error) {
	dnsNames = normalizeNames(dnsNames)
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, nil, errors.New("issuing local certificate: no names or addresses given")
	}
	if err := ca.checkPermitted(dnsNames, ips); err != nil {
		return nil, nil, fmt.Errorf("issuing local certificate: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("issuing local certificate: generating key: %w", err)
	}
	// NotBefore lies up to an hour in the past for devices whose clock is
	// behind. At most a tenth of lifetime keeps the renewal time, two
	// thirds into the validity, ahead of now for short lifetimes.
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		NotBefore:    now.Add(-min(time.Hour, lifetime/10)),
		NotAfter:     now.Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	if len(dnsNames) > 0 {
		tmpl.Subject.CommonName = dnsNames[0]
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("issuing local certificate: signing: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("issuing local certificate: encoding key: %w", err)
	}

	chainPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	chainPEM = append(chainPEM, ca.certPEM...)
	return chainPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

func (ca *CA) checkPermitted(dnsNames []string, ips []net.IP) error {
	for _, name := range dnsNames {
		if !slices.ContainsFunc(ca.cert.PermittedDNSDomains, func(domain string) bool {
			return name == domain || strings.HasSuffix(name, "."+domain)
		}) {
			return fmt.Errorf("name %q is outside the root's permitted domains %v; make a new local CA that includes it", name, ca.cert.PermittedDNSDomains)
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(ca.cert.PermittedIPRanges, func(network *net.IPNet) bool { return network.Contains(ip) }) {
			return fmt.Errorf("address %s is not a private or loopback address, which the root's name constraints require", ip)
		}
	}
	return nil
}

func normalizeNames(names []string) []string {
	var out []string
	for _, name := range names {
		name = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
		if name != "" && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// randomSerial returns a positive 128-bit serial number.
func randomSerial() *big.Int {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return serial.Add(serial, big.NewInt(1))
}
