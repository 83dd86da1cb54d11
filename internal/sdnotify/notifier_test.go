package sdnotify

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/sdnotify/sdtest"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

func TestNoSocketIsANoOp(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "1000000")
	var buf bytes.Buffer
	n := FromEnv(slog.New(slog.NewTextHandler(&buf, nil)))
	if n.Enabled() || n.WatchdogInterval() != 0 {
		t.Fatalf("enabled %v, watchdog %v without NOTIFY_SOCKET", n.Enabled(), n.WatchdogInterval())
	}
	n.Ready()
	n.Status("x")
	n.Watchdog()
	n.Stopping()
	var nilN *Notifier
	nilN.Ready()
	nilN.Watchdog()
	if nilN.WatchdogInterval() != 0 || nilN.Enabled() {
		t.Fatal("a nil notifier is enabled")
	}
	if buf.Len() != 0 {
		t.Fatalf("logged %q", buf.String())
	}
}

func TestMessagesInOrder(t *testing.T) {
	s := sdtest.Listen(t)
	s.Setenv(t, 3*time.Second)
	n := FromEnv(nil)
	if got := n.WatchdogInterval(); got != 3*time.Second {
		t.Fatalf("watchdog interval %v", got)
	}
	n.Status("starting")
	n.Ready()
	n.Watchdog()
	n.Status("2 tunnels\nup ")
	n.Stopping()
	stop, err := s.Wait(sdtest.Stopping, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var raw []string
	for _, m := range s.Messages() {
		raw = append(raw, m.Raw)
		if m.PID != os.Getpid() {
			t.Errorf("%v: sender pid %d, want %d", m, m.PID, os.Getpid())
		}
	}
	want := []string{"STATUS=starting", "READY=1", "WATCHDOG=1", "STATUS=2 tunnels up", "STOPPING=1"}
	if strings.Join(raw, "|") != strings.Join(want, "|") || stop.Seq != 5 {
		t.Fatalf("messages %q (stopping #%d), want %q", raw, stop.Seq, want)
	}
	// WaitAfter finds the next one of a kind, and times out when there is none.
	st, err := s.WaitAfter(sdtest.Status, 1, time.Second)
	if err != nil || st.Vars["STATUS"] != "2 tunnels up" {
		t.Fatalf("second status %v %v", st, err)
	}
	if _, err := s.WaitAfter(sdtest.Ready, 2, 50*time.Millisecond); err == nil {
		t.Fatal("a second READY was found")
	}
}

func TestWatchdogOff(t *testing.T) {
	s := sdtest.Listen(t)
	s.Setenv(t, 0)
	n := FromEnv(nil)
	n.Watchdog()
	n.Ready()
	if _, err := s.Wait(sdtest.Ready, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if c := s.Count(sdtest.Watchdog); c != 0 || n.WatchdogInterval() != 0 {
		t.Fatalf("%d pings, interval %v without a watchdog", c, n.WatchdogInterval())
	}
}

func TestWatchdogForAnotherPID(t *testing.T) {
	s := sdtest.Listen(t)
	s.Setenv(t, time.Second)
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	if wd := FromEnv(nil).WatchdogInterval(); wd != 0 {
		t.Fatalf("watchdog %v for another process", wd)
	}
}

func TestMalformedWatchdogIsLogged(t *testing.T) {
	s := sdtest.Listen(t)
	s.Setenv(t, 0)
	t.Setenv("WATCHDOG_USEC", "soon")
	var buf bytes.Buffer
	n := FromEnv(slog.New(slog.NewTextHandler(&buf, nil)))
	if n.WatchdogInterval() != 0 || !strings.Contains(buf.String(), "WATCHDOG_USEC") {
		t.Fatalf("interval %v, log %q", n.WatchdogInterval(), buf.String())
	}
}

func TestFailuresLoggedOncePerKindPerMinute(t *testing.T) {
	var buf testkit.LockedBuffer
	gone := filepath.Join(t.TempDir(), "no-such.sock")
	n := New(gone, 10*time.Second, slog.New(slog.NewTextHandler(&buf, nil)))
	now := time.Unix(1_700_000_000, 0)
	n.now = func() time.Time { return now }
	for range 5 {
		n.Watchdog()
		n.Ready()
	}
	lines := buf.Lines()
	if len(lines) != 2 || !strings.Contains(lines[0], "kind=WATCHDOG") || !strings.Contains(lines[1], "kind=READY") ||
		!strings.Contains(lines[0], "no-such.sock") || !strings.Contains(lines[0], "level=WARN") {
		t.Fatalf("log %q", lines)
	}
	now = now.Add(59 * time.Second)
	n.Watchdog()
	if got := len(buf.Lines()); got != 2 {
		t.Fatalf("%d lines within the minute", got)
	}
	now = now.Add(time.Second)
	n.Watchdog()
	lines = buf.Lines()
	if len(lines) != 3 || !strings.Contains(lines[2], "kind=WATCHDOG") || !strings.Contains(lines[2], "unlogged_since_last=5") {
		t.Fatalf("log after a minute %q", lines)
	}
}
