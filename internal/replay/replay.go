// Package replay owns the two defences every signed request of Portcullis
// shares: the clock window (a request's timestamp must be within ±window of
// the receiver's clock) and the nonce cache (a nonce is accepted once while
// it could still pass the window). Approvals, the link API and the link
// agents' host checks all use it, so the rule is written once.
//
// The persisted cache lives in the store's nonces bucket, which this package
// alone reads and writes: callers pass the transaction they are in, so that
// a nonce is recorded in the same commit as whatever it guards (an approval,
// a link report), and a crash cannot record one without the other. The
// in-memory cache (Memory) serves processes without a store.
package replay

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ClockError is a timestamp outside the window.
type ClockError struct {
	// Skew is how far the timestamp is behind the clock (negative: ahead).
	Skew   time.Duration
	Window time.Duration
}

func (e *ClockError) Error() string {
	return fmt.Sprintf("timestamp is %s from the receiver's clock (window ±%s)", e.Skew.Round(time.Second), e.Window)
}

// ErrTimestamp is a timestamp that is not a whole number of seconds.
var ErrTimestamp = errors.New("timestamp is not an integer number of seconds")

// ParseUnix reads a decimal Unix time in seconds (at most 12 digits, no
// sign: the form every signed header of Portcullis uses).
func ParseUnix(s string) (time.Time, error) {
	if s == "" || len(s) > 12 || strings.Trim(s, "0123456789") != "" {
		return time.Time{}, ErrTimestamp
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, ErrTimestamp
	}
	return time.Unix(v, 0), nil
}

// CheckClock returns a *ClockError when ts is more than window away from
// now, in either direction.
func CheckClock(ts, now time.Time, window time.Duration) error {
	if d := now.Sub(ts); d > window || d < -window {
		return &ClockError{Skew: d, Window: window}
	}
	return nil
}

// TTL is how long a nonce must be remembered for a window: a request is
// fresh from window before to window after its timestamp, so a nonce seen
// now must be refused for 2×window.
func TTL(window time.Duration) time.Duration { return 2 * window }
