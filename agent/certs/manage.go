package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"slices"
	"time"

	"github.com/heimwolke/heimwolke/packages/tlsstore"
)

// issuer obtains certificates from one source: an ACME CA or the local CA.
type issuer interface {
	// obtain returns a new PEM chain and key for names. current is the
	// certificate it replaces, or nil.
	obtain(ctx context.Context, names []string, current *x509.Certificate) (issued, error)
	// schedule returns when cert is due for renewal, and when to ask the
	// CA again because its advice may change (zero for never).
	schedule(ctx context.Context, cert *x509.Certificate) (renewAt, recheckAt time.Time)
	// accepts reports whether cert came from this issuer's current
	// configuration, so that a certificate of another CA gets replaced.
	accepts(cert *x509.Certificate) bool
	// lastChallenges returns the challenge type per name of the last
	// issuance, as stored across restarts.
	lastChallenges() map[string]string
	// takeRetryAfter returns the earliest retry time that the CA asked for
	// since the last call, or zero.
	takeRetryAfter() time.Time
}

// issued is a certificate chain and key fresh from an issuer.
type issued struct {
	chainPEM, keyPEM []byte
	// challenges maps each name to the challenge type that validated it.
	challenges map[string]string
}

// slot is one certificate that the manager keeps current.
type slot struct {
	certName string
	names    []string
	issuer   issuer

	// The fields below are guarded by Manager.mu.
	leaf        *x509.Certificate
	challenges  map[string]string
	lastError   string
	failures    int
	nextAttempt time.Time // the next renewal or retry, for State
	wakeAt      time.Time // when Run looks at the slot again
}

// Run keeps the certificates current until ctx is done, then returns
// ctx.Err(). It looks at every certificate at once, then when each is due
// for renewal, for a new look at the CA's renewal information, or for a
// retry after a failure.
func (m *Manager) Run(ctx context.Context) error {
	m.log.Info("certificate manager started", "names", m.cfg.Names, "local_names", m.cfg.LocalNames, "directory", m.cfg.DirectoryURL)
	defer m.log.Info("certificate manager stopped")

	if err := m.cfg.Store.SetDefault(m.slots[0].certName); err != nil {
		m.log.Error("setting the default certificate failed", "certificate", m.slots[0].certName, "err", err)
	}
	m.mu.Lock()
	for _, s := range m.slots {
		s.challenges = s.issuer.lastChallenges()
	}
	m.mu.Unlock()
	m.loadBackoff()

	for {
		for _, s := range m.slots {
			if m.isDue(s) {
				m.maintain(ctx, s)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}

		timer := time.NewTimer(time.Until(m.earliestWake()))
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		case <-m.wake:
			timer.Stop()
		}
	}
}

func (m *Manager) isDue(s *slot) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !time.Now().Before(s.wakeAt)
}

func (m *Manager) earliestWake() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	earliest := m.slots[0].wakeAt
	for _, s := range m.slots[1:] {
		if s.wakeAt.Before(earliest) {
			earliest = s.wakeAt
		}
	}
	return earliest
}

// maintain renews the slot's certificate when it is missing, does not cover
// the configured names, comes from another CA or is due, and schedules the
// next look.
func (m *Manager) maintain(ctx context.Context, s *slot) {
	current := m.loadCurrent(s)

	reason := m.renewalReason(s, current)
	if reason == "" {
		renewAt, recheckAt := s.issuer.schedule(ctx, current)
		if time.Now().Before(renewAt) {
			m.setSchedule(s, renewAt, recheckAt)
			return
		}
		reason = "renewal due"
	}

	replaces := current
	if reason != "renewal due" {
		replaces = nil
	}
	m.log.Info("obtaining certificate", "certificate", s.certName, "names", s.names, "reason", reason)
	result, err := s.issuer.obtain(ctx, s.names, replaces)
	if err == nil {
		err = m.cfg.Store.WriteCertificate(s.certName, result.chainPEM, result.keyPEM)
	}
	if err != nil {
		m.recordFailure(s, err)
		return
	}

	leaf := m.loadCurrent(s)
	if leaf == nil {
		m.recordFailure(s, errors.New("the certificate just written could not be read back from the TLS store"))
		return
	}
	m.recordSuccess(s, leaf, result.challenges)
	renewAt, recheckAt := s.issuer.schedule(ctx, leaf)
	m.setSchedule(s, renewAt, recheckAt)

	if m.cfg.OnCertificate != nil {
		m.cfg.OnCertificate(Event{
			Certificate: s.certName,
			Names:       slices.Clone(s.names),
			CertFile:    m.cfg.Store.CertFile(s.certName),
			KeyFile:     m.cfg.Store.KeyFile(s.certName),
			NotAfter:    leaf.NotAfter,
		})
	}
}

// loadCurrent reads the slot's certificate from the store, records it for
// State and returns its leaf, or nil when there is none.
func (m *Manager) loadCurrent(s *slot) *x509.Certificate {
	cert, err := m.cfg.Store.Certificate(s.certName)
	if err != nil {
		if !errors.Is(err, tlsstore.ErrNotFound) {
			m.log.Warn("reading the stored certificate failed, obtaining a new one", "certificate", s.certName, "err", err)
		}
		return nil
	}
	m.mu.Lock()
	s.leaf = cert.Leaf
	m.mu.Unlock()
	return cert.Leaf
}

// renewalReason returns why current must be replaced regardless of its
// renewal time, or "" when only the schedule decides.
func (m *Manager) renewalReason(s *slot, current *x509.Certificate) string {
	switch {
	case current == nil:
		return "no certificate"
	case !covers(current, s.names):
		return "names changed"
	case !s.issuer.accepts(current):
		return "issuer changed"
	}
	return ""
}

// covers reports whether cert contains every name, DNS names and IP
// addresses alike.
func covers(cert *x509.Certificate, names []string) bool {
	for _, name := range names {
		if ip := net.ParseIP(name); ip != nil {
			if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
				return false
			}
			continue
		}
		if !slices.Contains(cert.DNSNames, name) {
			return false
		}
	}
	return true
}

func (m *Manager) setSchedule(s *slot, renewAt, recheckAt time.Time) {
	wakeAt := renewAt
	if !recheckAt.IsZero() && recheckAt.Before(wakeAt) {
		wakeAt = recheckAt
	}
	m.mu.Lock()
	s.nextAttempt = renewAt
	s.wakeAt = wakeAt
	m.mu.Unlock()
	m.log.Debug("certificate scheduled", "certificate", s.certName, "renew_at", renewAt, "recheck_at", recheckAt)
}

func (m *Manager) recordSuccess(s *slot, leaf *x509.Certificate, challenges map[string]string) {
	m.mu.Lock()
	s.leaf = leaf
	hadFailures := s.failures > 0
	s.failures = 0
	s.lastError = ""
	if s.challenges == nil {
		s.challenges = make(map[string]string)
	}
	for name, challenge := range challenges {
		s.challenges[name] = challenge
	}
	m.mu.Unlock()
	if hadFailures {
		m.saveBackoff()
	}
	m.log.Info("certificate obtained", "certificate", s.certName, "names", s.names, "issuer", leaf.Issuer.CommonName,
		"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter, "challenges", challenges)
}

// recordFailure schedules a retry: RetryMin doubled for every failure in a
// row up to RetryMax, or later when the CA sent a Retry-After, because
// retrying earlier only counts against its rate limits. The certificate in
// the store, if any, stays in service.
func (m *Manager) recordFailure(s *slot, err error) {
	now := time.Now()
	m.mu.Lock()
	s.failures++
	delay := m.cfg.RetryMin << min(s.failures-1, 30)
	if delay > m.cfg.RetryMax || delay <= 0 {
		delay = m.cfg.RetryMax
	}
	retryAt := now.Add(delay)
	if caRetry := s.issuer.takeRetryAfter(); caRetry.After(retryAt) {
		retryAt = caRetry
	}
	s.lastError = err.Error()
	s.nextAttempt = retryAt
	s.wakeAt = retryAt
	failures := s.failures
	m.mu.Unlock()

	m.log.Warn("obtaining certificate failed", "certificate", s.certName, "names", s.names,
		"failures", failures, "retry_at", retryAt, "err", err)
	m.saveBackoff()
}

// twoThirds returns the time when two thirds of cert's lifetime have passed,
// the renewal time without advice from the CA.
func twoThirds(cert *x509.Certificate) time.Time {
	lifetime := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotBefore.Add(lifetime * 2 / 3)
}
