package linkmgr

import (
	"testing"
	"time"
)

// step is one event of an election walk-through: at a time (seconds from
// the start), a report, stop or tick, then the expected active host of each
// location.
type step struct {
	at    float64
	event string // "report", "report-unreachable", "stop", "tick"
	host  string
	want  map[string]string
}

func run(t *testing.T, specs []HostSpec, steps []step) {
	t.Helper()
	e := NewElection(specs)
	t0 := time.Unix(1760000000, 0)
	for i, s := range steps {
		now := t0.Add(time.Duration(s.at * float64(time.Second)))
		switch s.event {
		case "report":
			e.Report(s.host, now, true)
		case "report-unreachable":
			e.Report(s.host, now, false)
		case "stop":
			e.Stop(s.host, now)
		case "tick":
			e.Tick(now)
		default:
			t.Fatalf("step %d: unknown event %q", i, s.event)
		}
		for loc, want := range s.want {
			if got := e.Active(loc); got != want {
				t.Fatalf("step %d (t=%vs %s %s): location %s active %q, want %q", i, s.at, s.event, s.host, loc, got, want)
			}
		}
	}
}

// reportAll returns report events for the hosts every second over [from, to].
func every(from, to float64, hosts ...string) []step {
	var out []step
	for at := from; at <= to; at++ {
		for _, h := range hosts {
			out = append(out, step{at: at, event: "report", host: h})
		}
	}
	return out
}

func cat(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var siteB = []HostSpec{
	{ID: "b1", Location: "B", Priority: 2},
	{ID: "b2", Location: "B", Priority: 1},
}

func TestElectionPriorityAndPreemption(t *testing.T) {
	run(t, siteB, []step{
		{at: 0, event: "tick", want: map[string]string{"B": ""}},
		{at: 0, event: "report", host: "b2", want: map[string]string{"B": "b2"}},
		// The higher-priority host becomes available and takes over.
		{at: 1, event: "report", host: "b1", want: map[string]string{"B": "b1"}},
		{at: 2, event: "report", host: "b2", want: map[string]string{"B": "b1"}},
	})
}

func TestElectionTimeoutAndBackoff(t *testing.T) {
	specs := []HostSpec{{ID: "b1", Location: "B", Priority: 2, Backoff: 10 * time.Second}, {ID: "b2", Location: "B", Priority: 1}}
	run(t, specs, cat(
		every(0, 5, "b1", "b2"),
		[]step{{at: 5, event: "tick", want: map[string]string{"B": "b1"}}},
		// b1 stops reporting after t=5; its default 3 s timeout passes.
		every(6, 8, "b2"),
		[]step{{at: 8.0, event: "tick", want: map[string]string{"B": "b1"}}},
		[]step{{at: 8.5, event: "tick", want: map[string]string{"B": "b2"}}},
		// b1 comes back at t=10: offline since t=8, back-off 10 s, so it may
		// take over only from t=18.
		every(9, 17, "b2"),
		every(10, 17, "b1"),
		[]step{{at: 17.5, event: "tick", want: map[string]string{"B": "b2"}}},
		[]step{{at: 18, event: "report", host: "b1", want: map[string]string{"B": "b1"}}},
	))
}

func TestElectionGracefulStopFailsOverAtOnce(t *testing.T) {
	run(t, siteB, cat(
		every(0, 3, "b1", "b2"),
		[]step{
			{at: 3.1, event: "stop", host: "b1", want: map[string]string{"B": "b2"}},
			// A stopped host does not count as available even if its last
			// report is recent.
			{at: 3.2, event: "tick", want: map[string]string{"B": "b2"}},
			// Back without back-off (0): it takes over again.
			{at: 4, event: "report", host: "b1", want: map[string]string{"B": "b1"}},
		},
	))
}

func TestElectionNoFlappingOnTies(t *testing.T) {
	specs := []HostSpec{{ID: "b1", Location: "B"}, {ID: "b2", Location: "B"}}
	run(t, specs, []step{
		{at: 0, event: "report", host: "b2", want: map[string]string{"B": "b2"}},
		// Same priority: b1 (first by ID) does not take over from b2.
		{at: 0.5, event: "report", host: "b1", want: map[string]string{"B": "b2"}},
		{at: 1, event: "report", host: "b2", want: map[string]string{"B": "b2"}},
		{at: 1.5, event: "report", host: "b1", want: map[string]string{"B": "b2"}},
	})
}

func TestElectionPrefersHostsThatReachTheirPeers(t *testing.T) {
	run(t, siteB, []step{
		{at: 0, event: "report", host: "b1", want: map[string]string{"B": "b1"}},
		{at: 0, event: "report", host: "b2", want: map[string]string{"B": "b1"}},
		// b1 reports that it cannot reach the other site (a partition):
		// b2, which can, is preferred despite its lower priority.
		{at: 1, event: "report-unreachable", host: "b1", want: map[string]string{"B": "b2"}},
		{at: 1, event: "report", host: "b2", want: map[string]string{"B": "b2"}},
		// Healed: b1 outranks again.
		{at: 2, event: "report", host: "b1", want: map[string]string{"B": "b1"}},
	})
}

func TestElectionLocationsAreIndependent(t *testing.T) {
	specs := append([]HostSpec{{ID: "a1", Location: "A"}}, siteB...)
	run(t, specs, cat(
		every(0, 2, "a1", "b1", "b2"),
		[]step{{at: 2, event: "stop", host: "b1", want: map[string]string{"A": "a1", "B": "b2"}}},
		[]step{{at: 6, event: "tick", want: map[string]string{"A": "", "B": ""}}},
	))
}

func TestElectionSetHostsDropsRemovedActive(t *testing.T) {
	e := NewElection(siteB)
	now := time.Unix(1760000000, 0)
	e.Report("b1", now, true)
	e.Report("b2", now, true)
	if e.Active("B") != "b1" {
		t.Fatal("b1 not active")
	}
	e.SetHosts([]HostSpec{{ID: "b2", Location: "B"}})
	if got := e.Tick(now); len(got) != 1 || got[0].To != "b2" || e.Active("B") != "b2" {
		t.Fatalf("after removing b1: %+v, active %q", got, e.Active("B"))
	}
	if e.Report("unknown", now, true) != nil {
		t.Fatal("report of an unknown host changed something")
	}
}
