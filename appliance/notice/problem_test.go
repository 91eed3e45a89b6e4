package notice

import (
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/control"
)

func TestClassifyError(t *testing.T) {
	tests := []struct{ text, want string }{
		{"urn:ietf:params:acme:error:rateLimited: too many certificates (5) already issued for this exact set of domains", reasonRateLimit},
		{"urn:ietf:params:acme:error:connection: 203.0.113.7: Connection refused", reasonUnreachable},
		{"urn:ietf:params:acme:error:tls: 203.0.113.7: remote error: tls: no application protocol", reasonUnreachable},
		{"urn:ietf:params:acme:error:dns: DNS problem: NXDOMAIN looking up A for mail.familie.test", reasonDNS},
		{"urn:ietf:params:acme:error:unauthorized: Invalid response from http://familie.test/.well-known/acme-challenge/x: 404", reasonDNS},
		{"presenting DNS-01 record: dns: bad rcode NOTAUTH", reasonDNSProvider},
		{"presenting DNS-01 record: tsig verification failed", reasonDNSProvider},
		{"presenting DNS-01 record: update refused by 192.0.2.53", reasonDNSProvider},
		{"hetzner: 401 Unauthorized: invalid token", reasonDNSProvider},
		{`Get "https://acme-v02.api.letsencrypt.org/directory": dial tcp: lookup acme-v02.api.letsencrypt.org: no such host`, reasonCAUnreachable},
		{"dial tcp 127.0.0.1:14000: connect: connection refused", reasonCAUnreachable},
		{"context deadline exceeded", reasonCAUnreachable},
		{"something unexpected", reasonOther},
	}
	for _, tt := range tests {
		if got := classifyError(tt.text); got != tt.want {
			t.Errorf("classifyError(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestClassify(t *testing.T) {
	now := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tests := []struct {
		name       string
		cert       control.CertificateStatus
		errorSince time.Time
		kind       string // "" means no problem
		variant    string
	}{
		{"fine", control.CertificateStatus{NotAfter: now.Add(60 * day)}, time.Time{}, "", ""},
		{"expiring", control.CertificateStatus{NotAfter: now.Add(10 * day), ExpiryWarning: true}, time.Time{}, kindExpiring, "expiring"},
		{"expired", control.CertificateStatus{NotAfter: now.Add(-time.Hour), ExpiryWarning: true}, time.Time{}, kindExpiring, "expired"},
		{"missing while issuing", control.CertificateStatus{ExpiryWarning: true}, time.Time{}, "", ""},
		{"missing, failing briefly", control.CertificateStatus{ExpiryWarning: true, LastError: "x"}, now.Add(-59 * time.Minute), "", ""},
		{"missing, failing an hour", control.CertificateStatus{ExpiryWarning: true, LastError: "x"}, now.Add(-time.Hour), kindExpiring, "missing"},
		{"failing briefly", control.CertificateStatus{NotAfter: now.Add(60 * day), LastError: "x"}, now.Add(-23 * time.Hour), "", ""},
		{"failing a day", control.CertificateStatus{NotAfter: now.Add(60 * day), LastError: "x"}, now.Add(-day), kindFailing, "failing"},
		{"expiring and failing", control.CertificateStatus{NotAfter: now.Add(5 * day), LastError: "x", ExpiryWarning: true}, now.Add(-3 * day), kindExpiring, "expiring"},
	}
	for _, tt := range tests {
		p := classify(&tt.cert, tt.errorSince, now)
		var kind, variant string
		if p != nil {
			kind, variant = p.kind, p.variant
		}
		if kind != tt.kind || variant != tt.variant {
			t.Errorf("%s: classify = %q/%q, want %q/%q", tt.name, kind, variant, tt.kind, tt.variant)
		}
	}
}
