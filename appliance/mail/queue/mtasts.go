package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// stsPolicy is an MTA-STS policy (RFC 8461 section 3.2).
type stsPolicy struct {
	mode    string // "enforce", "testing" or "none"; "" when the domain has none
	mx      []string
	maxAge  time.Duration
	id      string
	expires time.Time
}

func (p *stsPolicy) enforced() bool { return p != nil && p.mode == "enforce" }

// matches reports whether an MX host name matches one of the policy's mx
// patterns; "*." matches exactly one leftmost label (RFC 8461 section 4.1).
func (p *stsPolicy) matches(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pattern := range p.mx {
		pattern = strings.ToLower(pattern)
		if rest, ok := strings.CutPrefix(pattern, "*."); ok {
			_, parent, found := strings.Cut(host, ".")
			if found && parent == rest {
				return true
			}
			continue
		}
		if host == pattern {
			return true
		}
	}
	return false
}

// stsCache keeps fetched policies until their max_age ends.
// NOTE: the cache lives in memory, so after a restart the first message to
// a domain fetches its policy again, and an attacker who blocks that fetch
// at that moment downgrades the delivery to opportunistic TLS.
type stsCache struct {
	mu       sync.Mutex
	policies map[string]*stsPolicy
}

func newSTSCache() *stsCache {
	return &stsCache{policies: map[string]*stsPolicy{}}
}

// maxPolicyBytes caps the policy body, which is a few lines in practice.
const maxPolicyBytes = 64 << 10

// policy returns the MTA-STS policy of domain, or nil when it has none or
// it cannot be fetched and no cached policy is left.
func (q *Queue) policy(ctx context.Context, domain string) *stsPolicy {
	now := q.opts.Now()
	q.mtasts.mu.Lock()
	cached := q.mtasts.policies[domain]
	q.mtasts.mu.Unlock()

	id, err := q.lookupSTSRecord(ctx, domain)
	if err != nil {
		q.log.Info("mta-sts record lookup failed", "domain", domain, "err", err)
	}
	if id == "" || (cached != nil && cached.id == id && now.Before(cached.expires)) {
		// RFC 8461 section 5.1: without a TXT record, a cached policy
		// stays valid until it expires.
		if cached != nil && now.Before(cached.expires) {
			return cached
		}
		return nil
	}

	p, err := q.fetchPolicy(ctx, domain)
	if err != nil {
		q.log.Info("mta-sts policy fetch failed", "domain", domain, "err", err)
		if cached != nil && now.Before(cached.expires) {
			return cached
		}
		return nil
	}
	p.id = id
	p.expires = now.Add(p.maxAge)
	q.mtasts.mu.Lock()
	q.mtasts.policies[domain] = p
	q.mtasts.mu.Unlock()
	return p
}

// lookupSTSRecord returns the id of the _mta-sts TXT record (RFC 8461
// section 3.1), or "" when there is none.
func (q *Queue) lookupSTSRecord(ctx context.Context, domain string) (string, error) {
	txts, err := q.opts.Resolver.LookupTXT(ctx, "_mta-sts."+domain)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, txt := range txts {
		if !strings.HasPrefix(txt, "v=STSv1") {
			continue
		}
		for _, field := range strings.Split(txt, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(field), "=")
			if k == "id" {
				ids = append(ids, v)
			}
		}
	}
	if len(ids) != 1 {
		// Several records are treated as none (RFC 8461 section 3.1).
		return "", nil
	}
	return ids[0], nil
}

func (q *Queue) fetchPolicy(ctx context.Context, domain string) (*stsPolicy, error) {
	url := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := q.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: status %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPolicyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", url, err)
	}
	if len(body) > maxPolicyBytes {
		return nil, fmt.Errorf("fetching %s: policy is larger than %d bytes", url, maxPolicyBytes)
	}
	return parsePolicy(string(body))
}

// parsePolicy parses the policy text of RFC 8461 section 3.2.
func parsePolicy(text string) (*stsPolicy, error) {
	p := &stsPolicy{}
	version := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "version":
			version = v
		case "mode":
			p.mode = v
		case "mx":
			p.mx = append(p.mx, v)
		case "max_age":
			secs, err := strconv.ParseInt(v, 10, 64)
			if err != nil || secs < 0 || secs > 31557600 {
				return nil, fmt.Errorf("invalid MTA-STS max_age %q: want seconds up to 31557600", v)
			}
			p.maxAge = time.Duration(secs) * time.Second
		}
	}
	if version != "STSv1" {
		return nil, fmt.Errorf("invalid MTA-STS policy version %q: want STSv1", version)
	}
	switch p.mode {
	case "enforce", "testing", "none":
	default:
		return nil, fmt.Errorf("invalid MTA-STS mode %q: want enforce, testing or none", p.mode)
	}
	if p.mode != "none" && len(p.mx) == 0 {
		return nil, errors.New("invalid MTA-STS policy: no mx patterns")
	}
	return p, nil
}
