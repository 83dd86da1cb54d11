package netlab

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
)

// Runner is T for a program (a benchmark): Fatalf prints the message, runs
// the cleanups (last registered first) and exits with status 1; Skip does
// the same. SIGINT and SIGTERM end the program the same way, so what it
// made is removed however it ends. Defer Done in main.
type Runner struct {
	name     string
	ending   atomic.Bool // a Fatalf is running the cleanups
	mu       sync.Mutex
	cleanups []func()
}

// NewRunner returns a Runner whose messages start with name.
func NewRunner(name string) *Runner {
	r := &Runner{name: name}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		r.Fatalf("stopped by %v", s)
	}()
	return r
}

// Helper does nothing: a program has no call stack to trim.
func (r *Runner) Helper() {}

// Cleanup registers f to run when the program ends (Done or Fatalf).
func (r *Runner) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

// Skip ends the program as Fatalf does: a benchmark that cannot run fails.
func (r *Runner) Skip(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

// Fatalf prints the message, runs the cleanups and exits with status 1.
// Once one Fatalf is under way, a later one (a goroutine whose processes
// the cleanups just stopped) prints nothing and ends its goroutine, as
// testing.T.FailNow does; so cleanups must not call Fatalf.
func (r *Runner) Fatalf(format string, args ...any) {
	if r.ending.Swap(true) {
		runtime.Goexit()
	}
	fmt.Fprintf(os.Stderr, r.name+": "+format+"\n", args...)
	r.Done()
	os.Exit(1)
}

// Done runs the cleanups registered so far, last first, once each.
func (r *Runner) Done() {
	for {
		r.mu.Lock()
		n := len(r.cleanups)
		if n == 0 {
			r.mu.Unlock()
			return
		}
		f := r.cleanups[n-1]
		r.cleanups = r.cleanups[:n-1]
		r.mu.Unlock()
		f()
	}
}
