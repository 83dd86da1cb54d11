// Command benchfloor prints the floor of one approval, part by part: the
// CPU that the cryptography, the kernel and the store cannot avoid,
// whatever the gateway's own code does around them (internal/floor says
// how each part is measured). internal/benchapprove measures the same
// floor in its run, at the group-commit size it measured, and divides the
// gateway's own CPU per approval by it; this command is for looking at the
// parts alone. Needs root for the nftables part (a namespace of its own).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/portcullis-gw/portcullis/internal/floor"
	"github.com/portcullis-gw/portcullis/internal/netlab"
)

func main() {
	handshakes := flag.Int("handshakes", 300, "TLS handshakes")
	ops := flag.Int("ops", 300, "operations for each crypto, nftables and store measurement")
	batch := flag.Float64("batch", 8, "approvals per store transaction (group commit size; an average such as 2.4 is interpolated between 2 and 3)")
	prefill := flag.Int("prefill", 6000, "approvals (with their nonces) in the store before its part is measured")
	flag.Parse()
	if *handshakes < 1 || *ops < 1 || !(*batch >= 1 && *batch <= 256) || *prefill < 0 {
		fmt.Fprintln(os.Stderr, "benchfloor: -handshakes and -ops must be ≥ 1, -batch 1 to 256 (the group commit's largest group), -prefill ≥ 0")
		os.Exit(2)
	}
	r := netlab.NewRunner("benchfloor")
	defer r.Done()
	fmt.Printf("benchfloor: CPU per operation (CLOCK_THREAD_CPUTIME_ID on a locked OS thread), GOMAXPROCS=%d\n\n", runtime.GOMAXPROCS(0))
	netlab.Require(r)
	ns := netlab.NewNS(r, "floor")
	dir, err := os.MkdirTemp("", "portcullis-benchfloor-")
	if err != nil {
		r.Fatalf("%v", err)
	}
	r.Cleanup(func() { os.RemoveAll(dir) })
	parts, err := floor.Measure(floor.Options{Handshakes: *handshakes, Ops: *ops, Batch: *batch, StorePrefill: *prefill, NSPath: ns.Path(), Dir: dir})
	if err != nil {
		r.Fatalf("%v", err)
	}
	for _, p := range parts {
		fmt.Printf("  %-24s %9.1f µs   %s\n", p.Name, p.US, p.Method)
	}
	fmt.Printf("  %-24s %9.1f µs   sum of the above\n", "floor per approval", floor.Sum(parts, false))
}
