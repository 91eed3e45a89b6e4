package certs

import (
	"context"
	"crypto/x509"
	"time"
)

// localIssuer issues certificates from Config.LocalCA.
type localIssuer struct{ cfg *Config }

func (l *localIssuer) obtain(_ context.Context, _ []string, _ *x509.Certificate) (issued, error) {
	chainPEM, keyPEM, err := l.cfg.LocalCA.Issue(l.cfg.LocalNames, l.cfg.LocalIPs, l.cfg.LocalLifetime)
	if err != nil {
		return issued{}, err
	}
	return issued{chainPEM: chainPEM, keyPEM: keyPEM}, nil
}

// schedule renews a local certificate after two thirds of its lifetime.
func (l *localIssuer) schedule(_ context.Context, cert *x509.Certificate) (time.Time, time.Time) {
	return twoThirds(cert), time.Time{}
}

// accepts rejects a certificate that the current root did not sign, such as
// one from a root that was made anew.
func (l *localIssuer) accepts(cert *x509.Certificate) bool {
	return cert.CheckSignatureFrom(l.cfg.LocalCA.Root()) == nil
}

func (l *localIssuer) lastChallenges() map[string]string { return nil }

func (l *localIssuer) takeRetryAfter() time.Time { return time.Time{} }
