// Package tlsstore is the folder of TLS certificates, keys and pending ACME
// challenges that heimwolke-agent writes and heimwolke serves from: atomic
// owner-only files on one side, a tls.Config.GetCertificate that picks up new
// files without a restart and the HTTP-01 and TLS-ALPN-01 responders on the
// other. It does not talk to any certificate authority.
package tlsstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Layout of the store folder. Every folder has mode 0700 and every file 0600.
const (
	certsDir      = "certs"      // certs/NAME/cert.pem and certs/NAME/key.pem
	defaultFile   = "default"    // contains the NAME served when no SNI matches
	challengesDir = "challenges" // pending ACME challenges, see challenge.go
	certFileName  = "cert.pem"
	keyFileName   = "key.pem"
)

// ErrNotFound is returned for a certificate or challenge that the store does
// not contain.
var ErrNotFound = errors.New("not found in the TLS store")

// validName matches certificate and component folder names: lowercase, no
// path separators, no leading dot, so that a name cannot leave the store.
var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,99}$`)

// Store is a folder of certificates and ACME challenges, on the box
// /perm/heimwolke/tls. Its methods are safe for concurrent use, and several
// processes may open the same folder: one writer (the agent) and readers
// (heimwolke).
type Store struct {
	dir string

	// mu guards the fields below, which cache what GetCertificate serves.
	mu        sync.Mutex
	lastCheck time.Time
	loaded    map[string]*loadedCert // by certificate name
	defName   string
	index     *certIndex
	now       func() time.Time // time.Now, replaced in tests
}

// Open returns the store in dir, creating dir and its subfolders with mode
// 0700 when they are missing.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("opening TLS store: the folder is empty; pass a path such as /perm/heimwolke/tls")
	}
	for _, sub := range []string{"", certsDir, challengesDir, filepath.Join(challengesDir, httpChallengeDir), filepath.Join(challengesDir, alpnChallengeDir)} {
		if err := mkdirPrivate(filepath.Join(dir, sub)); err != nil {
			return nil, fmt.Errorf("opening TLS store: %w", err)
		}
	}
	return &Store{
		dir:    dir,
		loaded: make(map[string]*loadedCert),
		index:  &certIndex{},
		now:    time.Now,
	}, nil
}

// Dir returns the store's folder.
func (s *Store) Dir() string { return s.dir }

// PrivateDir returns the folder DIR/name for a component's own state (the
// ACME account key, the local CA's key), creating it with mode 0700.
func (s *Store) PrivateDir(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	if name == certsDir || name == challengesDir || name == defaultFile {
		return "", fmt.Errorf("private folder %q: the name is reserved by the TLS store; choose another", name)
	}
	dir := filepath.Join(s.dir, name)
	if err := mkdirPrivate(dir); err != nil {
		return "", err
	}
	return dir, nil
}

// CertFile returns the path of the PEM certificate chain of certificate name.
func (s *Store) CertFile(name string) string {
	return filepath.Join(s.dir, certsDir, name, certFileName)
}

// KeyFile returns the path of the PEM private key of certificate name.
func (s *Store) KeyFile(name string) string {
	return filepath.Join(s.dir, certsDir, name, keyFileName)
}

// WriteCertificate stores a PEM certificate chain (leaf first) and its PEM
// private key as certificate name, replacing an older one of that name. It
// rejects a chain that does not match the key. Readers keep serving the old
// pair until both new files are in place, because they load a pair only
// when its certificate and key match.
func (s *Store) WriteCertificate(name string, chainPEM, keyPEM []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	if _, err := tls.X509KeyPair(chainPEM, keyPEM); err != nil {
		return fmt.Errorf("writing certificate %s: the chain and key do not form a pair: %w", name, err)
	}

	dir := filepath.Join(s.dir, certsDir, name)
	if err := mkdirPrivate(dir); err != nil {
		return fmt.Errorf("writing certificate %s: %w", name, err)
	}
	if err := syncDir(filepath.Join(s.dir, certsDir)); err != nil {
		return fmt.Errorf("writing certificate %s: %w", name, err)
	}
	if err := WriteFile(s.KeyFile(name), keyPEM, 0o600); err != nil {
		return fmt.Errorf("writing certificate %s: %w", name, err)
	}
	if err := WriteFile(s.CertFile(name), chainPEM, 0o600); err != nil {
		return fmt.Errorf("writing certificate %s: %w", name, err)
	}
	return nil
}

// SetDefault makes certificate name the one served to clients whose SNI
// matches no certificate, or who send none.
func (s *Store) SetDefault(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := WriteFile(filepath.Join(s.dir, defaultFile), []byte(name+"\n"), 0o600); err != nil {
		return fmt.Errorf("setting default certificate: %w", err)
	}
	return nil
}

// Certificate loads certificate name from disk, with Leaf set. It returns an
// error wrapping ErrNotFound when the store has no certificate of that name.
func (s *Store) Certificate(name string) (*tls.Certificate, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	return loadPair(s.CertFile(name), s.KeyFile(name))
}

// RemoveCertificate deletes certificate name. Readers stop serving it at
// their next reload.
func (s *Store) RemoveCertificate(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	dir := filepath.Join(s.dir, certsDir, name)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing certificate %s: %w", name, err)
	}
	return syncDir(filepath.Join(s.dir, certsDir))
}

// loadPair reads a certificate chain and key and parses the leaf.
func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	chainPEM, err := os.ReadFile(certFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("loading %s: %w", certFile, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("loading certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("loading %s: %w", keyFile, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("loading key: %w", err)
	}
	cert, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading %s and %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", certFile, err)
		}
	}
	return &cert, nil
}

func checkName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("invalid TLS store name %q: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit", name)
	}
	return nil
}

// normalizeHost lowercases a DNS name and removes a trailing dot.
func normalizeHost(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".")
}
