package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrReadOnly is returned by a write in a View.
var ErrReadOnly = errors.New("write in a read-only transaction")

// errSnapshotGone: a transaction's snapshot revision was compacted.
var errSnapshotGone = errors.New("the transaction's snapshot was compacted")

// etcdWrite is one buffered write of a transaction.
type etcdWrite struct {
	bucket string // "" for bookkeeping keys (the sequence counter)
	value  []byte
	del    bool
	ttl    time.Duration // > 0: PutTTL
}

// etcdTx is one attempt of a transaction (see the notes in etcd.go).
type etcdTx struct {
	e        *Etcd
	ctx      context.Context
	readOnly bool
	// rev is the snapshot revision, fixed by the first read; a group of
	// batched transactions shares one.
	rev *int64
	// reads: full key -> ModRevision seen (0: absent).
	reads map[string]int64
	// scanned: bucket -> ModRevision of its version key seen (0: absent).
	scanned map[string]int64
	writes  map[string]*etcdWrite
}

func (e *Etcd) newTx(ctx context.Context, rev int64, readOnly bool) *etcdTx {
	r := rev
	return &etcdTx{e: e, ctx: ctx, readOnly: readOnly, rev: &r, reads: map[string]int64{},
		scanned: map[string]int64{}, writes: map[string]*etcdWrite{}}
}

func (t *etcdTx) checkBucket(bucket string) error {
	if !t.e.buckets[bucket] {
		return fmt.Errorf("%q: %w", bucket, ErrBucket)
	}
	return nil
}

// get reads keys from the snapshot (fixing it on the first read).
func (t *etcdTx) get(key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	pinned := *t.rev > 0
	if pinned {
		// A read at a fixed revision may be served by any member
		// (serializable): one that has not applied the revision yet
		// answers "future revision", and then the leader is asked.
		opts = append(opts, clientv3.WithRev(*t.rev))
	}
	ctx, cancel := t.e.reqCtx(t.ctx)
	defer cancel()
	var resp *clientv3.GetResponse
	var err error
	if pinned {
		resp, err = t.e.cli.Get(ctx, key, append(opts, clientv3.WithSerializable())...)
		if err != nil && errors.Is(err, rpctypes.ErrFutureRev) {
			resp, err = t.e.cli.Get(ctx, key, opts...)
		}
	} else {
		resp, err = t.e.cli.Get(ctx, key, opts...)
	}
	if err != nil {
		if pinned && errors.Is(err, rpctypes.ErrCompacted) {
			// The snapshot was compacted away under a long transaction:
			// Update and Batch run the function again on a fresh one.
			return nil, fmt.Errorf("read %s at revision %d: %w", key, *t.rev, errSnapshotGone)
		}
		return nil, t.e.wrap(t.ctx, "read "+key, err)
	}
	t.e.gets.Add(1)
	if *t.rev == 0 {
		*t.rev = resp.Header.Revision
	}
	return resp, nil
}

// getOne reads one key and records its revision for the commit.
func (t *etcdTx) getOne(full string) ([]byte, bool, error) {
	resp, err := t.get(full)
	if err != nil {
		return nil, false, err
	}
	if len(resp.Kvs) == 0 {
		t.reads[full] = 0
		return nil, false, nil
	}
	t.reads[full] = resp.Kvs[0].ModRevision
	return resp.Kvs[0].Value, true, nil
}

func (t *etcdTx) Get(bucket, key string) ([]byte, error) {
	if err := t.checkBucket(bucket); err != nil {
		return nil, err
	}
	full := t.e.recordKey(bucket, key)
	if w, ok := t.writes[full]; ok {
		if w.del {
			return nil, notFound(bucket, key)
		}
		return bytes.Clone(w.value), nil
	}
	v, ok, err := t.getOne(full)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound(bucket, key)
	}
	return v, nil
}

func (t *etcdTx) put(bucket, key string, value []byte, ttl time.Duration) error {
	if err := t.checkBucket(bucket); err != nil {
		return err
	}
	if t.readOnly {
		return ErrReadOnly
	}
	t.writes[t.e.recordKey(bucket, key)] = &etcdWrite{bucket: bucket, value: bytes.Clone(value), ttl: ttl}
	return nil
}

func (t *etcdTx) Put(bucket, key string, value []byte) error { return t.put(bucket, key, value, 0) }

// PutTTL implements TTLTx: the record goes with an etcd lease that ends at
// least ttl from now (shared leases: see leasePool).
func (t *etcdTx) PutTTL(bucket, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%s/%s: ttl %v is not positive", bucket, key, ttl)
	}
	return t.put(bucket, key, value, ttl)
}

func (t *etcdTx) Delete(bucket, key string) error {
	if err := t.checkBucket(bucket); err != nil {
		return err
	}
	if t.readOnly {
		return ErrReadOnly
	}
	t.writes[t.e.recordKey(bucket, key)] = &etcdWrite{bucket: bucket, del: true}
	return nil
}

// scanPage is how many records one etcd read of a scan fetches.
const scanPage = 1000

// scan calls fn for every record of bucket in [from, to) (to "" for the
// end of the bucket), read from the snapshot page by page and merged with
// the transaction's own writes, in key order (descending when reverse),
// and records the bucket's version key for the commit. Pages are fetched
// as fn consumes them: fn returning ErrStop ends the scan without
// fetching another.
func (t *etcdTx) scan(bucket, from, to string, reverse bool, fn func(string, []byte) error) error {
	if err := t.checkBucket(bucket); err != nil {
		return err
	}
	if _, ok := t.scanned[bucket]; !ok {
		resp, err := t.get(t.e.versionKey(bucket))
		if err != nil {
			return err
		}
		t.scanned[bucket] = 0
		if len(resp.Kvs) > 0 {
			t.scanned[bucket] = resp.Kvs[0].ModRevision
		}
	}
	base := t.e.recordKey(bucket, "")
	lo, hi := base+from, base+to
	if to == "" {
		hi = clientv3.GetPrefixRangeEnd(base)
	}
	// The transaction's own writes in the range, in scan order: they
	// replace what the snapshot holds under their keys.
	var own []string
	for k, w := range t.writes {
		if w.bucket == bucket && k >= lo && k < hi {
			own = append(own, k)
		}
	}
	slices.Sort(own)
	if reverse {
		slices.Reverse(own)
	}
	before := func(a, b string) bool { // a comes before b in scan order
		if reverse {
			return a > b
		}
		return a < b
	}
	emit := func(k string, v []byte) error {
		err := fn(strings.TrimPrefix(k, base), v)
		if errors.Is(err, ErrStop) {
			return errStopped
		}
		return err
	}
	emitOwn := func(k string) error {
		if w := t.writes[k]; !w.del {
			return emit(k, w.value)
		}
		return nil
	}
	err := func() error {
		start, end := lo, hi
		for start < end {
			opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(scanPage)}
			if reverse {
				opts = append(opts, clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
			}
			resp, err := t.get(start, opts...)
			if err != nil {
				return err
			}
			for _, kv := range resp.Kvs {
				k := string(kv.Key)
				for len(own) > 0 && before(own[0], k) {
					if err := emitOwn(own[0]); err != nil {
						return err
					}
					own = own[1:]
				}
				if len(own) > 0 && own[0] == k {
					own = own[1:]
					if err := emitOwn(k); err != nil {
						return err
					}
					continue
				}
				if err := emit(k, kv.Value); err != nil {
					return err
				}
			}
			if !resp.More || len(resp.Kvs) == 0 {
				break
			}
			last := string(resp.Kvs[len(resp.Kvs)-1].Key)
			if reverse {
				end = last // the range's end is exclusive
			} else {
				start = last + "\x00"
			}
		}
		for _, k := range own {
			if err := emitOwn(k); err != nil {
				return err
			}
		}
		return nil
	}()
	if errors.Is(err, errStopped) {
		return nil
	}
	return err
}

// errStopped carries fn's ErrStop out of a scan's pages.
var errStopped = errors.New("scan stopped")

func (t *etcdTx) Scan(bucket, prefix string, fn func(string, []byte) error) error {
	to := ""
	if prefix != "" {
		// The end of the prefix's range, relative to the bucket.
		// A prefix of 0xff bytes ends with the bucket ("" here).
		base := t.e.recordKey(bucket, "")
		if end := clientv3.GetPrefixRangeEnd(base + prefix); strings.HasPrefix(end, base) {
			to = strings.TrimPrefix(end, base)
		}
	}
	return t.scan(bucket, prefix, to, false, fn)
}

func (t *etcdTx) ScanReverse(bucket, before string, fn func(string, []byte) error) error {
	return t.scan(bucket, "", before, true, fn)
}

func (t *etcdTx) NextSequence(bucket string) (uint64, error) {
	if err := t.checkBucket(bucket); err != nil {
		return 0, err
	}
	if t.readOnly {
		return 0, ErrReadOnly
	}
	full := t.e.seqKey(bucket)
	var raw []byte
	if w, ok := t.writes[full]; ok {
		raw = w.value
	} else {
		v, ok, err := t.getOne(full)
		if err != nil {
			return 0, err
		}
		if ok {
			raw = v
		}
	}
	var n uint64
	if raw != nil {
		var err error
		if n, err = strconv.ParseUint(string(raw), 10, 64); err != nil {
			return 0, fmt.Errorf("sequence of %s: bad value %q", bucket, raw)
		}
	}
	n++
	t.writes[full] = &etcdWrite{value: []byte(strconv.FormatUint(n, 10))}
	return n, nil
}

// commit writes the transactions as one etcd Txn, guarded by the
// revisions they read. ok is false when a compare failed (a concurrent
// writer won): nothing was written and the callers run again.
func (e *Etcd) commit(ctx context.Context, txs []*etcdTx) (ok bool, err error) {
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	seen := map[string]bool{}
	touched := map[string]bool{}
	type ttlOp struct {
		key   string
		value []byte
		ttl   time.Duration
	}
	var ttls []ttlOp
	for _, t := range txs {
		for k, rev := range t.reads {
			if seen[k] {
				continue
			}
			seen[k] = true
			if rev == 0 {
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
			} else {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", rev))
			}
		}
		for b, rev := range t.scanned {
			k := e.versionKey(b)
			if seen[k] {
				continue
			}
			seen[k] = true
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", rev))
		}
		for k, w := range t.writes {
			if w.bucket != "" {
				touched[w.bucket] = true
			}
			switch {
			case w.del:
				ops = append(ops, clientv3.OpDelete(k))
			case w.ttl > 0:
				ttls = append(ttls, ttlOp{k, w.value, w.ttl})
			default:
				ops = append(ops, clientv3.OpPut(k, string(w.value)))
			}
		}
	}
	if len(ops) == 0 && len(ttls) == 0 {
		return true, nil // read only: the snapshot was consistent
	}
	for b := range touched {
		ops = append(ops, clientv3.OpPut(e.versionKey(b), ""))
	}
	if n := max(len(cmps), len(ops)+len(ttls)); n > e.cfg.MaxTxnOps {
		return false, fmt.Errorf("etcd commit: %d operations (%d compares, %d writes), the limit is %d: %w",
			len(cmps)+len(ops)+len(ttls), len(cmps), len(ops)+len(ttls), e.cfg.MaxTxnOps, ErrTooLarge)
	}
	for retry := 0; ; retry++ {
		all := ops
		var used []int64
		for _, o := range ttls {
			id, err := e.leases.lease(ctx, o.ttl)
			if err != nil {
				return false, err
			}
			used = append(used, id)
			all = append(all, clientv3.OpPut(o.key, string(o.value), clientv3.WithLease(clientv3.LeaseID(id))))
		}
		rctx, cancel := e.reqCtx(ctx)
		resp, err := e.cli.Txn(rctx).If(cmps...).Then(all...).Commit()
		cancel()
		if err != nil && retry == 0 && len(used) > 0 && isLeaseNotFound(err) {
			// A shared lease ran out between choosing and committing:
			// forget it and take a new one.
			e.leases.forget(used)
			continue
		}
		if err != nil {
			return false, e.wrapCommit(ctx, err)
		}
		return resp.Succeeded, nil
	}
}
