package dynfw

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"

	"github.com/portcullis-gw/portcullis/internal/golden"
)

// TestNFTGateMessagesGolden pins the exact netlink messages the gate sends
// to build its table and to open one IPv4 and one IPv6 address (beside the
// kernel tests, which prove what those messages do).
func TestNFTGateMessagesGolden(t *testing.T) {
	var lines []string
	dial := func(req []netlink.Message) ([]netlink.Message, error) {
		for _, m := range req {
			b, err := m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) < 16 {
				continue
			}
			// Skip the netlink header (length, type, flags, sequence, pid:
			// the sequence numbers are not part of the contract).
			lines = append(lines, hex.EncodeToString(b[16:]))
		}
		return req, nil
	}
	g, err := openNFT(slog.New(slog.NewTextHandler(io.Discard, nil)), nftables.WithTestDial(dial))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.c.Do(context.Background(), g.create); err != nil {
		t.Fatal(err)
	}
	lines = append(lines, "-- allow")
	if err := g.Allow([]Element{
		{Addr: netip.MustParseAddr("192.0.2.10"), Proto: "udp", Port: 1194, Timeout: 180 * time.Second},
		{Addr: netip.MustParseAddr("2001:db8::10"), Proto: "tcp", Port: 443, Timeout: 180 * time.Second},
	}); err != nil {
		t.Fatal(err)
	}
	lines = append(lines, "-- guarded")
	if err := g.SetGuarded([]ProtoPort{{"udp", 1194}, {"tcp", 443}}); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(lines, "\n") + "\n"
	golden.Check(t, "testdata/nftgate.golden", got)
}
