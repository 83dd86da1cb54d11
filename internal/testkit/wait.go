package testkit

import (
	"errors"
	"testing"
	"time"
)

// WaitFor waits for something a test is not told about: it calls cond
// every `every` until it holds and returns how long that took. Every wait
// is bounded: when cond still fails after within, the test fails naming
// what. within only ends a hung test; no test asserts a timing with it.
func WaitFor(t testing.TB, within, every time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return Eventually(t, within, every, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// Eventually is WaitFor for a check that says why it does not hold yet:
// it calls check every `every` until it returns nil and returns how long
// that took; when check still fails after within, the test fails with what
// and check's last error.
func Eventually(t testing.TB, within, every time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for deadline := start.Add(within); ; time.Sleep(every) {
		err := check()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			if errors.Is(err, errNotYet) {
				t.Fatalf("%s: not within %v", what, within)
			}
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
	}
}

var errNotYet = errors.New("not yet")
