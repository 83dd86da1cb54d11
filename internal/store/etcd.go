package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrConflict is returned when a transaction kept losing to concurrent
// writers for every attempt: nothing was written.
var ErrConflict = errors.New("transaction conflicted with concurrent writers")

// ErrTooLarge is returned for a transaction with more operations than
// etcd takes in one Txn (EtcdConfig.MaxTxnOps): nothing was written.
var ErrTooLarge = errors.New("transaction too large for one etcd Txn")

const (
	defaultEtcdPrefix  = "/portcullis/"
	defaultEtcdTimeout = 5 * time.Second
	defaultMaxTxnOps   = 128
	// maxAttempts bounds how often Update/Batch run fn on conflicts (with
	// the back-off, about a second and a half of trying at the most).
	maxAttempts = 32
)

// Etcd is the etcd backend: a cluster of gateways sharing one state
// (docs/etcd-store.md). Its methods are safe for concurrent use.
//
// # Key layout
//
//	<prefix><bucket>/<key>   a record, its value stored as is
//	<prefix>_v/<bucket>      the bucket's version key: rewritten by every
//	                         transaction that writes to the bucket
//	<prefix>_seq/<bucket>    the bucket's NextSequence counter (decimal)
//
// Bucket names never start with "_", so the bookkeeping keys cannot meet
// a record.
//
// # Transactions
//
// A transaction reads at one etcd revision (the first read fixes it, every
// later read asks for that revision: a snapshot) and buffers its writes
// (Get and Scan see them). Committing is one etcd Txn that compares, for
// every key read, its ModRevision with the one seen (0 for an absent key,
// so a key created since fails the compare), and, for every bucket
// scanned, the ModRevision of the bucket's version key. Every write to a
// bucket rewrites that key in the same Txn, so a scan cannot miss an
// insert, update or delete committed in its range since its snapshot: the
// Txn then fails, and the function runs again on a fresh snapshot (bounded
// attempts, jittered back-off). Reading at one revision and validating
// every read at commit is optimistic concurrency control, which is
// serializable. The one change a scan's compare does not see is a lease
// running out (etcd deletes the key without touching the version key): a
// scan may count a record with a TTL that expires before the commit, as
// if the commit came just before the expiry. Owners of TTL records check
// expiry times, not presence, so this changes nothing for them; a record
// read with Get is compared individually, expiry included.
//
// etcd bounds the operations of one Txn (--max-txn-ops, 128 by default):
// a transaction larger than EtcdConfig.MaxTxnOps fails with a clear error
// instead of at the server.
type Etcd struct {
	cli     *clientv3.Client
	cfg     EtcdConfig
	log     *slog.Logger
	version int
	buckets map[string]bool
	leases  *leasePool
	group   *etcdGroup

	// ctx ends when the store closes: it stops the watchers.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	// gets counts the reads of transactions (tests: a scan's round trips).
	gets atomic.Int64

	// watchHook, set by tests before any WatchBucket, runs between a
	// watch's Reset and the start of its etcd watch.
	watchHook func()
}

// OpenEtcd connects to the cluster, checks that it answers (ErrUnavailable
// otherwise) and runs the schema migrations exactly once for the prefix,
// even when several gateways start together.
func OpenEtcd(ctx context.Context, cfg EtcdConfig, log *slog.Logger) (*Etcd, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cli, cfg, err := etcdClient(cfg)
	if err != nil {
		return nil, err
	}
	e := &Etcd{cli: cli, cfg: cfg, log: log, buckets: map[string]bool{}}
	for _, b := range Buckets {
		e.buckets[b] = true
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.leases = newLeasePool(e)
	e.group = newEtcdGroup(e)
	if err := e.migrate(ctx); err != nil {
		_ = e.Close()
		return nil, fmt.Errorf("etcd store %s (prefix %q): %w", strings.Join(cfg.Endpoints, ","), cfg.Prefix, err)
	}
	log.Info("etcd store open", "endpoints", cfg.Endpoints, "prefix", cfg.Prefix, "schema", e.version)
	return e, nil
}

// etcdClient makes a client for cfg (with its defaults filled in).
func etcdClient(cfg EtcdConfig) (*clientv3.Client, EtcdConfig, error) {
	cfg = cfg.withDefaults()
	tlsCfg, err := cfg.tls()
	if err != nil {
		return nil, cfg, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: cfg.RequestTimeout,
		TLS:                  tlsCfg,
		Logger:               zap.NewNop(),
		Context:              context.Background(),
	})
	if err != nil {
		return nil, cfg, fmt.Errorf("etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	return cli, cfg, nil
}

func (c EtcdConfig) withDefaults() EtcdConfig {
	if c.Prefix == "" {
		c.Prefix = defaultEtcdPrefix
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/" // "/a" must not take in "/ab/…"
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = defaultEtcdTimeout
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = defaultEtcdTimeout
	}
	if c.MaxTxnOps <= 0 {
		c.MaxTxnOps = defaultMaxTxnOps
	}
	return c
}

// tls builds the client's TLS configuration: all three files, or none
// and only loopback endpoints.
func (c EtcdConfig) tls() (*tls.Config, error) {
	if len(c.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	set := 0
	for _, f := range []string{c.CertFile, c.KeyFile, c.CAFile} {
		if f != "" {
			set++
		}
	}
	switch set {
	case 3:
		for _, ep := range c.Endpoints {
			if s := endpointScheme(ep); s != "https" && s != "unixs" {
				return nil, fmt.Errorf("etcd endpoint %q: with TLS files set every endpoint must be https:// or unixs:// "+
					"(the client would dial every member without TLS after a %q endpoint)", ep, s+"://")
			}
		}
		info := transport.TLSInfo{CertFile: c.CertFile, KeyFile: c.KeyFile, TrustedCAFile: c.CAFile}
		t, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("etcd TLS (cert %s, key %s, ca %s): %w", c.CertFile, c.KeyFile, c.CAFile, err)
		}
		return t, nil
	case 0:
		for _, ep := range c.Endpoints {
			if s := endpointScheme(ep); s == "https" || s == "unixs" {
				return nil, fmt.Errorf("etcd endpoint %s: a TLS endpoint needs the client certificate, key and CA", ep)
			}
			if !loopbackEndpoint(ep) {
				return nil, fmt.Errorf("etcd endpoint %s: TLS is required (client cert, key and CA) for an endpoint that is not loopback", ep)
			}
		}
		return nil, nil
	default:
		return nil, errors.New("etcd TLS: give the client certificate, its key and the CA together, or none (loopback only)")
	}
}

// endpointScheme returns ep's URL scheme, lower case ("" for host:port).
func endpointScheme(ep string) string {
	scheme, _, ok := strings.Cut(ep, "://")
	if !ok {
		return ""
	}
	return strings.ToLower(scheme)
}

// loopbackEndpoint reports whether ep (http://127.0.0.1:2379, localhost:2379,
// unix://…) names this host.
func loopbackEndpoint(ep string) bool {
	host := ep
	if u, err := url.Parse(ep); err == nil && u.Host != "" {
		if u.Scheme == "unix" || u.Scheme == "unixs" {
			return true
		}
		host = u.Host
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Client returns the etcd client (elections, leases of the cluster
// runtime). It is closed by Close.
func (e *Etcd) Client() *clientv3.Client { return e.cli }

// Prefix returns the prefix every key of this store starts with.
func (e *Etcd) Prefix() string { return e.cfg.Prefix }

// SchemaVersion implements Store.
func (e *Etcd) SchemaVersion() int { return e.version }

// Close implements Store: it finishes pending batched writes, stops the
// watchers and closes the client.
func (e *Etcd) Close() error {
	var err error
	e.once.Do(func() {
		e.group.close()
		e.cancel()
		e.wg.Wait()
		err = e.cli.Close()
	})
	return err
}

func (e *Etcd) recordKey(bucket, key string) string { return e.cfg.Prefix + bucket + "/" + key }
func (e *Etcd) versionKey(bucket string) string     { return e.cfg.Prefix + "_v/" + bucket }
func (e *Etcd) seqKey(bucket string) string         { return e.cfg.Prefix + "_seq/" + bucket }

// reqCtx bounds one etcd call by RequestTimeout.
func (e *Etcd) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.cfg.RequestTimeout)
}

// wrap turns the error of an etcd call into the store's errors: the
// caller's own cancellation stays what it is; a timeout, an unreachable
// member or a cluster without a leader becomes ErrUnavailable with a
// count of the members that answer.
func (e *Etcd) wrap(ctx context.Context, op string, err error) error {
	return e.wrapAs(ctx, op, err, ErrUnavailable)
}

// wrapCommit is wrap for a commit that was sent: unless the cluster
// refused it before proposing it (no leader: certainly not written), an
// unavailable cluster makes its outcome unknown (ErrOutcomeUnknown). A
// commit cancelled by the caller's own ctx keeps ctx's error, and its
// outcome is unknown too (the error says so).
func (e *Etcd) wrapCommit(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("etcd commit: %w (sent: the outcome is unknown)", ctx.Err())
	}
	if err != nil && refusedBeforeProposal(err) {
		return e.wrapAs(ctx, "commit", err, ErrUnavailable)
	}
	return e.wrapAs(ctx, "commit", err, ErrOutcomeUnknown)
}

func (e *Etcd) wrapAs(ctx context.Context, op string, err, kind error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("etcd %s: %w", op, ctx.Err())
	}
	if errors.Is(err, rpctypes.ErrTooManyOps) {
		return fmt.Errorf("etcd %s: %w (the cluster's --max-txn-ops is below EtcdConfig.MaxTxnOps %d): %v", op, ErrTooLarge, e.cfg.MaxTxnOps, err)
	}
	if !unavailable(err) {
		return fmt.Errorf("etcd %s: %w", op, err)
	}
	up, total := e.reachable()
	return fmt.Errorf("etcd %s: no quorum (%d of %d endpoints unreachable?): %v: %w", op, total-up, total, err, kind)
}

// refusedBeforeProposal reports whether a commit's error says the member
// refused it before proposing it to the log: there was no leader. Every
// other failure of a sent commit (a timeout, a leader lost while it was
// proposed, a broken connection) may have left it in the log.
func refusedBeforeProposal(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	return errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrGRPCNoLeader) ||
		strings.Contains(err.Error(), "etcdserver: no leader")
}

// unavailable reports whether err means the cluster cannot serve now.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	for _, known := range []error{rpctypes.ErrNoLeader, rpctypes.ErrTimeout, rpctypes.ErrTimeoutDueToLeaderFail,
		rpctypes.ErrTimeoutDueToConnectionLost, rpctypes.ErrLeaderChanged, rpctypes.ErrGRPCNoLeader,
		rpctypes.ErrGRPCTimeout, rpctypes.ErrGRPCTimeoutDueToLeaderFail, rpctypes.ErrGRPCTimeoutDueToConnectionLost} {
		if errors.Is(err, known) {
			return true
		}
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	s := err.Error()
	return strings.Contains(s, "no leader") || strings.Contains(s, "request timed out") ||
		strings.Contains(s, "context deadline exceeded")
}

// reachable asks every endpoint for its status, in parallel, for at most
// 500 ms: the count for an ErrUnavailable message.
func (e *Etcd) reachable() (up, total int) {
	eps := e.cfg.Endpoints
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.cli.Status(ctx, ep); err == nil {
				mu.Lock()
				up++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return up, len(eps)
}

// View implements Store: fn reads one snapshot.
func (e *Etcd) View(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return fn(e.newTx(ctx, 0, true))
}

// Update implements Store. fn may run more than once when concurrent
// writers conflict with it (see the package's etcd notes). A commit whose
// answer was lost fails with ErrOutcomeUnknown: it may have been applied.
func (e *Etcd) Update(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		tx := e.newTx(ctx, 0, false)
		err := fn(tx)
		if errors.Is(err, errSnapshotGone) {
			if err := e.backoff(ctx, attempt); err != nil {
				return err
			}
			continue
		} else if err != nil {
			return err
		}
		ok, err := e.commit(ctx, []*etcdTx{tx})
		if err != nil || ok {
			return err
		}
		if err := e.backoff(ctx, attempt); err != nil {
			return err
		}
	}
}

// currentRev returns the cluster's current revision (a linearizable
// read): the snapshot of a batched round.
func (e *Etcd) currentRev(ctx context.Context) (int64, error) {
	rctx, cancel := e.reqCtx(ctx)
	defer cancel()
	resp, err := e.cli.Get(rctx, e.versionKey(BucketMeta), clientv3.WithCountOnly())
	if err != nil {
		return 0, e.wrap(ctx, "read revision", err)
	}
	return resp.Header.Revision, nil
}

// backoff sleeps a jittered, growing delay before attempt+1, or fails
// after maxAttempts.
func (e *Etcd) backoff(ctx context.Context, attempt int) error {
	if attempt >= maxAttempts {
		return fmt.Errorf("etcd commit: %d attempts: %w", attempt, ErrConflict)
	}
	d := time.Duration(1<<min(attempt, 6)) * 500 * time.Microsecond
	d = d/2 + rand.N(d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// migrate runs the pending migrations in one transaction guarded by the
// version key: of two gateways starting together, one commits and the
// other's Txn fails its compare, runs again, and finds nothing to do.
func (e *Etcd) migrate(ctx context.Context) error {
	from := -1 // the version migrated from by the attempt that committed
	err := e.Update(ctx, func(tx Tx) error {
		from = -1
		have := 0
		raw, err := tx.Get(BucketMeta, schemaKey)
		switch {
		case err == nil:
			v, err := strconv.Atoi(string(raw))
			if err != nil {
				return fmt.Errorf("bad schema version %q", raw)
			}
			have = v
		case !errors.Is(err, ErrNotFound):
			return err
		}
		if have > len(migrations) {
			return fmt.Errorf("store has schema version %d, newer than this build's %d", have, len(migrations))
		}
		if have == len(migrations) {
			return nil
		}
		for v := have; v < len(migrations); v++ {
			if err := migrations[v](tx); err != nil {
				return fmt.Errorf("migration to version %d: %w", v+1, err)
			}
		}
		from = have
		return tx.Put(BucketMeta, schemaKey, []byte(strconv.Itoa(len(migrations))))
	})
	if err != nil {
		return err
	}
	e.version = len(migrations)
	if from >= 0 {
		e.log.Info("etcd store migrated", "from", from, "to", len(migrations), "prefix", e.cfg.Prefix)
	}
	return nil
}
