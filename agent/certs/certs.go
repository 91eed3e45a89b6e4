// Package certs keeps the box's TLS certificates current in a
// tlsstore.Store, from which heimwolke serves them. It obtains them from an
// ACME CA (RFC 8555) through DNS-01, HTTP-01 or TLS-ALPN-01 challenges and
// renews them as the CA's renewal information (RFC 9773) suggests, or after
// two thirds of their lifetime. In LAN-only mode it issues them from a local CA.
package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"golang.org/x/net/idna"

	"github.com/heimwolke/heimwolke/agent/certs/localca"
	"github.com/heimwolke/heimwolke/packages/tlsstore"
)

// ACME directory URLs of Let's Encrypt.
const (
	LetsEncryptProduction = "https://acme-v02.api.letsencrypt.org/directory"
	LetsEncryptStaging    = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// Challenge types (RFC 8555 section 8, RFC 8737).
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
	ChallengeDNS01     = "dns-01"
)

// Names of the certificates in the TLS store.
const (
	ACMECertificate  = "acme"
	LocalCertificate = "local"
)

// Defaults of Config fields left zero.
const (
	DefaultRetryMin      = time.Minute
	DefaultRetryMax      = 12 * time.Hour
	DefaultExpiryWarning = 14 * 24 * time.Hour
	DefaultLocalLifetime = 14 * 24 * time.Hour
)

// Config configures a Manager. Zero fields take the documented defaults.
type Config struct {
	// Store receives certificates, keys, the ACME account key and pending
	// challenges. Required.
	Store *tlsstore.Store

	// Names are the DNS names that the ACME certificate covers: the domain,
	// then service names such as mail.example.org, autoconfig.example.org,
	// mta-sts.example.org, upload.example.org and conference.example.org,
	// or "*.example.org". Empty means no ACME certificate (LAN-only mode).
	Names []string

	// DirectoryURL is the ACME CA's directory. Empty means
	// LetsEncryptProduction.
	DirectoryURL string
	// Email is the account's contact address; empty registers none.
	Email string
	// Profile selects a certificate profile that the CA offers, such as
	// Let's Encrypt's "shortlived". Empty means the CA's default.
	Profile string
	// TrustedRoots verifies the ACME server's HTTPS certificate. Nil means
	// the system roots.
	TrustedRoots *x509.CertPool

	// DNSProvider sets the TXT records of DNS-01 challenges. When set,
	// DNS-01 is the only challenge used; it is required for wildcard names.
	DNSProvider certmagic.DNSProvider
	// DNSResolvers (host:port) find the zone of a name and check that a
	// challenge record is visible. Empty means the system's resolvers, then
	// the authoritative servers of the zone.
	DNSResolvers []string
	// DNSPropagationTimeout limits the wait for a TXT record to become
	// visible. Zero means certmagic's default of two minutes.
	DNSPropagationTimeout time.Duration
	// Challenges restricts and orders the challenge types tried without a
	// DNS provider. Empty means HTTP-01, then TLS-ALPN-01.
	Challenges []string

	// LocalCA, when set, issues a certificate for LocalNames and LocalIPs,
	// the box's names and addresses in the LAN (heimwolke.local, its
	// router-assigned name, its private addresses).
	LocalCA    *localca.CA
	LocalNames []string
	LocalIPs   []net.IP
	// LocalLifetime is the validity of a local certificate. Zero means
	// DefaultLocalLifetime.
	LocalLifetime time.Duration

	// RetryMin and RetryMax bound the wait after a failed attempt, which
	// doubles from RetryMin with every failure in a row. A Retry-After
	// from the CA lengthens it. Zero means DefaultRetryMin and
	// DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// ExpiryWarning is how long before expiry a certificate is flagged in
	// State. Zero means DefaultExpiryWarning.
	ExpiryWarning time.Duration

	// OnCertificate, when set, is called after a new certificate is written
	// to the store, from the goroutine that runs Run.
	OnCertificate func(Event)
	// Logger receives the manager's logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Event describes a certificate that was just written to the store.
type Event struct {
	// Certificate is the store name: ACMECertificate or LocalCertificate.
	Certificate string
	Names       []string
	CertFile    string
	KeyFile     string
	NotAfter    time.Time
}

// NameState is the certificate state of one name, as State reports it.
type NameState struct {
	Name string
	// Certificate is the store name of the certificate that covers Name.
	Certificate string
	// Issuer is the common name of the issuing CA, empty before the first
	// certificate.
	Issuer   string
	NotAfter time.Time
	// Challenge is the challenge type that validated Name at the last
	// issuance, empty for local certificates or when unknown.
	Challenge string
	// LastError describes the last failed attempt, empty after a success.
	LastError string
	// NextAttempt is when the manager next renews, or retries after a
	// failure.
	NextAttempt time.Time
	// ExpiryWarning is set when the served certificate expires within
	// Config.ExpiryWarning, or no certificate exists.
	ExpiryWarning bool
}

func (c *Config) setDefaults() {
	if c.DirectoryURL == "" {
		c.DirectoryURL = LetsEncryptProduction
	}
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.ExpiryWarning == 0 {
		c.ExpiryWarning = DefaultExpiryWarning
	}
	if c.LocalLifetime == 0 {
		c.LocalLifetime = DefaultLocalLifetime
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if len(c.Challenges) == 0 {
		c.Challenges = []string{ChallengeHTTP01, ChallengeTLSALPN01}
	}
	c.Names = normalizeNames(c.Names)
	c.LocalNames = normalizeNames(c.LocalNames)
}

// validate reports every problem of the configuration at once. It also
// converts Names to A-labels.
func (c *Config) validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("Store is nil; open one with tlsstore.Open"))
	}
	if len(c.Names) == 0 && c.LocalCA == nil {
		errs = append(errs, errors.New("neither Names nor LocalCA is set; give the domain's names, or a local CA for LAN-only mode"))
	}
	for i, name := range c.Names {
		ascii, err := toASCII(name)
		if err != nil {
			errs = append(errs, err)
		}
		c.Names[i] = ascii
		if strings.HasPrefix(name, "*.") && c.DNSProvider == nil {
			errs = append(errs, fmt.Errorf("name %q is a wildcard, which needs DNS-01: set DNSProvider", name))
		}
		if strings.Count(name, "*") > 1 || (strings.Contains(name, "*") && !strings.HasPrefix(name, "*.")) {
			errs = append(errs, fmt.Errorf("name %q is an invalid wildcard; use *.DOMAIN", name))
		}
	}
	for _, challenge := range c.Challenges {
		if challenge != ChallengeHTTP01 && challenge != ChallengeTLSALPN01 {
			errs = append(errs, fmt.Errorf("challenge %q is not supported in Challenges; use %s or %s (DNS-01 is chosen by setting DNSProvider)", challenge, ChallengeHTTP01, ChallengeTLSALPN01))
		}
	}
	if c.LocalCA != nil && len(c.LocalNames) == 0 && len(c.LocalIPs) == 0 {
		errs = append(errs, errors.New("LocalCA is set without LocalNames or LocalIPs; give at least heimwolke.local"))
	}
	if c.RetryMin > c.RetryMax {
		errs = append(errs, fmt.Errorf("RetryMin %v is longer than RetryMax %v", c.RetryMin, c.RetryMax))
	}
	return errors.Join(errs...)
}

// toASCII converts an internationalized name to the A-labels that
// certificates contain (RFC 5280 section 7.2), so that a configured name
// compares equal to the name in the issued certificate.
func toASCII(name string) (string, error) {
	base, wildcard := strings.CutPrefix(name, "*.")
	ascii, err := idna.Lookup.ToASCII(base)
	if err != nil {
		return name, fmt.Errorf("name %q is not a valid DNS name: %w", name, err)
	}
	if wildcard {
		ascii = "*." + ascii
	}
	return ascii, nil
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

// Manager obtains and renews the certificates of a Config.
type Manager struct {
	cfg         Config
	fingerprint string // configFingerprint of cfg
	log         *slog.Logger
	slots       []*slot
	wake        chan struct{}

	mu sync.Mutex // guards the state fields of every slot
}

// New checks cfg and returns a Manager for it. It does not contact the CA;
// Run does.
func New(cfg Config) (*Manager, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("certificate configuration: %w", err)
	}
	m := &Manager{cfg: cfg, fingerprint: configFingerprint(&cfg), log: cfg.Logger.With("component", "certs"), wake: make(chan struct{}, 1)}

	if len(cfg.Names) > 0 {
		issuer, err := newACMEIssuer(&m.cfg, m.log)
		if err != nil {
			return nil, err
		}
		m.slots = append(m.slots, &slot{certName: ACMECertificate, names: cfg.Names, issuer: issuer})
	}
	if cfg.LocalCA != nil {
		names := slices.Clone(cfg.LocalNames)
		for _, ip := range cfg.LocalIPs {
			names = append(names, ip.String())
		}
		m.slots = append(m.slots, &slot{certName: LocalCertificate, names: names, issuer: &localIssuer{cfg: &m.cfg}})
	}
	return m, nil
}

// State returns the state of every configured name, ACME names first.
func (m *Manager) State() []NameState {
	m.mu.Lock()
	defer m.mu.Unlock()

	now := time.Now()
	var states []NameState
	for _, s := range m.slots {
		for _, name := range s.names {
			state := NameState{
				Name:        name,
				Certificate: s.certName,
				Challenge:   s.challenges[name],
				LastError:   s.lastError,
				NextAttempt: s.nextAttempt,
			}
			if s.leaf != nil {
				state.Issuer = s.leaf.Issuer.CommonName
				state.NotAfter = s.leaf.NotAfter
			}
			state.ExpiryWarning = s.leaf == nil || s.leaf.NotAfter.Sub(now) < m.cfg.ExpiryWarning
			states = append(states, state)
		}
	}
	return states
}

// CheckNow makes Run look at every certificate at once instead of at the
// scheduled time, for example after the settings changed, and skips a
// running backoff. A certificate that is not due is not renewed.
func (m *Manager) CheckNow() {
	m.mu.Lock()
	for _, s := range m.slots {
		s.wakeAt = time.Time{}
	}
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}
