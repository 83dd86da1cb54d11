package vpn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// failingSpecs fails the first n specs, then gives fakeSpecs'.
type failingSpecs struct {
	mu sync.Mutex
	n  int
}

var errNoSpec = errors.New("no spec yet")

func (f *failingSpecs) Spec(ctx context.Context, id string) (*Spec, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n > 0 {
		f.n--
		return nil, errNoSpec
	}
	return fakeSpecs{}.Spec(ctx, id)
}

// eventLog collects the workers' events.
type eventLog struct {
	mu sync.Mutex
	ev []WorkerEvent
}

func (l *eventLog) add(e WorkerEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ev = append(l.ev, e)
}

func (l *eventLog) all() []WorkerEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ev)
}

// TestWorkerEvents: every start and end of a worker's process is told to
// Options.Events, in order: a failed start, the start after the back-off,
// the process's own exit and its restart, and the stop.
func TestWorkerEvents(t *testing.T) {
	logs, events := &logBuffer{}, &eventLog{}
	o := fakeOpenVPNOptions(t, logs)
	o.Specs, o.Events = &failingSpecs{n: 1}, events.add
	m := New(o)
	defer m.Close()
	const id = "0123456789abcdef01234567"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.Start(ctx, id); !errors.Is(err, errNoSpec) {
		t.Fatalf("first start: %v, want the spec's error", err)
	}
	// started waits for the n-th start event (the process serves).
	started := func(n int) WorkerEvent {
		var s []WorkerEvent
		testkit.Eventually(t, 10*time.Second, 20*time.Millisecond, fmt.Sprintf("start %d", n), func() error {
			s = s[:0]
			for _, e := range events.all() {
				if e.Kind == WorkerStarted {
					s = append(s, e)
				}
			}
			if len(s) >= n {
				return nil
			}
			return fmt.Errorf("events %+v\n%s", events.all(), logs)
		})
		return s[n-1]
	}
	first := started(1)
	_ = syscall.Kill(first.PID, syscall.SIGKILL)
	second := started(2)
	if err := m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	got := events.all()
	want := []struct {
		kind WorkerEventKind
		pid  int
		err  bool
	}{
		{WorkerFailed, 0, true}, {WorkerStarted, first.PID, false}, {WorkerExited, first.PID, true},
		{WorkerStarted, second.PID, false}, {WorkerStopped, second.PID, false},
	}
	if len(got) != len(want) {
		t.Fatalf("events %+v, want %d", got, len(want))
	}
	for i, w := range want {
		e := got[i]
		if e.ServerID != id || e.Kind != w.kind || e.PID != w.pid || (e.Err != nil) != w.err {
			t.Errorf("event %d: %+v (%s), want %s pid %d error %v", i, e, e.Kind, w.kind, w.pid, w.err)
		}
	}
	if !errors.Is(got[0].Err, errNoSpec) {
		t.Errorf("the failed start's error: %v", got[0].Err)
	}
}
