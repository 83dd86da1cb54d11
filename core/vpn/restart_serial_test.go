package vpn

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Restarts of one server at once (the admin's restart and the cluster's
// follower on the same gateway) run one after the other: never two
// processes of the server at a time.
func TestConcurrentRestartsNeverOverlap(t *testing.T) {
	var (
		mu          sync.Mutex
		live, most  int
		startsCount int
	)
	o := fakeOpenVPNOptions(t, &logBuffer{})
	o.Events = func(e WorkerEvent) {
		mu.Lock()
		defer mu.Unlock()
		switch e.Kind {
		case WorkerStarted:
			live++
			startsCount++
			most = max(most, live)
		case WorkerStopped, WorkerExited:
			live--
		}
	}
	m := New(o)
	defer m.Close()
	const s, n = "0123456789abcdef01234567", 8
	restartConcurrently(t, m, s, n)
	mu.Lock()
	defer mu.Unlock()
	if most > 1 {
		t.Errorf("%d processes of the server ran at once", most)
	}
	if startsCount != n+1 {
		t.Errorf("%d starts, want %d", startsCount, n+1)
	}
	if st, ok := m.Status(s); !ok || !st.Running {
		t.Errorf("after the restarts: %+v", st)
	}
}

// With the workers' own IDs: concurrent restarts keep the server's one
// worker under its one uid, its device made for that uid every time and
// never removed, and no other process under the range's IDs.
func TestConcurrentRestartsKeepOneWorkerOneUID(t *testing.T) {
	r := IDRange{First: 70200, Count: 16}
	o, links := ownIDsOptions(t, &logBuffer{}, r, "")
	m := New(o)
	defer m.Close()
	const s, n = "0123456789abcdef01234567", 8
	restartConcurrently(t, m, s, n)
	links.mu.Lock()
	made, removed := append([]Tun(nil), links.made...), append([]string(nil), links.removed...)
	links.mu.Unlock()
	if len(made) != n+1 {
		t.Errorf("the device was made %d times, want %d (one per start)", len(made), n+1)
	}
	for i, tun := range made {
		if tun.UID != made[0].UID || tun.GID != made[0].GID {
			t.Errorf("start %d made the device for %d/%d, the first for %d/%d", i, tun.UID, tun.GID, made[0].UID, made[0].GID)
		}
	}
	if len(removed) > 0 {
		t.Errorf("the device was removed during the restarts: %v", removed)
	}
	if got := m.Running(); len(got) != 1 || got[0] != s {
		t.Errorf("running: %v", got)
	}
	st, _ := m.Status(s)
	found, err := procsOf(r.contains)
	if err != nil {
		t.Fatal(err)
	}
	for id, pids := range found {
		if id != uint32(made[0].UID) || len(pids) != 1 || pids[0] != st.PID {
			t.Errorf("processes under uid %d: %v (the worker is pid %d under %d)", id, pids, st.PID, made[0].UID)
		}
	}
}

// slowSpecs answers only when the start is cancelled or after a minute.
type slowSpecs struct{ asked chan struct{} }

func (s slowSpecs) Spec(ctx context.Context, id string) (*Spec, error) {
	select {
	case s.asked <- struct{}{}:
	default:
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(time.Minute):
	}
	return fakeSpecs{}.Spec(ctx, id)
}

// A stop does not wait for a start under way (its turn would come after
// it): it cancels it.
func TestStopCancelsAStartUnderWay(t *testing.T) {
	o := fakeOpenVPNOptions(t, &logBuffer{})
	specs := slowSpecs{asked: make(chan struct{}, 1)}
	o.Specs = specs
	m := New(o)
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const s = "0123456789abcdef01234567"
	started := make(chan error, 1)
	go func() { started <- m.Start(ctx, s) }()
	<-specs.asked
	t0 := time.Now()
	if err := m.Stop(ctx, s); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("the stop took %s", d)
	}
	if err := <-started; err == nil {
		t.Error("the start cancelled by the stop succeeded")
	}
	if got := m.Running(); len(got) != 0 {
		t.Errorf("running after the stop: %v", got)
	}
}

// restartConcurrently starts server s's worker, then restarts it n times
// at once; every restart must succeed.
func restartConcurrently(t *testing.T, m *Manager, s string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := m.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = m.Restart(ctx, s) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("restart %d: %v", i, err)
		}
	}
}
