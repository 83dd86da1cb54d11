package core

import (
	"bytes"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// hasCapSysResource reports whether this process may raise its hard
// limits (containers often drop CAP_SYS_RESOURCE, even for root).
func hasCapSysResource() bool {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(st), "CapEff:")
	eff, err := strconv.ParseUint(strings.TrimSpace(strings.SplitN(rest, "\n", 2)[0]), 16, 64)
	return err == nil && eff&(1<<24) != 0
}

// TestRaiseFileLimitForTheFront (issue 9, item 5): the front inherits the
// core's RLIMIT_NOFILE. A hard limit above what the front needs for
// web.max_connections is left alone; one below it is raised when the core
// may (CAP_SYS_RESOURCE), else the core warns, naming LimitNOFILE.
func TestRaiseFileLimitForTheFront(t *testing.T) {
	var orig, got syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	raiseFileLimit(orig.Max-1, log)
	if _ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &got); got != orig || logs.Len() != 0 {
		t.Fatalf("limit %+v (was %+v), log %q: a high enough limit was touched", got, orig, logs.String())
	}

	if !hasCapSysResource() {
		raiseFileLimit(orig.Max+10, log)
		if _ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &got); got != orig || !strings.Contains(logs.String(), "LimitNOFILE") {
			t.Fatalf("limit %+v (was %+v), log %q: want it unchanged and a warning", got, orig, logs.String())
		}
		t.Logf("raising not checked: this process lacks CAP_SYS_RESOURCE (the warning was checked)")
		return
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	low := syscall.Rlimit{Cur: 1000, Max: 1000}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	raiseFileLimit(5000, log)
	if _ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &got); got.Max <= 5000 || got.Cur <= 5000 {
		t.Fatalf("limit %+v after raising for 5000: %s", got, logs.String())
	}
}
