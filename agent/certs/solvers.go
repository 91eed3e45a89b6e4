package certs

import (
	"context"
	"strings"
	"sync"
	"time"

	"net/http"

	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"

	"github.com/heimwolke/heimwolke/packages/tlsstore"
)

// httpSolver presents HTTP-01 challenges as files in the TLS store, which
// heimwolke serves on port 80 with tlsstore.HTTPChallengeHandler.
type httpSolver struct{ store *tlsstore.Store }

func (s httpSolver) Present(_ context.Context, chal acme.Challenge) error {
	return s.store.PutHTTPChallenge(chal.Token, chal.KeyAuthorization)
}

func (s httpSolver) CleanUp(_ context.Context, chal acme.Challenge) error {
	return s.store.DeleteHTTPChallenge(chal.Token)
}

// alpnSolver presents TLS-ALPN-01 challenge certificates (RFC 8737) as files
// in the TLS store, which heimwolke's tlsstore.GetCertificate serves on port
// 443 to clients that offer only the acme-tls/1 protocol.
type alpnSolver struct{ store *tlsstore.Store }

func (s alpnSolver) Present(_ context.Context, chal acme.Challenge) error {
	cert, err := acmez.TLSALPN01ChallengeCert(chal)
	if err != nil {
		return err
	}
	return s.store.PutTLSALPNChallenge(chal.Identifier.Value, cert)
}

func (s alpnSolver) CleanUp(_ context.Context, chal acme.Challenge) error {
	return s.store.DeleteTLSALPNChallenge(chal.Identifier.Value)
}

// challengeRecorder remembers which challenge type was presented for which
// identifier during one order.
type challengeRecorder struct {
	mu   sync.Mutex
	used map[string]string // identifier value to challenge type
}

func (r *challengeRecorder) wrap(solver acmez.Solver) acmez.Solver {
	return recordingSolver{Solver: solver, recorder: r}
}

// lookup returns the challenge type presented for name; a wildcard name is
// validated through its base domain's identifier.
func (r *challengeRecorder) lookup(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.used[strings.TrimPrefix(name, "*.")]
}

type recordingSolver struct {
	acmez.Solver
	recorder *challengeRecorder
}

func (s recordingSolver) Present(ctx context.Context, chal acme.Challenge) error {
	s.recorder.mu.Lock()
	s.recorder.used[chal.Identifier.Value] = chal.Type
	s.recorder.mu.Unlock()
	return s.Solver.Present(ctx, chal)
}

// Wait passes on to the wrapped solver's Wait, which DNS-01 needs to wait
// for the record to become visible.
func (s recordingSolver) Wait(ctx context.Context, chal acme.Challenge) error {
	if waiter, ok := s.Solver.(acmez.Waiter); ok {
		return waiter.Wait(ctx, chal)
	}
	return nil
}

// retryAfterTransport records the Retry-After of rate-limit and
// unavailability responses (HTTP 429 and 503, RFC 8555 section 6.6), which
// acmez does not pass on with its errors.
type retryAfterTransport struct {
	base http.RoundTripper

	mu    sync.Mutex
	until time.Time
}

func (t *retryAfterTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if until, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			t.mu.Lock()
			if until.After(t.until) {
				t.until = until
			}
			t.mu.Unlock()
		}
	}
	return resp, nil
}

// take returns the latest Retry-After time seen since the last call.
func (t *retryAfterTransport) take() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	until := t.until
	t.until = time.Time{}
	return until
}

// parseRetryAfter reads a Retry-After value, which is either a number of
// seconds or an HTTP date (RFC 9110 section 10.2.3).
func parseRetryAfter(value string, now time.Time) (time.Time, bool) {
	value = strings.TrimSpace(value)
	if value == "" {
		return time.Time{}, false
	}
	if seconds, err := time.ParseDuration(value + "s"); err == nil && seconds >= 0 && !strings.ContainsAny(value, ".eE+-") {
		return now.Add(seconds), true
	}
	if date, err := http.ParseTime(value); err == nil {
		return date, true
	}
	return time.Time{}, false
}
