package procguard

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

const childEnv = "PORTCULLIS_PROCGUARD_CHILD"

// TestMain runs the child half of TestSetNotDumpable: the flag is the
// process's, so the test sets it in a child rather than in itself.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		before, err1 := Dumpable()
		err2 := SetNotDumpable()
		after, err3 := Dumpable()
		if err := firstErr(err1, err2, err3); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		st, err := os.Stat("/proc/self/mem")
		owner := -1
		if err == nil {
			owner = int(st.Sys().(*syscall.Stat_t).Uid)
		}
		fmt.Printf("before=%v after=%v mem_owner=%d\n", before, after, owner)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// TestSetNotDumpable: a process that calls SetNotDumpable reads back 0, and
// the kernel gives its /proc files to root (which is what keeps another
// process of the same uid out of /proc/<pid>/mem).
func TestSetNotDumpable(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	got := strings.TrimSpace(string(out))
	if want := "before=true after=false mem_owner=0"; got != want {
		t.Fatalf("child reports %q, want %q", got, want)
	}
}
