package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// TestSmallRun runs the whole bench at a small scale (200 users, 1,000
// approvals, a fill of 500 elements, 20 real approvals) and checks that it produced every
// figure, and that the kernel holds what the store explains. Nothing is
// timed against a limit.
func TestSmallRun(t *testing.T) {
	testenv.System(t, "builds the core, starts it in a network namespace, drives nftables")
	testenv.NeedRoot(t, "network namespaces, nftables, the real core")
	p := params{samples: 5, fill: 500, pop: population{orgs: 2, users: 200, approvals: 1000, keyPool: 1, realApprovals: 20}}
	if err := p.check(); err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	res, err := run(t, p, &progress, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	a := res.adds
	if a.fillErr != nil || a.held != p.fill+p.samples+warmUp {
		t.Errorf("fill: %v; the set holds %d, want %d", a.fillErr, a.held, p.fill+p.samples+warmUp)
	}
	for name, c := range map[string]addCost{"empty": a.empty, "full": a.full} {
		if c.n != p.samples || c.cpu <= 0 || c.wall <= 0 {
			t.Errorf("adds into the %s set: %+v", name, c)
		}
	}
	g := res.gw
	if g.liveAtStart != p.pop.approvals {
		t.Errorf("seeded %d approvals, want %d", g.liveAtStart, p.pop.approvals)
	}
	for name, f := range map[string]startFigures{"first start": g.first, "restart": g.again} {
		if f.reconcile == nil || f.reconcile.Seconds <= 0 || f.reconcile.CPUSeconds <= 0 || f.pid <= 0 {
			t.Errorf("%s: reconcile %+v, pid %d", name, f.reconcile, f.pid)
			continue
		}
		if f.held != p.pop.approvals {
			t.Errorf("%s: the kernel holds %d elements, want one per approval, %d", name, f.held, p.pop.approvals)
		}
		if f.mem.VmRSS <= 0 || f.mem.VmHWM < f.mem.VmRSS || f.mem.RssAnon <= 0 {
			t.Errorf("%s: memory %+v", name, f.mem)
		}
	}
	if g.approved != p.pop.realApprovals || g.afterApprovals.VmRSS <= 0 {
		t.Errorf("real approvals: %d allowed, want %d; memory then %+v", g.approved, p.pop.realApprovals, g.afterApprovals)
	}
	if g.first.reconcile != nil && g.first.reconcile.Added != p.pop.approvals {
		t.Errorf("first start: reconcile added %d, want %d", g.first.reconcile.Added, p.pop.approvals)
	}
	var out bytes.Buffer
	res.printAdds(&out, p)
	res.printGateway(&out, p)
	for _, want := range []string{"ratio full ÷ empty", "reconcile at start", "VmHWM"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output has no %q:\n%s", want, out.String())
		}
	}
}
