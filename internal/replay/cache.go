package replay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// Key names one nonce in the persisted cache: its kind (what protocol and
// which nonce of it), the scope it is unique within (a sync token, a user,
// a link host) and the nonce. The layout, kind/scope/nonce, is stored: do
// not change it without a migration.
func Key(kind, scope, nonce string) string { return kind + "/" + scope + "/" + nonce }

// Kinds of the persisted cache.
const (
	KindAuth  = "auth"  // approval Auth-Nonce header, per sync token
	KindBox   = "box"   // approval box nonce, per sync token
	KindInner = "inner" // approval inner JSON nonce, per user
	KindLink  = "link"  // link API Link-Nonce, per host
)

// ErrReplay is returned (wrapped in *Error) for a nonce seen before.
var ErrReplay = errors.New("nonce used before")

// Error says which nonce was replayed.
type Error struct{ Key string }

func (e *Error) Error() string { return "replayed nonce " + e.Key }

// Unwrap makes errors.Is(err, ErrReplay) true.
func (e *Error) Unwrap() error { return ErrReplay }

// Seen reports whether key is in the cache and not yet expired at now.
func Seen(tx store.Tx, key string, now time.Time) (bool, error) {
	raw, err := tx.Get(store.BucketNonces, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("replay cache: %w", err)
	}
	return !expired(raw, now), nil
}

// MaxClockSkew is how far apart the clocks of the gateways sharing one
// store may be: they must agree within it (run NTP). A nonce's record
// outlives its window by this much, see Record.
const MaxClockSkew = 30 * time.Second

// skewMargin is MaxClockSkew; tests of the expiry lower it.
var skewMargin = MaxClockSkew

// Record remembers key until expires. The record holds expires, which every
// gateway compares with its own clock, as it compares the request's
// timestamp (Seen). With a store that gives records a lifetime (etcd), the
// record goes by itself after the remaining window from now plus
// MaxClockSkew: the lifetime runs on the store's clock, and a gateway whose
// clock is behind the recording one accepts the request's timestamp for up
// to that much longer, so the record must still be there to refuse it.
// Purge removes it otherwise (at expires by the purging gateway's clock).
func Record(tx store.Tx, key string, now, expires time.Time) error {
	if err := store.PutTTL(tx, store.BucketNonces, key, expiryValue(expires), recordLifetime(now, expires)); err != nil {
		return fmt.Errorf("replay cache: %w", err)
	}
	return nil
}

// Use checks every key and, if none was seen, records them all until
// expires. The first key seen before is returned as an *Error and nothing
// is recorded.
func Use(tx store.Tx, now, expires time.Time, keys ...string) error {
	for _, k := range keys {
		dup, err := Seen(tx, k, now)
		if err != nil {
			return err
		}
		if dup {
			return &Error{Key: k}
		}
	}
	for _, k := range keys {
		if err := Record(tx, k, now, expires); err != nil {
			return err
		}
	}
	return nil
}

// Claim records key until expires unless the cache holds it (unexpired),
// and reports whether it was fresh. A nonce seen before is not an error:
// Claim returns false and writes nothing, so a caller in a group commit
// (store.Batch) refuses the replay without failing its function, which
// would roll back the transaction of every other writer in the group.
func Claim(tx store.Tx, now, expires time.Time, key string) (fresh bool, err error) {
	dup, err := Seen(tx, key, now)
	if err != nil || dup {
		return false, err
	}
	return true, Record(tx, key, now, expires)
}

// ClaimOne claims key in a transaction of its own (a group commit): the
// way to record a nonce before the work it guards, so that a replay is
// refused before that work is done.
func ClaimOne(ctx context.Context, st store.Store, now, expires time.Time, key string) (fresh bool, err error) {
	err = st.Batch(ctx, func(tx store.Tx) error {
		fresh, err = Claim(tx, now, expires, key)
		return err
	})
	return fresh, err
}

// Purge deletes every nonce that expired by now and returns how many
// (in transactions of bounded size: store.DeleteWhere). With etcd the
// nonces' leases remove most of them first.
func Purge(ctx context.Context, st store.Store, now time.Time) (int, error) {
	n, err := store.DeleteWhere(ctx, st, store.BucketNonces, "", func(_ string, v []byte) bool { return expired(v, now) })
	if err != nil {
		return n, fmt.Errorf("purge replay cache: %w", err)
	}
	return n, nil
}

// recordLifetime is how long a record of a nonce recorded at now with the
// window ending at expires lives in a store with lifetimes: never ended
// while a gateway whose clock is within MaxClockSkew could still accept the
// request.
func recordLifetime(now, expires time.Time) time.Duration {
	return max(expires.Sub(now), 0) + skewMargin
}

// expiryValue encodes an expiry time as the record's value (big-endian
// Unix nanoseconds).
func expiryValue(t time.Time) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(t.UnixNano()))
	return b
}

// expired reports whether a stored value has passed (or is not such a
// value: a damaged record never blocks a request forever).
func expired(raw []byte, now time.Time) bool {
	return len(raw) != 8 || int64(binary.BigEndian.Uint64(raw)) <= now.UnixNano()
}
