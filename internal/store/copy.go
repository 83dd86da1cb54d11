package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Copying a whole store from one backend to another: `portcullis store
// migrate` (bbolt into etcd) and `portcullis store backup` (etcd into a
// new bbolt file).

// Snapshot is every record of every bucket, and the buckets' sequences,
// read in one transaction.
type Snapshot struct {
	Records   map[string][]KV // bucket -> records in key order
	Sequences map[string]uint64
}

// KV is one record.
type KV struct {
	Key   string
	Value []byte
}

// sequencer is a store whose buckets' sequences can be read and set
// (both backends).
type sequencer interface {
	sequence(ctx context.Context, bucket string) (uint64, error)
	setSequence(ctx context.Context, bucket string, n uint64) error
}

// ReadSnapshot reads every bucket of st in one View (one snapshot).
func ReadSnapshot(ctx context.Context, st Store) (*Snapshot, error) {
	s := &Snapshot{Records: map[string][]KV{}, Sequences: map[string]uint64{}}
	err := st.View(ctx, func(tx Tx) error {
		for _, b := range Buckets {
			var recs []KV
			if err := tx.Scan(b, "", func(k string, v []byte) error {
				recs = append(recs, KV{k, bytes.Clone(v)})
				return nil
			}); err != nil {
				return fmt.Errorf("read %s: %w", b, err)
			}
			s.Records[b] = recs
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if sq, ok := st.(sequencer); ok {
		for _, b := range Buckets {
			n, err := sq.sequence(ctx, b)
			if err != nil {
				return nil, fmt.Errorf("sequence of %s: %w", b, err)
			}
			if n > 0 {
				s.Sequences[b] = n
			}
		}
	}
	return s, nil
}

// Len returns how many records the snapshot holds.
func (s *Snapshot) Len() int {
	n := 0
	for _, r := range s.Records {
		n += len(r)
	}
	return n
}

// copyChunk is how many records one transaction writes: below etcd's
// default --max-txn-ops (128), with room for the bucket's version key.
const copyChunk = 100

// Write writes the snapshot into dst (records as plain puts: a record that
// had a lease keeps no lifetime, its owner's pruning removes it when it
// expires), and the sequences. progress, when not nil, is called every
// copyChunk records and at the end of each bucket with the records
// written so far.
func (s *Snapshot) Write(ctx context.Context, dst Store, progress func(bucket string, done, total int)) error {
	done := 0
	total := s.Len()
	for _, b := range Buckets {
		recs := s.Records[b]
		for i := 0; i < len(recs); i += copyChunk {
			chunk := recs[i:min(i+copyChunk, len(recs))]
			if err := dst.Update(ctx, func(tx Tx) error {
				for _, r := range chunk {
					if err := tx.Put(b, r.Key, r.Value); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return fmt.Errorf("write %s (records %d-%d): %w", b, i+1, i+len(chunk), err)
			}
			done += len(chunk)
			if progress != nil {
				progress(b, done, total)
			}
		}
	}
	sq, ok := dst.(sequencer)
	if !ok {
		return errors.New("the destination cannot take sequences")
	}
	for b, n := range s.Sequences {
		if err := sq.setSequence(ctx, b, n); err != nil {
			return fmt.Errorf("sequence of %s: %w", b, err)
		}
	}
	return nil
}

// KeysIn is how many records Verify found in one bucket.
type KeysIn struct {
	Bucket string
	Keys   int
}

// Verify reads dst back and compares it with the snapshot key by key
// (and the sequences): every record present with the same value, nothing
// more. It returns the count per bucket, or an error naming the first
// differences.
func (s *Snapshot) Verify(ctx context.Context, dst Store) ([]KeysIn, error) {
	got, err := ReadSnapshot(ctx, dst)
	if err != nil {
		return nil, err
	}
	var counts []KeysIn
	var diffs []string
	note := func(format string, a ...any) {
		if len(diffs) < 20 {
			diffs = append(diffs, fmt.Sprintf(format, a...))
		}
	}
	for _, b := range Buckets {
		want := map[string][]byte{}
		for _, r := range s.Records[b] {
			want[r.Key] = r.Value
		}
		for _, r := range got.Records[b] {
			w, ok := want[r.Key]
			switch {
			case !ok:
				note("%s/%s: in the destination only", b, r.Key)
			case !bytes.Equal(w, r.Value):
				note("%s/%s: values differ", b, r.Key)
			}
			delete(want, r.Key)
		}
		missing := make([]string, 0, len(want))
		for k := range want {
			missing = append(missing, k)
		}
		slices.Sort(missing)
		for _, k := range missing {
			note("%s/%s: missing from the destination", b, k)
		}
		if s.Sequences[b] != got.Sequences[b] {
			note("%s: sequence %d, want %d", b, got.Sequences[b], s.Sequences[b])
		}
		counts = append(counts, KeysIn{b, len(got.Records[b])})
	}
	if len(diffs) > 0 {
		return counts, fmt.Errorf("verify: the destination differs from the source: %v", diffs)
	}
	return counts, nil
}

func (b *Bolt) sequence(_ context.Context, bucket string) (uint64, error) {
	var n uint64
	err := b.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		if bk == nil {
			return fmt.Errorf("%q: %w", bucket, ErrBucket)
		}
		n = bk.Sequence()
		return nil
	})
	return n, err
}

func (b *Bolt) setSequence(_ context.Context, bucket string, n uint64) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		if bk == nil {
			return fmt.Errorf("%q: %w", bucket, ErrBucket)
		}
		return bk.SetSequence(n)
	})
}

func (e *Etcd) sequence(ctx context.Context, bucket string) (uint64, error) {
	var n uint64
	err := e.View(ctx, func(tx Tx) error {
		etx, isEtcd := tx.(*etcdTx)
		if !isEtcd {
			return fmt.Errorf("sequence of %q: not an etcd transaction (%T)", bucket, tx)
		}
		v, ok, err := etx.getOne(e.seqKey(bucket))
		if err != nil || !ok {
			return err
		}
		n, err = strconv.ParseUint(string(v), 10, 64)
		return err
	})
	return n, err
}

func (e *Etcd) setSequence(ctx context.Context, bucket string, n uint64) error {
	rctx, cancel := e.reqCtx(ctx)
	defer cancel()
	_, err := e.cli.Put(rctx, e.seqKey(bucket), strconv.FormatUint(n, 10))
	return e.wrap(ctx, "set sequence", err)
}

// EtcdPrefixKeys counts the keys under cfg's prefix, without opening a
// store there (which would write its schema version).
func EtcdPrefixKeys(ctx context.Context, cfg EtcdConfig) (int64, error) {
	return onEtcdPrefix(ctx, cfg, "count keys", func(ctx context.Context, cli *clientv3.Client, prefix string) (int64, error) {
		resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return 0, err
		}
		return resp.Count, nil
	})
}

// PrefixUse is what lives under an etcd prefix: its keys, and the signs of
// gateways using it (InspectEtcdPrefix).
type PrefixUse struct {
	Keys int64
	// Elections counts the keys under <prefix>_election/: each is the
	// campaign of a running gateway, on a session lease it keeps alive
	// (gone within the election's TTL, 5 s, after the gateway stops).
	Elections int64
	// Leased counts the other keys that carry a lease (etcd deletes a key
	// when its lease ends, so each lease is unexpired): nonces, approvals,
	// temporary profile links, written by gateways serving within the
	// records' lifetimes. Records copied by migrate carry none.
	Leased int64
	// Example is one of the leased keys, for the message.
	Example string
}

// Live reports whether the prefix shows gateways running, or serving
// recently.
func (u PrefixUse) Live() bool { return u.Elections > 0 || u.Leased > 0 }

// InspectEtcdPrefix reads the keys (not the values) under cfg's prefix,
// without opening a store there: how many, and how many are held by a
// lease (see PrefixUse).
func InspectEtcdPrefix(ctx context.Context, cfg EtcdConfig) (PrefixUse, error) {
	var u PrefixUse
	_, err := onEtcdPrefix(ctx, cfg, "inspect prefix", func(ctx context.Context, cli *clientv3.Client, prefix string) (int64, error) {
		start, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
		for {
			resp, err := cli.Get(ctx, start, clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(scanPage))
			if err != nil {
				return 0, err
			}
			for _, kv := range resp.Kvs {
				u.Keys++
				if kv.Lease == 0 {
					continue
				}
				if strings.HasPrefix(string(kv.Key), prefix+"_election/") {
					u.Elections++
				} else {
					u.Leased++
				}
				if u.Example == "" || strings.HasPrefix(string(kv.Key), prefix+"_election/") {
					u.Example = string(kv.Key)
				}
			}
			if !resp.More || len(resp.Kvs) == 0 {
				return u.Keys, nil
			}
			start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	})
	return u, err
}

// DeleteEtcdPrefix deletes every key under cfg's prefix.
func DeleteEtcdPrefix(ctx context.Context, cfg EtcdConfig) (int64, error) {
	return onEtcdPrefix(ctx, cfg, "delete prefix", func(ctx context.Context, cli *clientv3.Client, prefix string) (int64, error) {
		resp, err := cli.Delete(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			return 0, err
		}
		return resp.Deleted, nil
	})
}

// onEtcdPrefix runs one request on cfg's prefix with a client of its own.
func onEtcdPrefix(ctx context.Context, cfg EtcdConfig, op string,
	do func(context.Context, *clientv3.Client, string) (int64, error)) (int64, error) {
	cli, cfg, err := etcdClient(cfg)
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	n, err := do(rctx, cli, cfg.Prefix)
	if err != nil {
		return 0, unavailableErr(op, err)
	}
	return n, nil
}

func unavailableErr(op string, err error) error {
	if unavailable(err) {
		return fmt.Errorf("etcd %s: %v: %w", op, err, ErrUnavailable)
	}
	return fmt.Errorf("etcd %s: %w", op, err)
}
