package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// TestAgentReportsWhyDown: a loaded connection without an installed child
// is reported (state DOWN when charon lists no SA) with the reason its log
// lines tell and its events; the CLI reads the same from the diag file;
// once up, the reason is gone.
func TestAgentReportsWhyDown(t *testing.T) {
	c := &calls{}
	dir := t.TempDir()
	a, ch, gw := testAgent(t, c, dir)
	mustRound(t, a) // loads corp-A-B
	mustRound(t, a)
	if r := gw.lastReport(); len(r.Connections) != 1 || r.Connections[0].State != stateDown || r.Connections[0].Reason == nil ||
		r.Connections[0].Reason.Code != api.ReasonConnecting {
		t.Fatalf("report before any failure: %+v", r.Connections)
	}
	at := time.Unix(1764470400, 0)
	a.diag.Add(CharonEvent{At: at, Kind: "log", Conn: "corp-A-B", IKEID: "3", Msg: "received AUTHENTICATION_FAILED notify error"})
	mustRound(t, a)
	r := gw.lastReport()
	got := r.Connections[0]
	if got.Reason == nil || got.Reason.Code != api.ReasonAuthFailed || got.Reason.Cause != "received AUTHENTICATION_FAILED notify error" ||
		len(got.Events) != 1 || got.Events[0].Code != api.ReasonAuthFailed {
		t.Fatalf("connection %+v reason %+v", got, got.Reason)
	}
	// The connection as reported validates (the fixture's host IDs are
	// not the gateway's, so the report's reach is not checked here).
	if err := api.Validate(&got); err != nil {
		t.Fatalf("the reported connection does not validate: %v", err)
	}
	fromFile, err := ReadDiagnostics(dir)
	if err != nil || len(fromFile) != 1 || fromFile[0].Reason == nil || fromFile[0].Reason.Code != api.ReasonAuthFailed {
		t.Fatalf("diag file %+v %v", fromFile, err)
	}
	ch.up("corp-A-B")
	mustRound(t, a)
	mustRound(t, a)
	if got := gw.lastReport().Connections[0]; got.Reason != nil || got.State != "ESTABLISHED" || got.Child != "INSTALLED" ||
		got.Events[len(got.Events)-1].Code != api.EventUp {
		t.Fatalf("up connection %+v", got)
	}
}

// fakeEvents hands its events to the agent's stream and then waits.
type fakeEvents struct{ evs []CharonEvent }

func (f fakeEvents) Watch(ctx context.Context, fn func(CharonEvent)) error {
	for _, ev := range f.evs {
		fn(ev)
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestAgentRunOwnsTheEventStream: Run feeds diag from the event source and
// returns only after the stream stopped.
func TestAgentRunOwnsTheEventStream(t *testing.T) {
	c := &calls{}
	a, _, _ := testAgent(t, c, "")
	stopped := make(chan struct{})
	a.events = stopWatch{fakeEvents{}, stopped}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	select {
	case <-stopped:
	default:
		t.Fatal("Run returned before the event stream stopped")
	}
}

type stopWatch struct {
	EventSource
	stopped chan struct{}
}

func (s stopWatch) Watch(ctx context.Context, fn func(CharonEvent)) error {
	err := s.EventSource.Watch(ctx, fn)
	close(s.stopped)
	return err
}

// TestFitReport: 256 connections, each down with the longest reason and
// events the report allows, still make a report under the gateway's body
// limit; a small report is left whole.
func TestFitReport(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	var sides []string
	for range 16 {
		sides = append(sides, long(256))
	}
	r := &api.LinkReport{Version: 1, Reach: []api.LinkReach{}}
	for i := range 256 {
		var evs []api.LinkEvent
		for j := range api.MaxReportEvents {
			evs = append(evs, api.LinkEvent{Seq: uint64(j + 1), At: 1, Code: api.ReasonHostDown, Text: long(512)})
		}
		r.Connections = append(r.Connections, api.LinkConnection{Name: fmt.Sprintf("corp-A-%d", i), State: stateDown,
			Reason: &api.LinkReason{Code: api.ReasonNoProposal, Text: long(512), Cause: long(1024), Local: sides, Remote: sides}, Events: evs})
	}
	fitReport(r)
	b, _ := json.Marshal(r)
	if len(b) > maxDiagReport {
		t.Fatalf("report of %d bytes", len(b))
	}
	if err := api.Validate(r); err != nil {
		t.Fatal(err)
	}
	if r.Connections[0].Reason == nil || r.Connections[0].Reason.Code != api.ReasonNoProposal {
		t.Fatalf("the reasons themselves were cut: %+v", r.Connections[0])
	}
	small := &api.LinkReport{Version: 1, Connections: []api.LinkConnection{{Name: "c", State: stateDown,
		Reason: &api.LinkReason{Code: api.ReasonHostDown, Text: "t", Cause: "c", Local: []string{"l"}}, Events: []api.LinkEvent{{Seq: 1, Code: api.EventUp}}}}}
	fitReport(small)
	if small.Connections[0].Events == nil || small.Connections[0].Reason.Local == nil {
		t.Fatal("a small report was trimmed")
	}
}

// TestAgentLogsReasonsOnce: a reason is logged when it appears or changes,
// not every round, and the connection coming up again is logged once.
func TestAgentLogsReasonsOnce(t *testing.T) {
	c := &calls{}
	a, ch, _ := testAgent(t, c, "")
	var buf strings.Builder
	a.log = slog.New(slog.NewTextHandler(&buf, nil))
	mustRound(t, a)
	a.diag.Add(CharonEvent{At: time.Unix(1, 0), Kind: "log", Conn: "corp-A-B", IKEID: "3", Msg: "received AUTHENTICATION_FAILED notify error"})
	for range 3 {
		mustRound(t, a)
	}
	if n := strings.Count(buf.String(), "reason=AUTHENTICATION_FAILED"); n != 1 {
		t.Fatalf("reason logged %d times:\n%s", n, buf.String())
	}
	ch.up("corp-A-B")
	for range 3 {
		mustRound(t, a)
	}
	if n := strings.Count(buf.String(), "connection up again"); n != 1 {
		t.Fatalf("up logged %d times:\n%s", n, buf.String())
	}
}
