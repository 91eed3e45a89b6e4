package tlsstore

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// reloadInterval is how often GetCertificate looks at the files at most.
const reloadInterval = time.Second

// ACMETLSProtocol is the ALPN protocol of TLS-ALPN-01 validation requests
// (RFC 8737 section 4).
const ACMETLSProtocol = "acme-tls/1"

// fileSig identifies one version of a file cheaply, without reading it.
type fileSig struct {
	modTime time.Time
	size    int64
	inode   uint64
}

// pairSig identifies one version of a certificate and key pair.
type pairSig struct{ cert, key fileSig }

type loadedCert struct {
	sig  pairSig
	cert *tls.Certificate
	// failedSig is the last version that failed to load, so that a broken
	// pair is logged once and not on every reload.
	failedSig pairSig
}

// certIndex maps names to certificates for one snapshot of the store.
type certIndex struct {
	exact    map[string]*tls.Certificate // DNS names and IP addresses
	wildcard map[string]*tls.Certificate // "example.org" for "*.example.org"
	def      *tls.Certificate
}

// TLSConfig returns a server configuration for HTTPS on port 443: it takes
// certificates from GetCertificate and offers the ALPN protocols h2,
// http/1.1 and acme-tls/1, the last of which TLS-ALPN-01 validation needs.
// For other protocols, replace NextProtos with theirs: a server that lists
// protocols rejects clients that offer only others.
func (s *Store) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1", ACMETLSProtocol},
	}
}

// GetCertificate returns the certificate for a TLS handshake, for use as
// tls.Config.GetCertificate. A TLS-ALPN-01 validation request gets the
// pending challenge certificate for its server name. Other requests get the
// certificate whose names contain the SNI server name exactly, then one
// whose wildcard matches it, then the default one. Without SNI, the local
// address of the connection is looked up among IP address names first.
//
// At most once a second it compares the files' modification times, sizes
// and inodes with the loaded ones and reloads changed certificates, so new
// handshakes get a new certificate without a restart while established
// connections keep theirs.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if slices.Contains(hello.SupportedProtos, ACMETLSProtocol) {
		return s.alpnChallengeCertificate(hello.ServerName)
	}

	index := s.currentIndex()

	name := normalizeHost(hello.ServerName)
	if name == "" && hello.Conn != nil {
		if addr, ok := hello.Conn.LocalAddr().(*net.TCPAddr); ok {
			name = addr.IP.String()
		}
	}
	if cert := index.lookup(name); cert != nil {
		return cert, nil
	}
	if index.def != nil {
		return index.def, nil
	}
	return nil, fmt.Errorf("no certificate for server name %q: the TLS store %s has no loadable certificate", hello.ServerName, s.dir)
}

func (idx *certIndex) lookup(name string) *tls.Certificate {
	if name == "" {
		return nil
	}
	if cert := idx.exact[name]; cert != nil {
		return cert
	}
	// A wildcard covers exactly one label (RFC 6125 section 6.4.3).
	if _, parent, ok := strings.Cut(name, "."); ok {
		return idx.wildcard[parent]
	}
	return nil
}

// currentIndex returns the certificates to serve, reloading them from disk
// when the last check is more than reloadInterval ago.
func (s *Store) currentIndex() *certIndex {
	s.mu.Lock()
	defer s.mu.Unlock()

	// A clock that went backwards counts as an elapsed interval.
	now := s.now()
	elapsed := now.Sub(s.lastCheck)
	if !s.lastCheck.IsZero() && elapsed >= 0 && elapsed < reloadInterval {
		return s.index
	}
	s.lastCheck = now

	if s.reloadLocked() {
		s.index = s.buildIndexLocked()
	}
	return s.index
}

// Reload checks the files now, without waiting for the next interval. A
// handler of the agent's "certificate changed" message may call it, but
// GetCertificate reloads on its own within a second.
func (s *Store) Reload() {
	s.mu.Lock()
	s.lastCheck = time.Time{}
	s.mu.Unlock()
	s.currentIndex()
}

// reloadLocked brings s.loaded and s.defName up to date with the folder and
// reports whether anything changed.
func (s *Store) reloadLocked() bool {
	changed := false

	entries, err := os.ReadDir(filepath.Join(s.dir, certsDir))
	if err != nil {
		slog.Warn("tls store: listing certificates failed, serving the loaded ones", "dir", s.dir, "err", err)
		return false
	}
	present := make(map[string]bool)
	for _, entry := range entries {
		name := entry.Name()
		if !entry.IsDir() || checkName(name) != nil {
			continue
		}
		present[name] = true
		if s.reloadPairLocked(name) {
			changed = true
		}
	}
	for name := range s.loaded {
		if !present[name] {
			delete(s.loaded, name)
			changed = true
		}
	}

	defName := ""
	if data, err := os.ReadFile(filepath.Join(s.dir, defaultFile)); err == nil {
		defName = strings.TrimSpace(string(data))
	}
	if defName != s.defName {
		s.defName = defName
		changed = true
	}
	return changed
}

// reloadPairLocked loads certificate name when its files changed and reports
// whether the served certificate changed. A pair that fails to load, such as
// a new key whose certificate is not yet written, leaves the old one served.
func (s *Store) reloadPairLocked(name string) bool {
	certFile, keyFile := s.CertFile(name), s.KeyFile(name)
	sig, err := statPair(certFile, keyFile)
	if err != nil {
		return false
	}
	entry := s.loaded[name]
	if entry != nil && entry.sig == sig {
		return false
	}
	if entry != nil && entry.failedSig == sig {
		return false
	}

	cert, err := loadPair(certFile, keyFile)
	if err != nil {
		if entry == nil {
			entry = &loadedCert{}
			s.loaded[name] = entry
		}
		entry.failedSig = sig
		slog.Warn("tls store: loading certificate failed, keeping the previous one", "name", name, "err", err)
		return false
	}
	s.loaded[name] = &loadedCert{sig: sig, cert: cert}
	slog.Info("tls store: certificate loaded", "name", name, "names", cert.Leaf.DNSNames, "not_after", cert.Leaf.NotAfter)
	return true
}

func statPair(certFile, keyFile string) (pairSig, error) {
	certSig, err := statFile(certFile)
	if err != nil {
		return pairSig{}, err
	}
	keySig, err := statFile(keyFile)
	if err != nil {
		return pairSig{}, err
	}
	return pairSig{cert: certSig, key: keySig}, nil
}

func statFile(path string) (fileSig, error) {
	info, err := os.Stat(path)
	if err != nil {
		return fileSig{}, err
	}
	sig := fileSig{modTime: info.ModTime(), size: info.Size()}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		sig.inode = uint64(st.Ino)
	}
	return sig, nil
}

// buildIndexLocked maps every name of every loaded certificate. Where two
// certificates contain the same name, the one that expires later wins.
func (s *Store) buildIndexLocked() *certIndex {
	idx := &certIndex{
		exact:    make(map[string]*tls.Certificate),
		wildcard: make(map[string]*tls.Certificate),
	}
	put := func(m map[string]*tls.Certificate, key string, cert *tls.Certificate) {
		if old := m[key]; old == nil || cert.Leaf.NotAfter.After(old.Leaf.NotAfter) {
			m[key] = cert
		}
	}

	names := make([]string, 0, len(s.loaded))
	for name, entry := range s.loaded {
		if entry.cert != nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)

	for _, name := range names {
		cert := s.loaded[name].cert
		for _, dnsName := range cert.Leaf.DNSNames {
			dnsName = normalizeHost(dnsName)
			if parent, ok := strings.CutPrefix(dnsName, "*."); ok {
				put(idx.wildcard, parent, cert)
				continue
			}
			put(idx.exact, dnsName, cert)
		}
		for _, ip := range cert.Leaf.IPAddresses {
			put(idx.exact, ip.String(), cert)
		}
		if idx.def == nil || name == s.defName {
			idx.def = cert
		}
	}
	return idx
}
