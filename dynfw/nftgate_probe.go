package dynfw

import (
	"context"

	"github.com/google/nftables"

	"github.com/portcullis-gw/portcullis/internal/nftkit"
)

// SetProbe is the set that Ensure makes in the table, once per gate, to
// find whether the kernel updates an existing element's expiry; it is
// deleted again at once.
const SetProbe = "expiry_probe"

// ForceRecreate makes the gate delete and re-add the elements already
// present on every Allow, as it does on a kernel that does not update an
// existing element's expiry, whatever the probe finds (tests: the
// fallback's path on a kernel that needs none).
func ForceRecreate() NFTOption {
	return func(g *NFTGate) { g.forceRecreate = true }
}

// probeOnce runs the expiry update probe at the first Ensure and chooses
// how Allow puts elements: through nftkit.PutElements when the kernel
// updates an existing element's expiry (Linux 6.12+), else through
// nftkit.RecreateElements. A failed probe counts as "does not update":
// the fallback moves the expiry on any kernel, at the cost of a delete.
func (g *NFTGate) probeOnce() {
	if g.probed.Swap(true) {
		return
	}
	works, left, err := g.c.ProbeElementUpdate(context.Background(), g.table, SetProbe)
	const fallback = "an element already present is deleted and re-added in the same transaction (a re-approval costs a delete, 12-16 ms)"
	switch {
	case err != nil:
		g.log.Warn("nftables element expiry probe failed; using the fallback", "table", "inet "+TableName,
			"fallback", fallback, "err", err)
	case works:
		g.log.Info("nftables updates an existing element's expiry in place (Linux 6.12+)", "table", "inet "+TableName,
			"probe_left", left)
	default:
		g.log.Warn("nftables does not update an existing element's expiry (needs Linux 6.12+); using the fallback",
			"table", "inet "+TableName, "fallback", fallback, "probe_left", left)
	}
	if g.forceRecreate {
		g.log.Info("nftables element fallback forced by option", "table", "inet "+TableName, "fallback", fallback)
	}
	g.recreate.Store(err != nil || !works || g.forceRecreate)
}

// put sends the elements of an Allow: one batch of adds, or with the
// fallback the delete-and-add of nftkit.RecreateElements.
func (g *NFTGate) put(v4, v6 []nftables.SetElement) error {
	sets := []nftkit.SetElements{{Set: g.allow4, Elements: v4}, {Set: g.allow6, Elements: v6}}
	if !g.recreate.Load() && !g.forceRecreate {
		return g.c.PutElements(context.Background(), sets...)
	}
	n, err := g.c.RecreateElements(context.Background(), sets...)
	if n > 0 {
		g.recreated.Add(int64(n))
		g.log.Debug("elements deleted and re-added to move their expiry", "elements", n)
	}
	return err
}
