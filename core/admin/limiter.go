package admin

import (
	"sync"
	"time"
)

// Limiter counts failures per key in a fixed window and refuses a key that
// has reached its maximum until the window that started with its first
// failure has passed. It holds at most maxKeys keys; when full it forgets
// the key whose window started first.
type Limiter struct {
	mu      sync.Mutex
	max     int
	window  time.Duration
	maxKeys int
	now     func() time.Time
	keys    map[string]*bucket
}

type bucket struct {
	start    time.Time
	failures int
}

// NewLimiter returns a Limiter.
func NewLimiter(max int, window time.Duration, maxKeys int, now func() time.Time) *Limiter {
	return &Limiter{max: max, window: window, maxKeys: maxKeys, now: now, keys: make(map[string]*bucket)}
}

// Allow reports whether key may try again.
func (l *Limiter) Allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.keys[key]
	if !ok {
		return true
	}
	if l.now().Sub(b.start) >= l.window {
		delete(l.keys, key)
		return true
	}
	return b.failures < l.max
}

// Fail records a failure for key.
func (l *Limiter) Fail(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.keys[key]
	if ok && now.Sub(b.start) >= l.window {
		ok = false
	}
	if !ok {
		if len(l.keys) >= l.maxKeys {
			l.evictOldest()
		}
		b = &bucket{start: now}
		l.keys[key] = b
	}
	b.failures++
}

func (l *Limiter) evictOldest() {
	var oldest string
	var t time.Time
	for k, b := range l.keys {
		if oldest == "" || b.start.Before(t) {
			oldest, t = k, b.start
		}
	}
	delete(l.keys, oldest)
}
