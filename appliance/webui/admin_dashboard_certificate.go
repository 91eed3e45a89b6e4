package webui

import (
	"strings"
	"time"

	"github.com/heimwolke/heimwolke/packages/control"
)

// certificateWarning is how long before its expiry the dashboard marks a
// certificate from a public CA as expiring soon. It matches the agent's
// ExpiryWarning.
const certificateWarning = 14 * 24 * time.Hour

// localCertificateWarning is the same for a certificate of the box's own
// CA. Those are valid for 14 days and renewed after about nine, so the
// agent's ExpiryWarning is always set for them. Less than three days left
// means that renewals have failed for more than a day.
const localCertificateWarning = 3 * 24 * time.Hour

// certificateView is the dashboard's view of the agent's
// CertificateStatus.
type certificateView struct {
	*control.CertificateStatus

	// State is "ok", "soon" or "expired", empty when NotAfter is unknown.
	State string

	// WarningKey is the catalog key of the warning about the expiry, empty
	// when none is due.
	WarningKey string

	// FailedKey is the catalog key that explains LastError. Its text
	// mentions keeping the current certificate only when one exists.
	FailedKey string

	// Challenge is the ACME challenge type as the documentation spells it,
	// "HTTP-01".
	Challenge string
}

// newCertificateView returns the view of c at now, nil when c is nil.
func newCertificateView(c *control.CertificateStatus, now time.Time) *certificateView {
	if c == nil {
		return nil
	}
	v := &certificateView{CertificateStatus: c, Challenge: strings.ToUpper(c.Challenge)}

	soon := certificateWarning
	if c.Local {
		soon = localCertificateWarning
	}
	if !c.NotAfter.IsZero() {
		switch left := c.NotAfter.Sub(now); {
		case left <= 0:
			v.State = "expired"
		case left < soon || (c.ExpiryWarning && !c.Local):
			v.State = "soon"
		default:
			v.State = "ok"
		}
	}

	switch {
	case c.NotAfter.IsZero() && c.ExpiryWarning:
		// The agent sets ExpiryWarning when no certificate exists yet.
		v.WarningKey = "admin.certificate.warning.missing"
	case v.State == "expired":
		v.WarningKey = "admin.certificate.warning.expired"
	case v.State == "soon":
		v.WarningKey = "admin.certificate.warning.soon"
	}

	if c.LastError != "" {
		v.FailedKey = "admin.certificate.failed"
		if c.Local {
			v.FailedKey = "admin.certificate.failed_local"
		}
		if c.NotAfter.IsZero() {
			v.FailedKey += "_first"
		}
	}
	return v
}
