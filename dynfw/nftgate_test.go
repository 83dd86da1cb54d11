package dynfw

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/netlab"
)

func TestElementKeyLayout(t *testing.T) {
	// ipv4_addr . inet_proto . inet_service: 4 address bytes, the protocol
	// padded to 4, the port big-endian padded to 4 (see lab-facts).
	k, is4, err := elementKey(Element{Addr: netip.MustParseAddr("10.1.2.3"), Proto: "udp", Port: 1194})
	if err != nil || !is4 {
		t.Fatal(err)
	}
	want := []byte{10, 1, 2, 3, 17, 0, 0, 0, 0x04, 0xaa, 0, 0}
	if string(k) != string(want) {
		t.Fatalf("key % x, want % x", k, want)
	}
	k6, is4, _ := elementKey(Element{Addr: netip.MustParseAddr("2001:db8::1"), Proto: "tcp", Port: 443})
	if is4 || len(k6) != 24 || k6[16] != 6 || k6[20] != 1 || k6[21] != 0xbb {
		t.Fatalf("v6 key % x", k6)
	}
	e, err := decodeKey(k6)
	if err != nil || e.Addr.String() != "2001:db8::1" || e.Proto != "tcp" || e.Port != 443 {
		t.Fatalf("decode %+v %v", e, err)
	}
	// A v4-mapped v6 address is stored as IPv4.
	if _, is4, _ := elementKey(Element{Addr: netip.MustParseAddr("::ffff:10.0.0.1"), Proto: "tcp", Port: 1}); !is4 {
		t.Fatal("v4-mapped address not stored as IPv4")
	}
	if _, _, err := elementKey(Element{Addr: netip.MustParseAddr("10.0.0.1"), Proto: "icmp"}); err == nil {
		t.Fatal("bad protocol accepted")
	}
}

// gateLab is a gateway namespace running the real gate, a client namespace
// with two addresses, and listeners on guarded and unguarded ports.
type gateLab struct {
	gw, cl *netlab.NS
	gate   *NFTGate
}

func newGateLab(t *testing.T, opts ...NFTOption) *gateLab {
	netlab.Require(t)
	gw := netlab.NewNS(t, "gw")
	cl := netlab.NewNS(t, "cl")
	_, clIf := netlab.Veth(t, gw, "10.199.0.1/24", cl, "10.199.0.2/24")
	cl.MustIP("addr", "add", "10.199.0.3/24", "dev", clIf)
	gwIf := "veth-" + "cl"
	gw.MustIP("addr", "add", "fd00:199::1/64", "dev", gwIf, "nodad")
	cl.MustIP("addr", "add", "fd00:199::2/64", "dev", clIf, "nodad")
	lab := &gateLab{gw: gw, cl: cl, gate: openGateIn(t, gw, opts...)}
	for _, addr := range []string{"10.199.0.1:7001", "10.199.0.1:7003", "[fd00:199::1]:7001"} {
		netlab.ServeTCP(t, gw, addr)
	}
	netlab.EchoUDP(t, gw, "10.199.0.1:7002")
	return lab
}

// openGateIn opens a gate on the namespace's nftables, closed when the
// test ends.
func openGateIn(t *testing.T, ns *netlab.NS, opts ...NFTOption) *NFTGate {
	t.Helper()
	f, err := os.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := OpenNFT(slog.New(slog.NewTextHandler(io.Discard, nil)), int(f.Fd()), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func (l *gateLab) tcpOpen(t *testing.T, src, dst string) bool {
	return netlab.Reaches(t, l.cl, "tcp", src, dst, 300*time.Millisecond)
}

func (l *gateLab) udpOpen(t *testing.T, src, dst string) bool {
	return netlab.Reaches(t, l.cl, "udp", src, dst, 300*time.Millisecond)
}

func TestNFTGateInNamespace(t *testing.T) {
	l := newGateLab(t)
	g := l.gate
	if err := g.Ensure(); err != nil {
		t.Fatal(err)
	}
	// Before anything is guarded, everything is reachable.
	if !l.tcpOpen(t, "10.199.0.2", "10.199.0.1:7001") {
		t.Fatal("unguarded port closed")
	}
	if err := g.SetGuarded([]ProtoPort{{"tcp", 7001}, {"udp", 7002}}); err != nil {
		t.Fatal(err)
	}
	if l.tcpOpen(t, "10.199.0.2", "10.199.0.1:7001") || l.udpOpen(t, "10.199.0.2", "10.199.0.1:7002") {
		t.Fatal("guarded ports open before approval")
	}
	if l.tcpOpen(t, "fd00:199::2", "[fd00:199::1]:7001") {
		t.Fatal("guarded port open over IPv6 before approval")
	}
	if !l.tcpOpen(t, "10.199.0.2", "10.199.0.1:7003") {
		t.Fatal("an unguarded port was closed")
	}
	ttl := 1500 * time.Millisecond
	if err := g.Allow([]Element{
		{Addr: netip.MustParseAddr("10.199.0.2"), Proto: "tcp", Port: 7001, Timeout: ttl},
		{Addr: netip.MustParseAddr("10.199.0.2"), Proto: "udp", Port: 7002, Timeout: ttl},
		{Addr: netip.MustParseAddr("fd00:199::2"), Proto: "tcp", Port: 7001, Timeout: ttl},
	}); err != nil {
		t.Fatal(err)
	}
	added := time.Now()
	if !l.tcpOpen(t, "10.199.0.2", "10.199.0.1:7001") || !l.udpOpen(t, "10.199.0.2", "10.199.0.1:7002") {
		t.Fatal("approved address cannot reach the guarded ports")
	}
	if !l.tcpOpen(t, "fd00:199::2", "[fd00:199::1]:7001") {
		t.Fatal("approved IPv6 address cannot reach the guarded port")
	}
	if l.tcpOpen(t, "10.199.0.3", "10.199.0.1:7001") || l.udpOpen(t, "10.199.0.3", "10.199.0.1:7002") {
		t.Fatal("the other address of the client can reach the guarded ports")
	}
	els, err := g.Elements()
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(els, func(i, j int) bool { return els[i].key() < els[j].key() })
	if len(els) != 3 {
		t.Fatalf("elements %+v", els)
	}
	for _, e := range els {
		if e.Timeout <= 0 || e.Timeout > ttl {
			t.Fatalf("element %s remaining %v, want in (0, %v]", e.key(), e.Timeout, ttl)
		}
	}
	// Ensure on a complete table keeps the elements (restart of the core).
	if err := g.Ensure(); err != nil {
		t.Fatal(err)
	}
	if els, _ := g.Elements(); len(els) != 3 {
		t.Fatalf("Ensure dropped elements: %+v", els)
	}
	// The kernel expires the elements by itself.
	time.Sleep(time.Until(added.Add(ttl + 200*time.Millisecond)))
	if l.tcpOpen(t, "10.199.0.2", "10.199.0.1:7001") || l.udpOpen(t, "10.199.0.2", "10.199.0.1:7002") {
		t.Fatal("guarded ports still open after the timeout")
	}
	if els, _ := g.Elements(); len(els) != 0 {
		t.Fatalf("elements left after expiry: %+v", els)
	}
	// Remove works on live elements; Delete takes the table away.
	e := Element{Addr: netip.MustParseAddr("10.199.0.2"), Proto: "tcp", Port: 7001, Timeout: time.Minute}
	if err := g.Allow([]Element{e}); err != nil {
		t.Fatal(err)
	}
	if err := g.Remove([]Element{e}); err != nil {
		t.Fatal(err)
	}
	if l.tcpOpen(t, "10.199.0.2", "10.199.0.1:7001") {
		t.Fatal("removed element still allows")
	}
	if err := g.Delete(); err != nil {
		t.Fatal(err)
	}
	if !l.tcpOpen(t, "10.199.0.2", "10.199.0.1:7001") {
		t.Fatal("port still closed after the table was deleted")
	}
	if err := g.Delete(); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deleting a missing table: %v", err)
	}
}

func TestNFTGateLargeBatch(t *testing.T) {
	l := newGateLab(t)
	g := l.gate
	if err := g.Ensure(); err != nil {
		t.Fatal(err)
	}
	// 5,000 elements in one Allow: more than the ~2,000 that silently
	// overflow a single netlink call, so chunking must work.
	var els []Element
	for i := 0; i < 5000; i++ {
		a := netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})
		els = append(els, Element{Addr: a, Proto: "udp", Port: 1194, Timeout: time.Minute})
	}
	if err := g.Allow(els); err != nil {
		t.Fatal(err)
	}
	got, err := g.Elements()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5000 {
		t.Fatalf("kernel holds %d of 5000 elements", len(got))
	}
}
