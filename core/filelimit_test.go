package core

import (
	"syscall"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// TestRaiseFileLimitForTheFront (issue 9, item 5): when the hard
// RLIMIT_NOFILE is below what the front needs for web.max_connections, the
// core (root) raises it before starting the front, which inherits it; a
// limit already high enough is left alone.
func TestRaiseFileLimitForTheFront(t *testing.T) {
	testenv.NeedRoot(t, "to lower and raise the hard RLIMIT_NOFILE")
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	low := syscall.Rlimit{Cur: 1000, Max: 1000}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	raiseFileLimit(5000, nil)
	var got syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &got)
	if got.Max <= 5000 || got.Cur <= 5000 {
		t.Fatalf("limit %+v after raising for 5000", got)
	}
	high := syscall.Rlimit{Cur: 9000, Max: 9000}
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &high)
	raiseFileLimit(5000, nil)
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &got)
	if got != high {
		t.Fatalf("limit %+v, want %+v left alone", got, high)
	}
}
