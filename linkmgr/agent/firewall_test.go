package agent

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/testenv"
)

func TestFirewallInNamespace(t *testing.T) {
	netlab.Require(t)
	testenv.NeedBinary(t, "ping", "iputils-ping")
	host := netlab.NewNS(t, "lhost")
	peer := netlab.NewNS(t, "lpeer")
	_, peerIf := netlab.Veth(t, host, "10.198.0.1/24", peer, "10.198.0.2/24")
	peer.MustIP("addr", "add", "10.198.0.3/24", "dev", peerIf)
	netlab.EchoUDP(t, host, "10.198.0.1:500")
	netlab.EchoUDP(t, host, "10.198.0.1:4500")
	netlab.ServeTCP(t, host, "10.198.0.1:9790")
	netlab.ServeTCP(t, host, "10.198.0.1:22")
	f, err := os.Open(host.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fw, err := OpenFirewall(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	ctx := context.Background()
	// The link is up and both peer addresses resolve before the probes (ICMP
	// is not guarded): a probe lost to a link still coming up on a loaded
	// machine would read as a drop.
	for _, src := range []string{"10.198.0.2", "10.198.0.3"} {
		if out, err := peer.Command("ping", "-c", "1", "-W", "3", "-I", src, "10.198.0.1").CombinedOutput(); err != nil {
			t.Fatalf("peer %s cannot reach the host: %v\n%s", src, err, out)
		}
	}
	reach := func(proto, src, dst string) bool {
		return netlab.Reaches(t, peer, proto, src, dst, 300*time.Millisecond)
	}
	if err := fw.Set(ctx, []netip.Addr{netip.MustParseAddr("10.198.0.2")}, 9790); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		proto, src, dst string
		want            bool
	}{
		{"udp", "10.198.0.2", "10.198.0.1:500", true},
		{"udp", "10.198.0.2", "10.198.0.1:4500", true},
		{"tcp", "10.198.0.2", "10.198.0.1:9790", true},
		{"udp", "10.198.0.3", "10.198.0.1:500", false},
		{"udp", "10.198.0.3", "10.198.0.1:4500", false},
		{"tcp", "10.198.0.3", "10.198.0.1:9790", false},
		{"tcp", "10.198.0.3", "10.198.0.1:22", true}, // not the agent's business
	} {
		if got := reach(c.proto, c.src, c.dst); got != c.want {
			t.Errorf("%s %s -> %s: reachable %v, want %v", c.proto, c.src, c.dst, got, c.want)
		}
	}
	if n, err := fw.Dropped(); err != nil || n < 3 {
		t.Fatalf("drop counter %d (%v), want at least the 3 refused probes", n, err)
	}
	// Hosts change: the update is atomic and complete.
	if err := fw.Set(ctx, []netip.Addr{netip.MustParseAddr("10.198.0.3")}, 9790); err != nil {
		t.Fatal(err)
	}
	if reach("udp", "10.198.0.2", "10.198.0.1:500") || !reach("udp", "10.198.0.3", "10.198.0.1:500") {
		t.Fatal("host list not replaced")
	}
	if ok, err := fw.Exists(); err != nil || !ok {
		t.Fatalf("table missing: %v", err)
	}
	if err := fw.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := fw.Exists(); ok {
		t.Fatal("table still there after Remove")
	}
	if !reach("udp", "10.198.0.2", "10.198.0.1:500") {
		t.Fatal("still guarded after Remove")
	}
}
