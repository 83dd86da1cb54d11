package audit

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/portcullis-gw/portcullis/internal/store"
)

func openStore(t *testing.T, path string) *store.Bolt {
	t.Helper()
	st, err := store.OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newLog returns a trail on a fresh store with a clock the test moves.
func newLog(t *testing.T) (*Log, *time.Time) {
	t.Helper()
	l := New(openStore(t, filepath.Join(t.TempDir(), "s.db")), nil)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l.now = func() time.Time { return now }
	return l, &now
}

func record(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := range n {
		if err := l.Record(context.Background(), Entry{Actor: "admin", Action: "org.create", Target: fmt.Sprintf("n=%d", i), Outcome: OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
}

// seqs lists the sequence numbers of the entries.
func seqs(es []Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func TestRecordAppendsInOrderNewestFirst(t *testing.T) {
	l, now := newLog(t)
	ctx := context.Background()
	want := Entry{Actor: "alice", Remote: "192.0.2.7:5555", Action: "server.start", Target: "server_id=0a", Outcome: Failed("worker_failed"), Detail: "d"}
	if err := l.Record(ctx, want); err != nil {
		t.Fatal(err)
	}
	*now = now.Add(time.Minute)
	if err := l.Record(ctx, Entry{Actor: ActorSystem, Action: "worker.start", Outcome: OutcomeOK, Seq: 99, Time: time.Unix(1, 0)}); err != nil {
		t.Fatal(err)
	}
	got, next, err := l.List(ctx, 0, 0)
	if err != nil || next != 0 || len(got) != 2 {
		t.Fatalf("List: %d entries, next %d, %v", len(got), next, err)
	}
	// Newest first; Seq and Time are Record's, not the caller's.
	if got[0].Seq != 2 || got[0].Action != "worker.start" || !got[0].Time.Equal(*now) {
		t.Errorf("newest %+v", got[0])
	}
	want.Seq, want.Time = 1, now.Add(-time.Minute)
	if got[1] != want {
		t.Errorf("oldest\n got %+v\nwant %+v", got[1], want)
	}
}

// TestListPages: paging with the returned cursor visits every entry once,
// newest first, with no gap and no duplicate, whatever the page size.
func TestListPages(t *testing.T) {
	l, _ := newLog(t)
	record(t, l, 23)
	ctx := context.Background()
	for _, limit := range []int{1, 5, 22, 23, 24, 1000} {
		var all []uint64
		before, pages := uint64(0), 0
		for {
			es, next, err := l.List(ctx, before, limit)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(es) > limit {
				t.Fatalf("limit %d: a page of %d", limit, len(es))
			}
			all = append(all, seqs(es)...)
			if next == 0 {
				break
			}
			if next != es[len(es)-1].Seq {
				t.Fatalf("limit %d: next %d is not the page's last entry %d", limit, next, es[len(es)-1].Seq)
			}
			before = next
			if pages > 30 {
				t.Fatalf("limit %d: paging does not end", limit)
			}
		}
		if len(all) != 23 {
			t.Fatalf("limit %d: %d entries over %d pages: %v", limit, len(all), pages, all)
		}
		for i, s := range all {
			if s != uint64(23-i) {
				t.Fatalf("limit %d: entries %v, want 23 down to 1", limit, all)
			}
		}
	}
	// A cursor in the middle, and past the end.
	if es, next, _ := l.List(ctx, 3, 10); fmt.Sprint(seqs(es)) != "[2 1]" || next != 0 {
		t.Errorf("before 3: %v next %d", seqs(es), next)
	}
	if es, _, _ := l.List(ctx, 1, 10); len(es) != 0 {
		t.Errorf("before 1: %v", seqs(es))
	}
	if es, _, _ := l.List(ctx, 1000, 1); fmt.Sprint(seqs(es)) != "[23]" {
		t.Errorf("before 1000: %v", seqs(es))
	}
}

func TestListLimitCapped(t *testing.T) {
	l, _ := newLog(t)
	record(t, l, MaxLimit+5)
	ctx := context.Background()
	es, next, err := l.List(ctx, 0, MaxLimit*10)
	if err != nil || len(es) != MaxLimit || next != es[MaxLimit-1].Seq {
		t.Fatalf("limit above the cap: %d entries, next %d, %v", len(es), next, err)
	}
	if es, _, _ := l.List(ctx, 0, -1); len(es) != DefaultLimit {
		t.Fatalf("no limit: %d entries, want %d", len(es), DefaultLimit)
	}
}

func TestPruneByAge(t *testing.T) {
	l, now := newLog(t)
	ctx := context.Background()
	start := *now
	for i := range 2*pruneBatch + 10 { // more than two batches, one second apart
		*now = start.Add(time.Duration(i) * time.Second)
		record(t, l, 1)
	}
	cut := start.Add(2*pruneBatch*time.Second + 3*time.Second) // keeps the last 7
	n, err := l.Prune(ctx, cut)
	if err != nil || n != 2*pruneBatch+3 {
		t.Fatalf("Prune: %d, %v; want %d", n, err, 2*pruneBatch+3)
	}
	es, _, _ := l.List(ctx, 0, 0)
	if len(es) != 7 || es[6].Seq != 2*pruneBatch+4 || es[6].Time.Before(cut) {
		t.Fatalf("after pruning: %v", seqs(es))
	}
	if n, err := l.Prune(ctx, cut); n != 0 || err != nil {
		t.Fatalf("second Prune: %d %v", n, err)
	}
	// Sequence numbers go on after a prune: nothing is renumbered.
	record(t, l, 1)
	if es, _, _ := l.List(ctx, 0, 1); es[0].Seq != 2*pruneBatch+11 {
		t.Fatalf("after pruning, the next entry is %d", es[0].Seq)
	}
}

func TestSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st := openStore(t, path)
	record(t, New(st, nil), 3)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	l := New(openStore(t, path), nil)
	record(t, l, 1)
	es, _, err := l.List(context.Background(), 0, 0)
	if err != nil || fmt.Sprint(seqs(es)) != "[4 3 2 1]" || es[3].Target != "n=0" {
		t.Fatalf("after reopening: %v %v", seqs(es), err)
	}
}

func TestConcurrentRecord(t *testing.T) {
	l, _ := newLog(t)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := l.Record(context.Background(), Entry{Actor: "a", Action: "x", Target: fmt.Sprintf("%d/%d", w, i), Outcome: OutcomeOK}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	es, next, err := l.List(context.Background(), 0, MaxLimit)
	if err != nil || next != 0 || len(es) != writers*each {
		t.Fatalf("%d entries, next %d, %v", len(es), next, err)
	}
	targets := map[string]bool{}
	for i, e := range es {
		if e.Seq != uint64(writers*each-i) {
			t.Fatalf("entry %d has seq %d: %v", i, e.Seq, seqs(es))
		}
		targets[e.Target] = true
	}
	if len(targets) != writers*each {
		t.Fatalf("%d distinct entries of %d", len(targets), writers*each)
	}
}

func TestRecordBoundsAndRefuses(t *testing.T) {
	l, _ := newLog(t)
	ctx := context.Background()
	long := strings.Repeat("é", 1000) // 2 bytes each: cuts land mid-character
	if err := l.Record(ctx, Entry{Actor: long, Remote: long, Action: long, Target: long, Outcome: long, Detail: long + "\xff"}); err != nil {
		t.Fatal(err)
	}
	es, _, _ := l.List(ctx, 0, 0)
	e := es[0]
	for _, f := range []struct {
		name, v string
		max     int
	}{{"actor", e.Actor, MaxActor}, {"remote", e.Remote, MaxRemote}, {"action", e.Action, MaxAction},
		{"target", e.Target, MaxTarget}, {"outcome", e.Outcome, MaxOutcome}, {"detail", e.Detail, MaxDetail}} {
		if len(f.v) > f.max || len(f.v) < f.max-1 || !utf8.ValidString(f.v) {
			t.Errorf("%s: %d bytes (bound %d), valid UTF-8 %v", f.name, len(f.v), f.max, utf8.ValidString(f.v))
		}
	}
	for _, bad := range []Entry{{Action: "a", Outcome: OutcomeOK}, {Actor: "a", Outcome: OutcomeOK}, {Actor: "a", Action: "a"}} {
		if err := l.Record(ctx, bad); err == nil {
			t.Errorf("%+v recorded", bad)
		}
	}
	if es, _, _ := l.List(ctx, 0, 0); len(es) != 1 {
		t.Errorf("%d entries after refused ones", len(es))
	}
}

// TestRecordLogs: every entry is logged with its fields; a failed store
// write is logged at error level and returned.
func TestRecordLogs(t *testing.T) {
	var buf bytes.Buffer
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	l := New(st, slog.New(slog.NewTextHandler(&buf, nil)))
	ctx := context.Background()
	if err := l.Record(ctx, Entry{Actor: "alice", Remote: "192.0.2.1:1", Action: "org.delete", Target: "org_id=ab", Outcome: OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"level=INFO", "msg=audit", "seq=1", "actor=alice", "remote=192.0.2.1:1", "action=org.delete", `target="org_id=ab"`, "outcome=ok"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log %q lacks %q", buf.String(), want)
		}
	}
	buf.Reset()
	st.Close()
	if err := l.Record(ctx, Entry{Actor: "alice", Action: "org.create", Outcome: OutcomeOK}); err == nil {
		t.Fatal("Record on a closed store succeeded")
	}
	if !strings.Contains(buf.String(), "level=ERROR") || !strings.Contains(buf.String(), "action=org.create") {
		t.Errorf("failed write logged as %q", buf.String())
	}
}
