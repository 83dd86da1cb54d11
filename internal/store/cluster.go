package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// What a store shared by several gateways (the etcd backend) adds to the
// Store contract. The bbolt backend implements the same methods trivially,
// so callers never branch on the backend.

// ErrUnavailable means the store can neither commit nor read right now (an
// etcd cluster without quorum, a timeout); the caller answers 503 and tries
// again later. Returned as is, it means the transaction was certainly not
// committed: it was refused before it reached the cluster's log (no leader,
// no member reachable, a read or a lease grant that failed before the
// commit was sent).
//
// A commit whose answer was lost (it timed out or the connection broke
// after it was sent) fails with ErrOutcomeUnknown instead, which wraps
// ErrUnavailable: errors.Is(err, ErrUnavailable) holds for both, so both
// map to 503, but only a bare ErrUnavailable promises that nothing was
// written. After ErrOutcomeUnknown the transaction may still be applied
// later, whole (its proposal survived in the log), or never: a caller that
// must know reads its own writes back once the store answers again.
var ErrUnavailable = errors.New("store unavailable")

// ErrOutcomeUnknown means a commit was sent but its answer was lost (a
// timeout, a leader lost while it was proposed): the transaction may or
// may not have been applied, whole either way. It wraps ErrUnavailable.
var ErrOutcomeUnknown = fmt.Errorf("%w: the commit was sent but its outcome is unknown (it may still be applied)", ErrUnavailable)

// Change is one change to a bucket seen by WatchBucket. Reset says the
// watch (re)started, or lost events (compaction, a partition): the
// receiver must re-read the whole bucket (View) and rebuild what it keeps
// from it, never from what it had before; later changes follow on top.
type Change struct {
	Reset   bool
	Key     string
	Value   []byte // nil when Deleted
	Deleted bool   // deleted, or expired (a lease ran out)
}

// Watcher is implemented by stores whose buckets other processes change
// (etcd): a gateway keeps its nftables sets in line with the approvals made
// through every gateway.
type Watcher interface {
	// WatchBucket sends a Reset first, then every change to bucket, until
	// ctx ends (then it closes the channel). After a lost watch it sends
	// another Reset and resumes.
	WatchBucket(ctx context.Context, bucket string) <-chan Change
}

// TTLTx is a Tx that can give a record a lifetime (etcd: a lease, so the
// record goes by itself; bbolt: a plain Put, its owner's pruning removes
// it). The owners of nonces, approvals, temporary profile links and
// link-host liveness use it through PutTTL.
type TTLTx interface {
	Tx
	PutTTL(bucket, key string, value []byte, ttl time.Duration) error
}

// PutTTL stores value with a lifetime when tx supports one (TTLTx), else
// as a plain Put: the owner's pruning stays the way records expire. A ttl
// that is not positive (the record is already past its time) is a plain
// Put too: pruning removes it, as with bbolt.
func PutTTL(tx Tx, bucket, key string, value []byte, ttl time.Duration) error {
	if t, ok := tx.(TTLTx); ok && ttl > 0 {
		return t.PutTTL(bucket, key, value, ttl)
	}
	return tx.Put(bucket, key, value)
}

// EtcdConfig is how the core reaches its etcd cluster ([store] in the
// configuration, docs/cluster.md). OpenEtcd (etcd.go) takes it.
type EtcdConfig struct {
	// Endpoints are the members' client URLs (https://host:2379).
	Endpoints []string
	// CertFile and KeyFile are the client certificate and key, CAFile
	// the CA the members' certificates are checked against. All three or
	// none. With them, every endpoint must be https:// or unixs:// (the
	// etcd client picks TLS or plaintext for all endpoints from the first
	// one's scheme, so one http:// endpoint would mean no TLS at all).
	// Without them (plaintext), every endpoint must be loopback and not
	// https:// or unixs:// (tests).
	CertFile, KeyFile, CAFile string
	// Prefix starts every key the gateway writes ("/portcullis/" when
	// empty; a "/" is added when it does not end with one): several
	// clusters of gateways can share one etcd.
	Prefix string
	// DialTimeout bounds connecting (5 s when zero); RequestTimeout each
	// read or commit (5 s when zero): past it a read fails with
	// ErrUnavailable, a commit with ErrOutcomeUnknown.
	DialTimeout, RequestTimeout time.Duration
	// MaxTxnOps is the most operations (compares, and puts/deletes) one
	// etcd Txn may carry: the cluster's --max-txn-ops (128 when zero, etcd's
	// default). A larger transaction fails with ErrTooLarge; a group of
	// batched transactions is cut to fit.
	MaxTxnOps int
}

// PutJSONTTL is PutJSON with a lifetime (PutTTL).
func PutJSONTTL(tx Tx, bucket, key string, v any, ttl time.Duration) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	return PutTTL(tx, bucket, key, raw, ttl)
}

// InsertTTL is Insert with a lifetime (PutTTL).
func InsertTTL(tx Tx, bucket, key string, v any, ttl time.Duration) error {
	if _, err := tx.Get(bucket, key); err == nil {
		return fmt.Errorf("%s/%s: %w", bucket, key, ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	return PutJSONTTL(tx, bucket, key, v, ttl)
}
