package replay

import (
	"sync"
	"time"
)

// Memory is a bounded in-memory nonce cache for a process without a store
// (the link agent's host-check server). When full, expired entries are
// dropped first; if none has expired, the request is refused (a flood of
// fresh nonces must not push out the ones that still guard).
type Memory struct {
	mu   sync.Mutex
	max  int
	seen map[string]time.Time
}

// NewMemory returns a cache holding at most max live nonces.
func NewMemory(max int) *Memory {
	if max <= 0 {
		max = 1
	}
	return &Memory{max: max, seen: make(map[string]time.Time)}
}

// Use records nonce until expires and reports true, or reports false when
// it is still remembered, or when the cache is full of live nonces.
func (m *Memory) Use(nonce string, now, expires time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if exp, ok := m.seen[nonce]; ok && exp.After(now) {
		return false
	}
	if len(m.seen) >= m.max {
		for k, exp := range m.seen {
			if !exp.After(now) {
				delete(m.seen, k)
			}
		}
		if len(m.seen) >= m.max {
			return false
		}
	}
	m.seen[nonce] = expires
	return true
}

// Len returns how many nonces are held (live or not yet swept).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen)
}
