package dynfw

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// syncWriter is a log sink written by the watch while the test reads.
type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestWatchRestoresTheTable (issue 9, item 15): the table deleted from
// outside (nft delete table, nft flush ruleset) while the gate is watched
// is back within a second with the guarded ports and the live approval's
// element at its remaining time, logged at error level; a NAT rule deleted
// from a whole table calls SyncNAT; the gate's own changes restore nothing.
func TestWatchRestoresTheTable(t *testing.T) {
	netlab.Require(t)
	testenv.NeedBinary(t, "nft", "nftables")
	gw := netlab.NewNS(t, "gw")
	f := newFixture(t)
	var logs syncWriter
	g := openGateIn(t, gw)
	g.log = slog.New(slog.NewTextHandler(&logs, nil))
	f.a = NewApprover(Config{Now: time.Now}, f.dir, f.st, g, slog.New(slog.NewTextHandler(io.Discard, nil)))
	guarded := []ProtoPort{{"udp", 1194}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, _, err := f.a.Reconcile(ctx, guarded); err != nil {
		t.Fatal(err)
	}
	nat := []NATRule{{ServerID: serverID, Network: netip.MustParsePrefix("10.8.0.0/24"), Device: "pc-tun0"}}
	if _, _, err := g.SyncNAT(ctx, nat); err != nil {
		t.Fatal(err)
	}
	f.now = time.Now()
	out := f.approve(f.request(reqOpts{}))
	var restores, natSyncs atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.Watch(ctx, WatchHooks{
			Restore: func(ctx context.Context) error {
				restores.Add(1)
				if _, _, err := f.a.Reconcile(ctx, guarded); err != nil {
					return err
				}
				_, _, err := g.SyncNAT(ctx, nat)
				return err
			},
			SyncNAT: func(ctx context.Context) error {
				natSyncs.Add(1)
				_, _, err := g.SyncNAT(ctx, nat)
				return err
			},
		})
	}()
	time.Sleep(100 * time.Millisecond) // the watch socket joins its group
	nft := func(args ...string) string {
		t.Helper()
		b, err := gw.Command("nft", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("nft %v: %v\n%s", args, err, b)
		}
		return string(b)
	}
	// back waits for the table with everything in it, and says how long.
	back := func(what string, also ...string) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < 3*time.Second {
			b, err := gw.Command("nft", "list", "table", "inet", TableName).CombinedOutput()
			s := string(b)
			if err == nil && strings.Contains(s, "192.0.2.10 . udp . 1194") && strings.Contains(s, "udp . 1194 }") &&
				strings.Contains(s, "masquerade") && containsAll(s, also) {
				d := time.Since(start)
				t.Logf("%s: table back after %v", what, d.Round(time.Millisecond))
				if d > time.Second {
					t.Fatalf("%s: table back only after %v", what, d)
				}
				return d
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("%s: table not back after 3 s; logs:\n%s", what, logs.String())
		return 0
	}
	nft("delete", "table", "inet", TableName)
	back("nft delete table")
	els, err := g.Elements()
	if err != nil || len(els) != 1 || els[0].Addr != out.Approval.Addrs[0] || els[0].Timeout > DefaultTokenTTL {
		t.Fatalf("elements after the restore: %+v %v", els, err)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "deleted from outside") {
		t.Fatalf("the deletion was not logged at error level:\n%s", logs.String())
	}
	nft("flush", "ruleset")
	back("nft flush ruleset")
	// The input chain's drop rule deleted (every guarded port open).
	nft("delete", "rule", "inet", TableName, ChainInput, "handle", lastHandle(nft("-a", "list", "chain", "inet", TableName, ChainInput)))
	back("nft delete rule (input drop)", "@guarded drop")
	if n := strings.Count(nft("list", "chain", "inet", TableName, ChainInput), "@guarded drop"); n != 1 {
		t.Fatalf("%d guarded drop rules after the restore", n)
	}
	// A NAT rule gone from a whole table: SyncNAT puts it back.
	before := restores.Load()
	nft("delete", "rule", "inet", TableName, ChainNAT, "handle", lastHandle(nft("-a", "list", "chain", "inet", TableName, ChainNAT)))
	back("nft delete rule (NAT)")
	if natSyncs.Load() == 0 || restores.Load() != before {
		t.Fatalf("NAT rule deleted: %d NAT syncs, %d restores (want a NAT sync only)", natSyncs.Load(), restores.Load()-before)
	}
	// The gate's own changes (adds, guarded ports, a revocation) restore
	// nothing.
	before = restores.Load()
	f.approve(f.request(reqOpts{}))
	if err := g.SetGuarded(append(guarded, ProtoPort{"tcp", 443})); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.RevokeUser(ctx, userID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := restores.Load() - before; n != 0 {
		t.Fatalf("the gate's own changes caused %d restores", n)
	}
	t.Logf("watch logs:\n%s", logs.String())
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Watch did not return after its context ended")
	}
}

// lastHandle returns the handle of the last rule in `nft -a list chain`
// output.
func lastHandle(listing string) string {
	i := strings.LastIndex(listing, "# handle ")
	return strings.Fields(listing[i+len("# handle "):])[0]
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
