package hetzner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/heimwolke/heimwolke/packages/dnsprovider/rrconv"
	"github.com/heimwolke/heimwolke/packages/version"
)

const (
	// DefaultEndpoint is the base URL of the Hetzner Cloud API.
	DefaultEndpoint = "https://api.hetzner.cloud/v1"
	// RequestTimeout limits one HTTP request, including its retries
	// after HTTP 429.
	RequestTimeout = 30 * time.Second
	// ActionTimeout limits the wait for one action to finish.
	ActionTimeout = 60 * time.Second

	// maxRateLimitWait is the longest wait for the rate limit before a
	// retry. A longer wait returns the 429 error to the caller instead.
	maxRateLimitWait = 10 * time.Second
	// rateLimitRetries is the number of retries after HTTP 429.
	rateLimitRetries = 3
)

// ErrUnauthorized is returned when the API rejects the token.
var ErrUnauthorized = errors.New("hetzner: the API rejected the token: create an API token with Read & Write permission in the Hetzner Console project that holds the zone")

// client returns an API client with the token.
func (p *Provider) client() (*hcloud.Client, error) {
	if p.Token == "" {
		return nil, errors.New("hetzner: the API token is empty: create one in the Hetzner Console under Security, API tokens")
	}
	endpoint := p.Endpoint
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	httpClient := &http.Client{
		Timeout:   RequestTimeout,
		Transport: &rateLimitTransport{base: http.DefaultTransport},
	}
	return hcloud.NewClient(
		hcloud.WithToken(p.Token),
		hcloud.WithEndpoint(strings.TrimSuffix(endpoint, "/")),
		hcloud.WithApplication("heimwolke", version.Version),
		hcloud.WithHTTPClient(httpClient),
		// hcloud-go retries conflicts, 502, 504 and timeouts itself.
		hcloud.WithRetryOpts(hcloud.RetryOpts{
			BackoffFunc: hcloud.ExponentialBackoffWithOpts(hcloud.ExponentialBackoffOpts{
				Base: 500 * time.Millisecond, Multiplier: 2, Cap: 5 * time.Second, Jitter: true,
			}),
			MaxRetries: 2,
		}),
	), nil
}

// zone returns an API client and the zone named zone.
func (p *Provider) zone(ctx context.Context, zone string) (*hcloud.Client, *hcloud.Zone, error) {
	origin, err := rrconv.Zone(zone)
	if err != nil {
		return nil, nil, err
	}
	api, err := p.client()
	if err != nil {
		return nil, nil, err
	}
	name := strings.TrimSuffix(origin, ".")
	z, _, err := api.Zone.GetByName(ctx, name)
	if err != nil {
		return nil, nil, p.wrap(err, "reading zone "+name)
	}
	if z == nil {
		return nil, nil, fmt.Errorf("hetzner: zone %s not found: create it in the Hetzner Console, in the project whose API token you use", name)
	}
	return api, z, nil
}

// wrap adds context and a hint to an API error.
func (p *Provider) wrap(err error, what string) error {
	switch {
	case hcloud.IsError(err, hcloud.ErrorCodeUnauthorized):
		return fmt.Errorf("%w (%s)", ErrUnauthorized, what)
	case hcloud.IsError(err, hcloud.ErrorCodeForbidden):
		return fmt.Errorf("hetzner: %s: the token may only read: create one with Read & Write permission: %w", what, err)
	case hcloud.IsError(err, hcloud.ErrorCodeRateLimitExceeded):
		return fmt.Errorf("hetzner: %s: the API's rate limit is exhausted, try again in a minute: %w", what, err)
	}
	return fmt.Errorf("hetzner: %s: %w", what, err)
}

// finish checks the error of a change request and waits for its action.
func (p *Provider) finish(ctx context.Context, api *hcloud.Client, action *hcloud.Action, err error, verb string, z *hcloud.Zone, key rrsetKey) error {
	what := fmt.Sprintf("%s records of RRset %s %s in zone %s", verb, key.name, key.rtype, z.Name)
	if err != nil {
		return p.wrap(err, what)
	}
	if err := waitAction(ctx, api, action); err != nil {
		return p.wrap(err, what)
	}
	return nil
}

// waitAction polls the action at /zones/actions/{id} until it is no longer
// running, and returns an error if it failed.
func waitAction(ctx context.Context, api *hcloud.Client, action *hcloud.Action) error {
	if action == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, ActionTimeout)
	defer cancel()

	wait := 200 * time.Millisecond
	for action.Status == hcloud.ActionStatusRunning {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for action %d (%s): %w", action.ID, action.Command, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)

		id := action.ID
		var err error
		action, _, err = api.Zone.Action.GetByID(ctx, id)
		if err != nil {
			return fmt.Errorf("reading action %d: %w", id, err)
		}
		if action == nil {
			return fmt.Errorf("action %d not found", id)
		}
	}
	if action.Status == hcloud.ActionStatusError {
		return fmt.Errorf("action %d (%s) failed with %s: %s", action.ID, action.Command, action.ErrorCode, action.ErrorMessage)
	}
	return nil
}

// rateLimitTransport retries requests that the API rejected with HTTP 429,
// after the wait that the RateLimit headers give.
type rateLimitTransport struct {
	base http.RoundTripper
}

func (t *rateLimitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		resp, err := t.base.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || attempt == rateLimitRetries {
			return resp, err
		}
		wait := rateLimitWait(resp.Header, time.Now())
		if wait > maxRateLimitWait || (req.Body != nil && req.GetBody == nil) {
			return resp, nil
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()

		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		case <-time.After(wait):
		}
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
	}
}

// rateLimitWait returns how long to wait until the rate limit allows one
// more request. A Retry-After header (in seconds) wins. Otherwise the wait
// is the time until RateLimit-Reset (a Unix timestamp, when RateLimit-Limit
// requests are available again) divided by the missing requests.
//
// NOTE: dividing assumes that the API refills the limit evenly until the
// reset. This was not checked against the live API.
func rateLimitWait(h http.Header, now time.Time) time.Duration {
	const fallback = time.Second
	if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	limit, err1 := strconv.Atoi(h.Get("RateLimit-Limit"))
	remaining, err2 := strconv.Atoi(h.Get("RateLimit-Remaining"))
	reset, err3 := strconv.ParseInt(h.Get("RateLimit-Reset"), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || limit <= remaining {
		return fallback
	}
	untilReset := time.Unix(reset, 0).Sub(now)
	if untilReset <= 0 {
		return 0
	}
	return untilReset / time.Duration(limit-remaining)
}
