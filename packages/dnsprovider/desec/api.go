package desec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/heimwolke/heimwolke/packages/version"
)

const (
	// DefaultEndpoint is the base URL of deSEC's REST API.
	DefaultEndpoint = "https://desec.io/api/v1"
	// RequestTimeout limits one HTTP request, including reading the
	// response.
	RequestTimeout = 30 * time.Second

	// maxRetryAfter is the longest Retry-After that a request waits for
	// before it retries. A longer one returns the *APIError instead.
	maxRetryAfter = 30 * time.Second
	// throttleRetries is the number of retries after HTTP 429.
	throttleRetries = 3
	// maxResponse is the largest response body that is read.
	maxResponse = 16 << 20
)

// ErrUnauthorized is returned when deSEC rejects the token (HTTP 401).
var ErrUnauthorized = errors.New("desec: deSEC rejected the token: create a token at https://desec.io under Token Management and check that it may manage this domain")

// APIError is a response with an HTTP status other than 2xx.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Detail is the error text from the response body.
	Detail string
	// RetryAfter is the wait that deSEC requested with a Retry-After
	// header after HTTP 429, or zero.
	RetryAfter time.Duration
	// Request is the method and the path of the request, for example
	// "PATCH /domains/example.org/rrsets/".
	Request string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("desec: %s failed with HTTP %d", e.Request, e.Status)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	switch e.Status {
	case http.StatusNotFound:
		msg += " (check the domain name: it must be a domain of the token's deSEC account)"
	case http.StatusTooManyRequests:
		msg += fmt.Sprintf(" (deSEC throttles requests: try again in %v)", e.RetryAfter)
	}
	return msg
}

// Unwrap returns ErrUnauthorized for HTTP 401.
func (e *APIError) Unwrap() error {
	if e.Status == http.StatusUnauthorized {
		return ErrUnauthorized
	}
	return nil
}

// list returns the RRsets of domain, following the cursor pagination that
// deSEC uses for more than 500 RRsets. A non-nil filter limits the list to
// its subname, and to its type unless that is empty.
func (p *Provider) list(ctx context.Context, domain string, filter *rrsetKey) ([]rrset, error) {
	q := url.Values{"cursor": {""}}
	if filter != nil {
		q.Set("subname", filter.subname)
		if filter.rtype != "" {
			q.Set("type", filter.rtype)
		}
	}
	next := "/domains/" + url.PathEscape(domain) + "/rrsets/?" + q.Encode()

	var all []rrset
	for next != "" {
		var page []rrset
		header, err := p.do(ctx, http.MethodGet, next, nil, &page)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next, err = p.nextPage(header.Get("Link")); err != nil {
			return nil, err
		}
	}
	return all, nil
}

// nextPage returns the path and query of the rel="next" link in a Link
// header (RFC 8288), relative to the endpoint, or "" when there is none.
func (p *Provider) nextPage(link string) (string, error) {
	for _, part := range strings.Split(link, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
		if !ok || !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
			continue
		}
		u, err := url.Parse(strings.Trim(strings.TrimSpace(target), "<>"))
		if err != nil {
			return "", fmt.Errorf("desec: invalid Link header %q: %w", link, err)
		}
		base, err := url.Parse(p.endpoint())
		if err != nil {
			return "", err
		}
		return strings.TrimPrefix(u.Path, strings.TrimSuffix(base.Path, "/")) + "?" + u.RawQuery, nil
	}
	return "", nil
}

// existing returns the records of one RRset, or none when it does not
// exist.
func (p *Provider) existing(ctx context.Context, domain string, key rrsetKey) ([]string, error) {
	sets, err := p.list(ctx, domain, &key)
	if err != nil {
		return nil, err
	}
	for _, s := range sets {
		if s.Subname == key.subname && s.Type == key.rtype {
			return s.Records, nil
		}
	}
	return nil, nil
}

// minimumTTL returns the lowest TTL that deSEC accepts for the domain.
func (p *Provider) minimumTTL(ctx context.Context, domain string) (int, error) {
	var d struct {
		MinimumTTL int `json:"minimum_ttl"`
	}
	if _, err := p.do(ctx, http.MethodGet, "/domains/"+url.PathEscape(domain)+"/", nil, &d); err != nil {
		return 0, err
	}
	return d.MinimumTTL, nil
}

// patch changes RRsets in bulk; an RRset with no records is deleted.
func (p *Provider) patch(ctx context.Context, domain string, sets []rrset) error {
	body, err := json.Marshal(sets)
	if err != nil {
		return fmt.Errorf("desec: encoding the RRsets: %w", err)
	}
	_, err = p.do(ctx, http.MethodPatch, "/domains/"+url.PathEscape(domain)+"/rrsets/", body, nil)
	return err
}

func (p *Provider) endpoint() string {
	if p.Endpoint != "" {
		return strings.TrimSuffix(p.Endpoint, "/")
	}
	return DefaultEndpoint
}

// do sends a request to the API and decodes the JSON response into out.
// After HTTP 429 it waits for Retry-After and tries again.
func (p *Provider) do(ctx context.Context, method, path string, body []byte, out any) (http.Header, error) {
	if p.Token == "" {
		return nil, errors.New("desec: the API token is empty: create one at https://desec.io under Token Management")
	}
	client := p.Client
	if client == nil {
		client = http.DefaultClient
	}
	request := method + " " + strings.SplitN(path, "?", 2)[0]

	for attempt := 0; ; attempt++ {
		reqCtx, cancel := context.WithTimeout(ctx, RequestTimeout)
		req, err := http.NewRequestWithContext(reqCtx, method, p.endpoint()+path, bytes.NewReader(body))
		if err != nil {
			cancel()
			return nil, fmt.Errorf("desec: building %s: %w", request, err)
		}
		req.Header.Set("Authorization", "Token "+p.Token)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", "heimwolke/"+version.Version)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}

		header, err := p.roundTrip(client, req, request, out)
		cancel()
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusTooManyRequests ||
			attempt == throttleRetries || apiErr.RetryAfter > maxRetryAfter {
			return header, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("desec: waiting to retry %s: %w", request, ctx.Err())
		case <-time.After(apiErr.RetryAfter):
		}
	}
}

func (p *Provider) roundTrip(client *http.Client, req *http.Request, request string, out any) (http.Header, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("desec: %s: %w", request, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("desec: reading the response to %s: %w", request, err)
	}

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &APIError{Status: resp.StatusCode, Detail: detail(data), Request: request}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return resp.Header, e
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("desec: decoding the response to %s: %w", request, err)
		}
	}
	return resp.Header, nil
}

// detail returns the error text of a response body: the "detail" field
// that deSEC sends for most errors, or the body itself, shortened, for
// validation errors.
func detail(body []byte) string {
	var d struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &d) == nil && d.Detail != "" {
		return d.Detail
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
