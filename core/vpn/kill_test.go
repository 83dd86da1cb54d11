package vpn

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// holdDecider allows every connect; the one of user held signals read
// and waits for release before answering.
type holdDecider struct {
	held          string
	read, release chan struct{}
	once          sync.Once
}

func (d *holdDecider) open() { d.once.Do(func() { close(d.release) }) }

func (d *holdDecider) Decide(_ context.Context, r *AuthRequest) Decision {
	if r.CommonName == d.held && !r.Reauth {
		close(d.read)
		<-d.release
	}
	return Decision{Allow: true, UserID: r.CommonName, OrgID: r.Org}
}

// KillClient ends one client: one being decided is refused when its
// decision comes, a connected one gets client-kill HALT; the other
// clients are untouched and nobody is killed by name.
func TestKillClient(t *testing.T) {
	logs := &logBuffer{}
	dec := &holdDecider{held: "u2", read: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(dec.open)
	o := fakeOpenVPNOptions(t, logs)
	o.Decider = dec
	m := New(o)
	defer m.Close()
	const id = testServerID
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.KillClient(ctx, id, 0); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("KillClient without a worker: %v", err)
	}
	if err := m.Start(ctx, id); err != nil {
		t.Fatalf("start: %v\n%s", err, logs)
	}
	logs.waitFor(t, "FAKE got client-auth-nt 0 1")
	select {
	case <-dec.read:
	case <-time.After(10 * time.Second):
		t.Fatal("u2's connect is not decided")
	}

	// Deciding: the allow turns into a refusal, and no command is sent.
	if err := m.KillClient(ctx, id, 1); err != nil {
		t.Fatalf("kill the client being decided: %v", err)
	}
	dec.open()
	logs.waitFor(t, "FAKE got client-deny 1 1")
	if s := logs.String(); strings.Contains(s, "FAKE got client-kill") || strings.Contains(s, "FAKE got kill") {
		t.Fatalf("a kill was sent for a client being decided:\n%s", s)
	}

	// Connected: client-kill HALT for that client only.
	if err := m.KillClient(ctx, id, 0); err != nil {
		t.Fatalf("kill the connected client: %v", err)
	}
	logs.waitFor(t, "FAKE got client-kill 0 HALT")
	time.Sleep(2 * haltDelay)
	if s := logs.String(); strings.Contains(s, "FAKE got kill u1") || strings.Count(s, "FAKE got client-kill") != 1 {
		t.Fatalf("more than client 0 was killed:\n%s", s)
	}
}
