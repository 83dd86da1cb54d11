package dynfw

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/internal/golden"
	"github.com/portcullis-gw/portcullis/internal/netlab"
)

// TestNFTGateFallbackMessagesGolden pins the messages of the fallback for
// kernels that do not update an existing element's expiry (ForceRecreate;
// the format of TestNFTGateMessagesGolden, with the fake kernel's answers as
// "# → " lines): new elements go in one batch of exclusive adds; when one
// is present the kernel refuses that batch (EEXIST), each element is asked
// for, and one batch deletes the present one and adds both.
func TestNFTGateFallbackMessagesGolden(t *testing.T) {
	var out strings.Builder
	present := netip.MustParseAddr("192.0.2.10").AsSlice()
	answer := func(req []netlink.Message) ([]netlink.Message, error) {
		if len(req) == 0 {
			return nil, nil
		}
		for _, m := range req {
			switch {
			case m.Header.Type&0xff == unix.NFT_MSG_NEWSETELEM && m.Header.Flags&netlink.Excl != 0 && bytes.Contains(m.Data, present):
				fmt.Fprintln(&out, "# → EEXIST: 192.0.2.10 . udp . 1194 is present; the batch is undone")
				return nltest.Error(int(unix.EEXIST), []netlink.Message{m})
			case m.Header.Type&0xff == unix.NFT_MSG_GETSETELEM && bytes.Contains(m.Data, present):
				fmt.Fprintln(&out, "# → the element (present)")
				return []netlink.Message{m}, nil
			case m.Header.Type&0xff == unix.NFT_MSG_GETSETELEM:
				fmt.Fprintln(&out, "# → ENOENT (absent)")
				return nltest.Error(int(unix.ENOENT), []netlink.Message{m})
			}
		}
		return req, nil
	}
	g := answeringGate(t, &out, answer)
	g.forceRecreate = true
	g.guarded.ID, g.allow4.ID, g.allow6.ID = 1, 2, 3
	if err := g.c.Do(context.Background(), g.create); err != nil { // the dumper learns the sets' key types
		t.Fatal(err)
	}
	out.Reset()
	section := func(s string) { fmt.Fprintf(&out, "\n## %s\n", s) }
	el := func(a, proto string, port uint16) Element {
		return Element{Addr: netip.MustParseAddr(a), Proto: proto, Port: port, Timeout: 180 * time.Second}
	}
	section("fallback, new elements only: one batch of exclusive adds, committed")
	if err := g.Allow([]Element{el("192.0.2.20", "udp", 1194), el("2001:db8::20", "tcp", 443)}); err != nil {
		t.Fatal(err)
	}
	if n := g.recreated.Load(); n != 0 {
		t.Fatalf("%d recreated, want 0", n)
	}
	section("fallback, 192.0.2.10 present, 2001:db8::10 new: exclusive adds refused; each asked for; delete the present one and add both in one batch")
	if err := g.Allow([]Element{el("192.0.2.10", "udp", 1194), el("2001:db8::10", "tcp", 443)}); err != nil {
		t.Fatal(err)
	}
	if n := g.recreated.Load(); n != 1 {
		t.Fatalf("%d recreated, want 1", n)
	}
	golden.Check(t, "testdata/nftgate_fallback.golden", strings.TrimPrefix(out.String(), "\n"))
}

// TestNFTGateProbeFindsUpdates (kernel): the first Ensure probes the kernel
// once, finds that it updates an existing element's expiry (6.18), logs
// that once at info level and keeps the plain add; the probe set is gone.
func TestNFTGateProbeFindsUpdates(t *testing.T) {
	netlab.Require(t)
	gw := netlab.NewNS(t, "gw")
	var logs bytes.Buffer
	f, err := os.Open(gw.Path())
	if err != nil {
		t.Fatal(err)
	}
	g, err := OpenNFT(slog.New(slog.NewTextHandler(&logs, nil)), int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	for range 2 {
		if err := g.Ensure(); err != nil {
			t.Fatal(err)
		}
	}
	if !g.probed.Load() || g.recreate.Load() {
		t.Fatalf("probed %v, fallback %v; want the probe to find updates work on this kernel", g.probed.Load(), g.recreate.Load())
	}
	if n := strings.Count(logs.String(), "updates an existing element's expiry in place"); n != 1 || strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("probe logged %d times (want 1, at info):\n%s", n, logs.String())
	}
	if err := g.c.Do(context.Background(), func(c *nftables.Conn) error {
		if _, err := c.GetSetByName(g.table, SetProbe); err == nil {
			return fmt.Errorf("set %s still in the table", SetProbe)
		}
		complete, _, err := g.inspect(c)
		if err == nil && !complete {
			err = fmt.Errorf("table incomplete after the probe")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestNFTGateFallbackSameTTLRefreshesExpiry (kernel): with the fallback
// forced, a re-approval with the same TTL deletes and re-adds the element,
// whose expiry is back at the TTL (read over netlink); the port stays open;
// the other elements of both sets keep their expiries.
func TestNFTGateFallbackSameTTLRefreshesExpiry(t *testing.T) {
	l := newGateLab(t, ForceRecreate())
	g := l.gate
	if err := g.Ensure(); err != nil {
		t.Fatal(err)
	}
	if !g.recreate.Load() {
		t.Fatal("ForceRecreate: the fallback is not on")
	}
	if err := g.SetGuarded([]ProtoPort{{"tcp", 7001}}); err != nil {
		t.Fatal(err)
	}
	const ttl = 30 * time.Second
	e := Element{Addr: netip.MustParseAddr("10.199.0.2"), Proto: "tcp", Port: 7001, Timeout: ttl}
	others := []Element{
		{Addr: netip.MustParseAddr("10.199.0.3"), Proto: "tcp", Port: 7001, Timeout: 10 * time.Minute},
		{Addr: netip.MustParseAddr("10.199.0.2"), Proto: "udp", Port: 7002, Timeout: 20 * time.Second},
		{Addr: netip.MustParseAddr("fd00:199::2"), Proto: "tcp", Port: 7001, Timeout: ttl},
	}
	if err := g.Allow(append([]Element{e}, others...)); err != nil {
		t.Fatal(err)
	}
	if n := g.recreated.Load(); n != 0 {
		t.Fatalf("new elements: %d recreated", n)
	}
	time.Sleep(3 * time.Second)
	if left := expiryOf(t, g, e); left > ttl-2*time.Second {
		t.Fatalf("after 3 s the element has %v left: the clock did not run", left)
	}
	before := map[string]time.Duration{}
	for _, o := range others {
		before[o.key()] = expiryOf(t, g, o)
	}
	if err := g.Allow([]Element{e}); err != nil {
		t.Fatalf("re-adding a live element: %v", err)
	}
	if n := g.recreated.Load(); n != 1 {
		t.Fatalf("%d elements deleted and re-added, want 1", n)
	}
	if left := expiryOf(t, g, e); left < ttl-time.Second {
		t.Fatalf("re-approval with the same TTL %v left %v on the element, want about %v", ttl, left, ttl)
	}
	for _, o := range others {
		if d := before[o.key()] - expiryOf(t, g, o); d < 0 || d > time.Second {
			t.Errorf("%s: expiry moved by %v though it was not re-approved", o.key(), d)
		}
	}
	if els, err := g.Elements(); err != nil || len(els) != 4 {
		t.Fatalf("the sets hold %+v (%v), want the 4 elements", els, err)
	}
	if !l.tcpOpen(t, "10.199.0.2", "10.199.0.1:7001") {
		t.Fatal("the re-approved address cannot reach the guarded port")
	}
}

// TestReconcileFallbackSetsLiveElementsToRemainingTime: the reconcile of
// TestReconcileSetsLiveElementsToRemainingTime with the fallback forced:
// both elements are deleted and re-added with their approvals' remaining
// time.
func TestReconcileFallbackSetsLiveElementsToRemainingTime(t *testing.T) {
	g := reconcileRemainingTime(t, ForceRecreate())
	if n := g.recreated.Load(); n != 2 {
		t.Fatalf("%d elements deleted and re-added, want the 2 put again", n)
	}
}
