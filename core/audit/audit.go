package audit

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// Entry is one record of the trail.
type Entry struct {
	// Seq and Time are set by Record: Seq counts up from 1 and orders the
	// trail; Time is when the entry was recorded (UTC).
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Actor is who acted: an admin's username, or ActorSystem,
	// ActorNotification or ActorControl.
	Actor string `json:"actor"`
	// Remote is where the actor was: the client's address as the core
	// knows it (empty for the system).
	Remote string `json:"remote,omitempty"`
	// Action names what was done: the route's name for admin actions
	// ("org.create", "server.start"), "worker.start", "notify.change"...
	Action string `json:"action"`
	// Target names what it was done to, as name=id pairs.
	Target string `json:"target,omitempty"`
	// Outcome is OutcomeOK or "error: <short reason>" (Failed).
	Outcome string `json:"outcome"`
	// Detail says more in a few words; never a secret.
	Detail string `json:"detail,omitempty"`
}

// Actors that are not admins.
const (
	// ActorSystem is the core itself (workers started at start-up,
	// restarted after a crash, stopped at shutdown).
	ActorSystem = "system"
	// ActorNotification is the self-shutdown notification poller.
	ActorNotification = "notification"
	// ActorControl is root on the host: the control socket's commands
	// (`portcullis server …`) and the offline CLI (`portcullis admin …`).
	ActorControl = "control"
)

// OutcomeOK is the outcome of what succeeded.
const OutcomeOK = "ok"

// Failed is the outcome of what failed for the reason given (a short code
// or message, never a secret).
func Failed(reason string) string { return "error: " + reason }

// Bounds of a page and of each field (in bytes; a longer value is cut at
// a character boundary).
const (
	DefaultLimit = 100
	MaxLimit     = 500

	MaxActor   = 64
	MaxRemote  = 64
	MaxAction  = 64
	MaxTarget  = 256
	MaxOutcome = 256
	MaxDetail  = 512
)

// pruneBatch bounds the entries one Prune transaction deletes.
const pruneBatch = 1000

// Log is the audit trail on a store.
type Log struct {
	st  store.Store
	log *slog.Logger
	now func() time.Time
}

// New returns the trail kept in st's audit bucket; every entry recorded is
// also logged to log (nil: not logged).
func New(st store.Store, log *slog.Logger) *Log {
	return &Log{st: st, log: logging.OrDiscard(log), now: time.Now}
}

// Record appends e (its Seq and Time set here, every field bounded) in one
// transaction and logs it. An entry without an actor, an action or an
// outcome is refused. When the store write fails the entry is still
// logged, at error level, and the error returned.
func (l *Log) Record(ctx context.Context, e Entry) error {
	e.bound()
	if e.Actor == "" || e.Action == "" || e.Outcome == "" {
		return fmt.Errorf("audit entry %q by %q: actor, action and outcome are required", e.Action, e.Actor)
	}
	e.Time = l.now().UTC()
	err := l.st.Batch(ctx, func(tx store.Tx) error {
		seq, err := tx.NextSequence(store.BucketAudit)
		if err != nil {
			return err
		}
		e.Seq = seq
		raw, err := json.Marshal(&e)
		if err != nil {
			return err
		}
		return tx.Put(store.BucketAudit, key(seq), raw)
	})
	attrs := []any{"actor", e.Actor, "remote", e.Remote, "action", e.Action, "target", e.Target,
		"outcome", e.Outcome, "detail", e.Detail}
	if err != nil {
		l.log.Error("audit entry not stored", append(attrs, "err", err)...)
		return fmt.Errorf("record audit entry %s: %w", e.Action, err)
	}
	l.log.Info("audit", append([]any{"seq", e.Seq}, attrs...)...)
	return nil
}

// List returns up to limit entries older than the entry before (every
// entry when before is 0), newest first, and the cursor of the next page:
// the before of the call that continues the listing, 0 when there is no
// more. limit is DefaultLimit when 0 or less, and at most MaxLimit.
func (l *Log) List(ctx context.Context, before uint64, limit int) ([]Entry, uint64, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	from := ""
	if before > 0 {
		from = key(before)
	}
	out := make([]Entry, 0, min(limit+1, 64))
	err := l.st.View(ctx, func(tx store.Tx) error {
		return tx.ScanReverse(store.BucketAudit, from, func(k string, v []byte) error {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode audit entry %d: %w", seqOf(k), err)
			}
			out = append(out, e)
			if len(out) > limit { // one more than asked: there is a next page
				return store.ErrStop
			}
			return nil
		})
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list audit entries: %w", err)
	}
	if len(out) <= limit {
		return out, 0, nil
	}
	out = out[:limit]
	return out, out[limit-1].Seq, nil
}

// Prune deletes the entries recorded before olderThan, oldest first, at
// most pruneBatch per round, and returns how many it deleted. It stops at
// the first entry recorded at or after olderThan (entries are stamped in
// the order of their sequence), or when ctx ends.
func (l *Log) Prune(ctx context.Context, olderThan time.Time) (int, error) {
	total := 0
	for {
		listed, n, err := l.pruneBatch(ctx, olderThan)
		total += n
		if err != nil {
			return total, fmt.Errorf("prune audit entries: %w", err)
		}
		if listed < pruneBatch {
			break
		}
	}
	if total > 0 {
		l.log.Info("audit entries pruned", "count", total, "older_than", olderThan.UTC())
	}
	return total, nil
}

// pruneChunk is how many entries one prune transaction deletes (a compare
// and a delete each: below etcd's default bound of 128 operations).
const pruneChunk = 100

// entryOld says whether the entry v was recorded before olderThan.
func entryOld(k string, v []byte, olderThan time.Time) (bool, error) {
	var e struct {
		Time time.Time `json:"time"`
	}
	if err := json.Unmarshal(v, &e); err != nil {
		return false, fmt.Errorf("decode audit entry %d: %w", seqOf(k), err)
	}
	return e.Time.Before(olderThan), nil
}

// pruneBatch lists at most pruneBatch old entries in a read-only
// transaction, then deletes them by key in transactions of at most
// pruneChunk, each entry read again: a transaction that scanned the trail
// would conflict with every entry recorded meanwhile (every admin call,
// through any gateway of a cluster), and one of pruneBatch deletes would
// not fit one etcd transaction. It returns how many entries it listed and
// how many it deleted (fewer when another gateway pruned some first).
func (l *Log) pruneBatch(ctx context.Context, olderThan time.Time) (listed, deleted int, err error) {
	var old []string
	err = l.st.View(ctx, func(tx store.Tx) error {
		old = old[:0]
		return tx.Scan(store.BucketAudit, "", func(k string, v []byte) error {
			ok, err := entryOld(k, v, olderThan)
			if err != nil {
				return err
			}
			if !ok {
				return store.ErrStop
			}
			old = append(old, k)
			if len(old) == pruneBatch {
				return store.ErrStop
			}
			return nil
		})
	})
	if err != nil {
		return 0, 0, err
	}
	for i := 0; i < len(old); i += pruneChunk {
		chunk := old[i:min(i+pruneChunk, len(old))]
		n := 0
		err := l.st.Update(ctx, func(tx store.Tx) error {
			n = 0
			for _, k := range chunk {
				v, err := tx.Get(store.BucketAudit, k)
				if errors.Is(err, store.ErrNotFound) {
					continue
				} else if err != nil {
					return err
				}
				if ok, err := entryOld(k, v, olderThan); err != nil {
					return err
				} else if !ok {
					continue
				}
				if err := tx.Delete(store.BucketAudit, k); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return len(old), deleted, err
		}
		deleted += n
	}
	return len(old), deleted, nil
}

// key is the store key of an entry: its sequence number, 8 bytes
// big-endian, so that key order is recording order.
func key(seq uint64) string { return string(binary.BigEndian.AppendUint64(nil, seq)) }

func seqOf(k string) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64([]byte(k))
}

// bound cuts every field to its bound.
func (e *Entry) bound() {
	e.Actor = cut(e.Actor, MaxActor)
	e.Remote = cut(e.Remote, MaxRemote)
	e.Action = cut(e.Action, MaxAction)
	e.Target = cut(e.Target, MaxTarget)
	e.Outcome = cut(e.Outcome, MaxOutcome)
	e.Detail = cut(e.Detail, MaxDetail)
}

// cut returns s cut to at most n bytes, at a character boundary, with
// invalid UTF-8 replaced.
func cut(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
