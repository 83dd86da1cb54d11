package vpn

import (
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// TestIDWithARunningProcessIsTaken: an ID of the range under which a
// process already runs (another core's worker on the host, a service given
// a numeric uid of the range) is not given to a worker, which would share
// its uid; once nothing runs under it, it is.
func TestIDWithARunningProcessIsTaken(t *testing.T) {
	testenv.NeedRoot(t, "to run a process under another uid")
	const id = 70021
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: id, Gid: id}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	s := newIDs(IDRange{First: id, Count: 1})
	if got, err := s.acquire(testServerID); !errors.Is(err, ErrIDs) {
		t.Fatalf("acquire with a process under %d: %d, %v", id, got, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := s.acquire(testServerID)
		if err == nil && got == id {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("acquire once nothing runs under %d: %d, %v", id, got, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
