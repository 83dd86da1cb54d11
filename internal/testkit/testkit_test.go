package testkit

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fatalTB records a Fatalf and ends the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls fn with a fatalTB in a goroutine of its own and returns the
// failure message ("" when fn returned).
func run(fn func(t testing.TB)) string {
	f := &fatalTB{}
	var wg sync.WaitGroup
	wg.Go(func() { fn(f) })
	wg.Wait()
	return f.msg
}

func TestWaitForReturnsOnceTheConditionHolds(t *testing.T) {
	n := 0
	msg := run(func(tb testing.TB) {
		WaitFor(tb, 10*time.Second, time.Millisecond, "three calls", func() bool { n++; return n == 3 })
	})
	if msg != "" || n != 3 {
		t.Fatalf("failure %q after %d calls, want none after 3", msg, n)
	}
}

func TestWaitForIsBounded(t *testing.T) {
	start := time.Now()
	msg := run(func(tb testing.TB) {
		WaitFor(tb, 30*time.Millisecond, time.Millisecond, "never", func() bool { return false })
	})
	if msg != "never: not within 30ms" {
		t.Fatalf("failure %q", msg)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("gave up after %v", d)
	}
}

func TestEventuallyNamesTheLastError(t *testing.T) {
	n := 0
	msg := run(func(tb testing.TB) {
		Eventually(tb, 30*time.Millisecond, time.Millisecond, "the check", func() error { n++; return fmt.Errorf("try %d", n) })
	})
	if want := fmt.Sprintf("the check: not within 30ms: try %d", n); msg != want {
		t.Fatalf("failure %q, want %q", msg, want)
	}
	if msg := run(func(tb testing.TB) {
		Eventually(tb, time.Second, time.Millisecond, "nil", func() error { return nil })
	}); msg != "" {
		t.Fatalf("failure %q for a check that holds", msg)
	}
}

func TestLockedBuffer(t *testing.T) {
	var b LockedBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { fmt.Fprintln(&b, "line") })
	}
	wg.Wait()
	if got := b.Lines(); len(got) != 8 || got[7] != "line" {
		t.Fatalf("lines %q", got)
	}

	// With a Limit, a write past it keeps the last quarter.
	l := LockedBuffer{Limit: 8}
	l.Write([]byte("abcdefghij")) // 10 > 8 held after this write
	l.Write([]byte("X"))          // drops all but "ij"
	if got := l.String(); got != "ijX" {
		t.Fatalf("limited buffer %q, want ijX", got)
	}
	if !strings.HasSuffix(l.String(), "X") {
		t.Fatal("the new write was dropped")
	}
}
