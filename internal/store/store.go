// Package store owns the core's persistent state: a transactional key-value
// Store interface, the embedded bbolt backend (the default), the etcd
// backend for a cluster of gateways (etcd.go), the schema version and its
// migrations, and typed JSON helpers. Every write happens inside one
// transaction, so a crash leaves each record either whole or absent.
//
// # Bucket ownership
//
// Each bucket has exactly one owning package. Only the owner reads, writes
// or deletes its keys; every other package goes through the owner's API.
// This package itself only creates the buckets, keeps the schema version in
// meta and runs the migrations. TestBucketOwnership checks every non-test
// file of the module against this table:
//
//	bucket        owner
//	meta          internal/store
//	orgs          core
//	users         core
//	servers       core
//	secrets       core
//	revoked       core
//	names         core
//	admins        core/admin
//	sessions      core/admin
//	approvals     dynfw
//	nonces        internal/replay
//	links         core/links
//	link_names    core/links
//	link_secrets  core/links
//	profile_links core
//	notify        notify
//	audit         core/audit
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Errors callers branch on.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrBucket   = errors.New("unknown bucket")
)

// notFoundError is ErrNotFound for one record, "bucket/key: not found" as
// fmt.Errorf("%s/%s: %w", bucket, key, ErrNotFound) wrote it, in one
// allocation where fmt took four: a missing record is the common answer
// of the replay checks' lookups, four of them in every approval.
type notFoundError struct{ bucket, key string }

func (e *notFoundError) Error() string { return e.bucket + "/" + e.key + ": " + ErrNotFound.Error() }

func (e *notFoundError) Unwrap() error { return ErrNotFound }

// notFound returns the ErrNotFound of the record key in bucket.
func notFound(bucket, key string) error { return &notFoundError{bucket: bucket, key: key} }

// Buckets of the schema. A bucket holds one kind of record keyed by ID; its
// owner is in the package comment's table.
const (
	BucketMeta        = "meta"
	BucketOrgs        = "orgs"
	BucketUsers       = "users"        // key: org_id/user_id
	BucketServers     = "servers"      // key: server_id
	BucketSecrets     = "secrets"      // key: kind/id — the core's private material (org CAs, servers, sync tokens)
	BucketAdmins      = "admins"       // key: username
	BucketSessions    = "sessions"     // key: SHA-256 of the session ID (hex)
	BucketRevoked     = "revoked"      // key: org_id/serial
	BucketNames       = "names"        // unique-name index: kind/…/name -> id
	BucketNonces      = "nonces"       // approval replay caches: kind/scope/nonce -> expiry
	BucketApprovals   = "approvals"    // firewall token -> approval (addresses, expiry, used)
	BucketLinks       = "links"        // link_id -> link with locations and hosts
	BucketLinkNames   = "link_names"   // unique link names: name -> link_id
	BucketLinkSecrets = "link_secrets" // link/<link_id> -> PSK secret, host/<host_id> -> host secret
	// BucketProfileLinks holds the unused temporary profile links, keyed by
	// the SHA-256 (hex) of the code; the code itself is never stored.
	BucketProfileLinks = "profile_links"
	// BucketNotify holds the notification poller's persisted state (one
	// record: the last accepted signed notice, the last poll, the override).
	BucketNotify = "notify"
	// BucketAudit is the append-only audit trail: key the 8-byte
	// big-endian sequence number (NextSequence), value one entry.
	BucketAudit = "audit"
)

// Buckets lists every bucket the schema creates.
var Buckets = []string{BucketMeta, BucketOrgs, BucketUsers, BucketServers, BucketSecrets,
	BucketAdmins, BucketSessions, BucketRevoked, BucketNames, BucketNonces, BucketApprovals, BucketLinks,
	BucketLinkNames, BucketLinkSecrets, BucketProfileLinks, BucketNotify, BucketAudit}

// Store is a transactional key-value store.
type Store interface {
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction, committed only if fn
	// returns nil. fn may run more than once (etcd: again on a fresh
	// snapshot after a concurrent writer won), so it must only depend on
	// what it reads in the transaction, and any effect it has outside the
	// transaction must be safe to repeat; act on the result after Update
	// returns.
	Update(ctx context.Context, fn func(Tx) error) error
	// Batch is Update for many concurrent writers: their transactions may
	// be committed together (one fsync, or one etcd Txn, for several). fn
	// may run more than once and must only depend on what it reads in the
	// transaction. fn may also run concurrently with other Batch calls'
	// functions (etcd runs a round's functions in parallel; bbolt one
	// after another): anything it touches outside its transaction must be
	// its own or safe for concurrent use.
	Batch(ctx context.Context, fn func(Tx) error) error
	// SchemaVersion returns the schema version the store is at.
	SchemaVersion() int
	Close() error
}

// WriteStats counts what a store committed since it was opened: its write
// transactions (each Update, and each transaction of the group commit) and
// the Batch calls those carried. BatchCalls ÷ Transactions over a busy
// spell of Batch writers is the group commit's size.
type WriteStats struct {
	Transactions uint64
	BatchCalls   uint64
	// Releases counts the releases of the mapped file the store makes of
	// itself (the group commit's, every releaseEveryGroups groups or
	// releaseEveryCalls calls, and Scan's, every scanReleaseEvery
	// records), ReleaseErrors those that failed (the pages then stay
	// mapped; nothing else changes).
	Releases, ReleaseErrors uint64
}

// WriteCounter is a store that counts its writes: the bbolt backend. (The
// etcd backend's group commit reports its own figures: Etcd.BatchStats.)
type WriteCounter interface {
	WriteStats() WriteStats
}

// Tx is one transaction.
type Tx interface {
	// Get returns a copy of the value, or ErrNotFound.
	Get(bucket, key string) ([]byte, error)
	// Put stores the value.
	Put(bucket, key string, value []byte) error
	// Delete removes the key; deleting a missing key is not an error.
	Delete(bucket, key string) error
	// Scan calls fn for every key with the prefix, in key order, with a
	// value that is only valid during the call. fn returning ErrStop ends
	// the scan without error (etcd: no further page is read). Only the
	// prefix's keys are read.
	Scan(bucket, prefix string, fn func(key string, value []byte) error) error
	// ScanReverse calls fn for every key below before (every key when
	// before is empty), last key first, with a value that is only valid
	// during the call. fn returning ErrStop ends the scan without error.
	ScanReverse(bucket, before string, fn func(key string, value []byte) error) error
	// NextSequence returns the bucket's next sequence number (1 first),
	// which is kept with the bucket: it never repeats, even after the keys
	// made from it are deleted.
	NextSequence(bucket string) (uint64, error)
}

// Peek calls fn with the value of bucket/key, valid only during the call
// (fn must keep a copy of what it keeps, and must not write in tx), or
// returns ErrNotFound: Get
// without its copy where the backend can lend its own bytes (bbolt's
// mapped page), for a reader that only looks at a record (hashes it,
// picks one field of it).
func Peek(tx Tx, bucket, key string, fn func(value []byte) error) error {
	if p, ok := tx.(peeker); ok {
		return p.peek(bucket, key, fn)
	}
	v, err := tx.Get(bucket, key)
	if err != nil {
		return err
	}
	return fn(v)
}

// peeker is a Tx that lends its own bytes to Peek.
type peeker interface {
	peek(bucket, key string, fn func(value []byte) error) error
}

// ErrStop ends a Scan early.
var ErrStop = errors.New("stop scan")

// GetJSON reads and decodes one record.
func GetJSON[T any](tx Tx, bucket, key string) (*T, error) {
	raw, err := tx.Get(bucket, key)
	if err != nil {
		return nil, err
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("decode %s/%s: %w", bucket, key, err)
	}
	return v, nil
}

// PutJSON encodes and stores one record.
func PutJSON(tx Tx, bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	return tx.Put(bucket, key, raw)
}

// Insert stores a record that must not exist yet.
func Insert(tx Tx, bucket, key string, v any) error {
	if _, err := tx.Get(bucket, key); err == nil {
		return fmt.Errorf("%s/%s: %w", bucket, key, ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	return PutJSON(tx, bucket, key, v)
}

// ScanJSON decodes every record with the prefix.
func ScanJSON[T any](tx Tx, bucket, prefix string) ([]T, error) {
	var out []T
	err := tx.Scan(bucket, prefix, func(key string, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("decode %s/%s: %w", bucket, key, err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// Count returns how many keys have the prefix.
func Count(tx Tx, bucket, prefix string) (int, error) {
	n := 0
	err := tx.Scan(bucket, prefix, func(string, []byte) error { n++; return nil })
	return n, err
}

// deleteChunk is how many records one DeleteWhere transaction deletes:
// below etcd's default limit of 128 operations per Txn (a compare and a
// delete each count once), with room for the bucket's version key.
const deleteChunk = 100

// DeleteWhere deletes every record of bucket with the prefix for which
// doomed(key, value) is true, and returns how many went. It scans in a
// View, then deletes in transactions of at most deleteChunk records, each
// record read again and judged again in the transaction that deletes it
// (one changed since the scan is kept if it no longer qualifies). So a
// purge of many records never conflicts with writers of other keys, and
// fits etcd's bound on one Txn; a crash between chunks leaves some doomed
// records for the next purge, never a half-deleted one.
func DeleteWhere(ctx context.Context, st Store, bucket, prefix string, doomed func(key string, value []byte) bool) (int, error) {
	var keys []string
	if err := st.View(ctx, func(tx Tx) error {
		keys = keys[:0]
		return tx.Scan(bucket, prefix, func(k string, v []byte) error {
			if doomed(k, v) {
				keys = append(keys, k)
			}
			return nil
		})
	}); err != nil {
		return 0, err
	}
	total := 0
	for i := 0; i < len(keys); i += deleteChunk {
		chunk := keys[i:min(i+deleteChunk, len(keys))]
		n := 0
		err := st.Update(ctx, func(tx Tx) error {
			n = 0
			for _, k := range chunk {
				v, err := tx.Get(bucket, k)
				if errors.Is(err, ErrNotFound) {
					continue
				} else if err != nil {
					return err
				}
				if !doomed(k, v) {
					continue
				}
				if err := tx.Delete(bucket, k); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}
