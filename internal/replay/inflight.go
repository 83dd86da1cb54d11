package replay

import "sync"

// InFlight holds the nonces of the requests being worked on, so that a
// copy of a request that arrives while the first is still being checked is
// refused before any costly work, as a copy arriving after the first was
// recorded is refused by Seen. A nonce is held from Hold until its release,
// which the caller calls once the nonce is recorded (or the request is
// dropped); the set is as large as the requests in progress.
type InFlight struct {
	mu   sync.Mutex
	held map[string]struct{}
}

// Hold takes key and returns its release, or ok false when key is held.
func (f *InFlight) Hold(key string) (release func(), ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, busy := f.held[key]; busy {
		return nil, false
	}
	if f.held == nil {
		f.held = make(map[string]struct{})
	}
	f.held[key] = struct{}{}
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.held, key)
			f.mu.Unlock()
		})
	}, true
}

// Len returns how many nonces are held.
func (f *InFlight) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.held)
}
