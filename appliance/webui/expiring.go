package webui

import (
	"sync"
	"time"
)

// expiringMap keeps short-lived values in memory, for at most lifetime each
// and at most max keys at once. It is safe for concurrent use.
type expiringMap[V any] struct {
	now      func() time.Time
	lifetime time.Duration
	max      int

	mu      sync.Mutex
	entries map[string]expiringEntry[V]
}

type expiringEntry[V any] struct {
	value   V
	expires time.Time
}

func newExpiringMap[V any](now func() time.Time, lifetime time.Duration, max int) *expiringMap[V] {
	return &expiringMap[V]{now: now, lifetime: lifetime, max: max, entries: map[string]expiringEntry[V]{}}
}

// put stores value under key. When the map is full, it drops the expired
// entries first and then, under a flood, an arbitrary one.
func (m *expiringMap[V]) put(key string, value V) {
	m.mu.Lock()
	defer m.mu.Unlock()

	now := m.now()
	if len(m.entries) >= m.max {
		for k, e := range m.entries {
			if !now.Before(e.expires) {
				delete(m.entries, k)
			}
		}
	}
	if len(m.entries) >= m.max {
		for k := range m.entries {
			delete(m.entries, k)
			break
		}
	}
	m.entries[key] = expiringEntry[V]{value: value, expires: now.Add(m.lifetime)}
}

// get returns the value under key unless it is missing or expired.
func (m *expiringMap[V]) get(key string) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()

	e, ok := m.entries[key]
	if !ok || !m.now().Before(e.expires) {
		delete(m.entries, key)
		var zero V
		return zero, false
	}
	return e.value, true
}

func (m *expiringMap[V]) delete(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, key)
}
