package ddns

import (
	"errors"
	"time"

	"github.com/heimwolke/heimwolke/packages/dnsprovider/dyndns2"
)

// backoffDelay returns the wait after the given number of failures in a
// row: minimum doubled per failure after the first, at most maximum, but
// never shorter than the provider's retryAfter.
func backoffDelay(failures int, minimum, maximum, retryAfter time.Duration) time.Duration {
	d := maximum
	if failures < 1 {
		failures = 1
	}
	// Shifting by 62 or more would overflow int64 for any minimum of a
	// nanosecond or more.
	if failures <= 62 {
		if shifted := minimum << (failures - 1); shifted > 0 && shifted < maximum {
			d = shifted
		}
	}
	return max(d, retryAfter)
}

// retryAfter returns the wait that err asks for, from a Retry-After header
// (RFC 9110 section 10.2.3) or a provider's rate limit, or zero. Providers
// report it with a RetryAfter method, or as dyndns2.Error's field.
func retryAfter(err error) time.Duration {
	var withMethod interface{ RetryAfter() time.Duration }
	if errors.As(err, &withMethod) {
		return withMethod.RetryAfter()
	}
	var dyn *dyndns2.Error
	if errors.As(err, &dyn) {
		return dyn.RetryAfter
	}
	return 0
}

// isPermanent reports whether err says that retrying cannot help until the
// settings change, such as rejected credentials.
func isPermanent(err error) bool {
	var r interface{ Retryable() bool }
	return errors.As(err, &r) && !r.Retryable()
}
