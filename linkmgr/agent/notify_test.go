package agent

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/sdnotify"
	"github.com/portcullis-gw/portcullis/internal/sdnotify/sdtest"
)

// TestAgentNotifiesSystemd runs the agent against a fake service manager:
// no READY while the gateway does not answer (but watchdog pings: the loop
// runs), READY after the first state applied, a STATUS line that follows
// the tunnels, pings that stop while a gateway call hangs and come back
// when it returns, and STOPPING before the graceful stop.
func TestAgentNotifiesSystemd(t *testing.T) {
	const wd = 400 * time.Millisecond // pings every ≥ 100 ms
	c := &calls{}
	a, ch, gw := testAgent(t, c, t.TempDir())
	sock := sdtest.Listen(t)
	a.notify.to = sdnotify.New(sock.Path, wd, nil)
	gw.setErr(errors.New("unreachable"))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	// The gateway does not answer: pings, a status, no READY.
	if _, err := sock.Wait(sdtest.Watchdog, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if st, err := sock.Wait(sdtest.Status, 5*time.Second); err != nil || st.Vars["STATUS"] != "waiting for the gateway's state" {
		t.Fatalf("status %v %v", st, err)
	}
	time.Sleep(3 * wd / 4)
	if n := sock.Count(sdtest.Ready); n != 0 {
		t.Fatalf("READY sent %d times before any state was applied", n)
	}
	if n := sock.Count(sdtest.Watchdog); n < 2 {
		t.Fatalf("%d pings while waiting for the gateway", n)
	}

	// The gateway answers: READY once the state is applied.
	gw.setErr(nil)
	ready, err := sock.Wait(sdtest.Ready, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.take(), "load-conn corp-A-B remote 127.0.0.2") {
		t.Fatal("READY before the state's connection was loaded")
	}
	if st, _ := sock.Last(sdtest.Status); st.Seq > ready.Seq || st.Vars["STATUS"] != "active, 0/1 tunnels up" {
		t.Fatalf("status at READY %v (READY %v)", st, ready)
	}
	ch.up("corp-A-B")
	if _, err := waitStatus(sock, ready.Seq, "active, 1/1 tunnels up"); err != nil {
		t.Fatal(err)
	}

	// A gateway call hangs: the loop stalls and the pings stop.
	hung, release := gw.stall()
	select {
	case <-hung:
	case <-time.After(5 * time.Second):
		t.Fatal("the stalled gateway was never called")
	}
	time.Sleep(wd / 4) // a ping on its way lands
	before := sock.Count(sdtest.Watchdog)
	time.Sleep(2 * wd)
	if n := sock.Count(sdtest.Watchdog); n != before {
		t.Fatalf("%d pings while the loop was stalled", n-before)
	}
	last, _ := sock.Last(sdtest.Watchdog)
	release()
	if _, err := sock.WaitAfter(sdtest.Watchdog, last.Seq, 5*time.Second); err != nil {
		t.Fatalf("pings did not resume: %v", err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil // for the deferred stop
	stop, err := sock.Wait(sdtest.Stopping, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n := sock.Count(sdtest.Ready); n != 1 || stop.Seq < ready.Seq {
		t.Fatalf("%d READY, STOPPING %v", n, stop)
	}
}

// waitStatus waits for the status line want after message seq.
func waitStatus(s *sdtest.Socket, seq int, want string) (sdtest.Message, error) {
	for {
		m, err := s.WaitAfter(sdtest.Status, seq, 5*time.Second)
		if err != nil || m.Vars["STATUS"] == want {
			return m, err
		}
		seq = m.Seq
	}
}

// TestAgentStatusLine covers the status line's states.
func TestAgentStatusLine(t *testing.T) {
	c := &calls{}
	a, ch, gw := testAgent(t, c, "")
	if s := a.statusLine(); s != "waiting for charon" {
		t.Fatalf("before charon: %q", s)
	}
	gw.set(testState(false, nil, pskOld))
	mustRound(t, a)
	if s := a.statusLine(); s != "standby, 0/0 tunnels up" {
		t.Fatalf("standby: %q", s)
	}
	gw.set(testState(true, map[string]string{"B": "127.0.0.2", "C": "127.0.0.3"}, pskOld))
	mustRound(t, a)
	ch.up("corp-A-C")
	mustRound(t, a)
	if s := a.statusLine(); s != "active, 1/2 tunnels up" {
		t.Fatalf("active: %q", s)
	}
	gw.setErr(errors.New("unreachable"))
	_ = a.round(context.Background())
	if s := a.statusLine(); s != "active, 1/2 tunnels up; gateway not answering, keeping the last state" {
		t.Fatalf("gateway down: %q", s)
	}
}
