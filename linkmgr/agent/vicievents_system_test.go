package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/testenv"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// TestEventsAgainstCharon: the event stream of a real charon, through
// StreamLog (one connection's lines) and Diag: a connection to 10.197.0.2,
// which the namespace's loopback /24 delivers back to the same charon, is
// refused by it as responder (no configuration for that pair), and Diag
// tells NO_PROPOSAL_CHOSEN from the live stream; the streams survive charon
// restarting. (This test hung for good with govici's event subscription:
// see viciwire.go.)
func TestEventsAgainstCharon(t *testing.T) {
	netlab.Require(t)
	testenv.NeedFile(t, charonBin, "strongswan-charon")
	testenv.NeedFile(t, viciPlugin, "strongswan-swanctl")
	testenv.NeedBinary(t, "unshare", "util-linux")
	ns := netlab.NewNS(t, "viev")
	ns.MustIP("addr", "add", "10.197.0.1/24", "dev", "lo")
	dir := t.TempDir()
	sock := filepath.Join(dir, "charon.vici")
	stop := startTestCharon(t, ns, dir, sock)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var mu sync.Mutex
	var lines []string
	d := NewDiag()
	st := testState(true, map[string]string{"B": "10.197.0.2"}, pskOld)
	c := connFor(st, &st.Peers[0], "10.197.0.1")
	conf := ConnConf{Remote: "10.197.0.2", IKE: st.IKE, CheckPort: 9790}
	d.SetConns(map[string]ConnConf{c.Name(): conf}, map[string]Reach{"10.197.0.2": ReachFailed})
	sctx, stopStream := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = StreamLog(sctx, sock, c.Name(), conf.Remote, func(l LogLine) {
			mu.Lock()
			lines = append(lines, l.Msg)
			mu.Unlock()
		})
	}()
	go func() {
		defer wg.Done()
		_ = NewVICIEvents(sock, nil).Watch(sctx, d.Add)
	}()
	defer func() { stopStream(); wg.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("lines:\n%s", strings.Join(lines, "\n"))
			mu.Unlock()
			r, ok := d.Reason(c.Name(), false)
			t.Logf("reason %+v %v", r, ok)
		}
	})
	time.Sleep(300 * time.Millisecond) // registered

	v := NewVICI(sock)
	defer v.Close()
	initiate := func() {
		t.Helper()
		for _, step := range []func(context.Context, Conn) error{v.LoadShared, v.LoadConn} {
			if err := step(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if err := v.Initiate(ctx, c.Name()); err != nil {
			t.Fatal(err)
		}
	}
	initiate()
	// list-conns gives the loaded connection's traffic selectors.
	if l, err := v.List(ctx); err != nil || fmt.Sprint(l.Loaded[c.Name()]) != "{[10.1.0.0/24] [10.2.0.0/24]}" {
		t.Fatalf("loaded %+v %v", l.Loaded, err)
	}
	has := func(what string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, l := range lines {
				if strings.Contains(l, what) {
					return true
				}
			}
			return false
		}
	}
	testkit.WaitFor(t, 10*time.Second, 100*time.Millisecond, "the initiation in the connection's log stream", has("initiating IKE_SA "+c.Name()))
	testkit.WaitFor(t, 10*time.Second, 100*time.Millisecond, "Diag telling the refusal", func() bool {
		r, ok := d.Reason(c.Name(), false)
		return ok && r.Code == api.ReasonNoProposal && r.Cause == "received NO_PROPOSAL_CHOSEN notify error" &&
			len(r.Local) == 1 && r.Local[0] == "IKE:aes128-sha256-x25519"
	})

	// charon restarts: both streams reconnect and see the new initiation.
	stop()
	startTestCharon(t, ns, dir, sock)
	mu.Lock()
	lines = nil
	mu.Unlock()
	time.Sleep(1500 * time.Millisecond) // the streams' retry
	_ = v.Close()                       // its session died with charon
	initiate()
	testkit.WaitFor(t, 10*time.Second, 100*time.Millisecond, "the initiation after charon restarted", has("initiating IKE_SA "+c.Name()))
}
