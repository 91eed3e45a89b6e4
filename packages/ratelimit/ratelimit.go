// Package ratelimit limits how often one client (a source address, an
// account) may do something, with a token bucket per key. Servers use it to cap
// what a single client can make them do.
package ratelimit

import (
	"sync"
	"time"
)

// Limiter allows each key Burst events at once and Rate events per second on
// average. The zero value is not usable; call New.
type Limiter struct {
	rate    float64
	burst   float64
	maxKeys int
	now     func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New returns a limiter that keeps state for at most maxKeys keys. When full,
// it drops the buckets that have refilled completely.
func New(rate float64, burst int, maxKeys int) *Limiter {
	return &Limiter{
		rate:    rate,
		burst:   float64(burst),
		maxKeys: maxKeys,
		now:     time.Now,
		buckets: map[string]*bucket{},
	}
}

// Allow reports whether key may do one more event now, and counts it if so.
func (l *Limiter) Allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxKeys {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// prune drops full buckets; if none is full, it drops all, which errs on the
// side of letting clients through rather than growing without bound.
func (l *Limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= l.maxKeys {
		clear(l.buckets)
	}
}
