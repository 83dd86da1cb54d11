package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"time"

	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/netlab"
)

// elementCost compares one element add through a lasting netlink
// connection with the same add by executing nft, in a namespace of its own
// (the gateway's table belongs to its core).
func elementCost(r *netlab.Runner, n int) (netlink, nft time.Duration, err error) {
	nftBin, err := exec.LookPath("nft")
	if err != nil {
		return 0, 0, fmt.Errorf("nft binary not installed (apt-get install nftables)")
	}
	ns := netlab.NewNS(r, "bnft")
	f, err := os.Open(ns.Path())
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	gate, err := dynfw.OpenNFT(slog.New(slog.NewTextHandler(io.Discard, nil)), int(f.Fd()))
	if err != nil {
		return 0, 0, err
	}
	defer gate.Close()
	if err := gate.Ensure(); err != nil {
		return 0, 0, err
	}
	var nl, ex []time.Duration
	for i := 0; i < n; i++ {
		a := netip.AddrFrom4([4]byte{100, 70, byte(i >> 8), byte(i)})
		start := time.Now()
		if err := gate.Allow([]dynfw.Element{{Addr: a, Proto: "udp", Port: 1194, Timeout: time.Minute}}); err != nil {
			return 0, 0, err
		}
		nl = append(nl, time.Since(start))
		b := netip.AddrFrom4([4]byte{100, 71, byte(i >> 8), byte(i)})
		start = time.Now()
		cmd := ns.Command(nftBin, "add", "element", "inet", dynfw.TableName, dynfw.SetAllow4,
			fmt.Sprintf("{ %s . udp . 1194 timeout 60s }", b))
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, 0, fmt.Errorf("nft: %v: %s", err, out)
		}
		ex = append(ex, time.Since(start))
	}
	return durMedian(nl), durMedian(ex), nil
}
