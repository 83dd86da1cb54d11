package vpn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/testenv"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// The ranges of these tests are outside DefaultIDRange, which the core's
// and the end-to-end tests' workers use (the first start's sweep of one
// would otherwise meet the other's, run at the same time).

// ownIDsOptions are fakeOpenVPNOptions with the real allocation of the
// workers' IDs over r: the fake openvpn is a copy of this binary in a
// directory anyone may enter (the workers' uids run it), started by a
// script that runs pre first.
func ownIDsOptions(t *testing.T, logs io.Writer, r IDRange, pre string) (Options, *fakeLinks) {
	t.Helper()
	testenv.NeedRoot(t, "to start workers under their own uids")
	testenv.System(t, "workers under their own uids")
	o := fakeOpenVPNOptions(t, logs)
	dir, err := os.MkdirTemp("", "portcullis-vpn-reap-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	self, err := os.ReadFile(os.Args[0])
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "vpn.test"), self, 0o755)
	}
	if err == nil {
		err = workerFake(t).WriteScript(filepath.Join(dir, "openvpn.fake"), filepath.Join(dir, "vpn.test"))
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "openvpn"), []byte("#!/bin/sh\n"+pre+"exec "+dir+"/openvpn.fake \"$@\"\n"), 0o755)
	}
	if err := errors.Join(err, os.Chmod(dir, 0o755)); err != nil {
		t.Fatal(err)
	}
	links := &fakeLinks{}
	o.OpenVPN, o.Links, o.Account, o.User, o.IDs = filepath.Join(dir, "openvpn"), links, Account{}, DefaultUser, r
	return o, links
}

// alive says whether the process runs (a zombie does not).
func alive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	return err == nil && !parseProcStatus(pid, string(raw)).dead
}

// pidsOf lists the live processes under id (uid or gid).
func pidsOf(t *testing.T, id uint32) []int {
	t.Helper()
	found, err := procsOf(func(n uint32) bool { return n == id })
	if err != nil {
		t.Fatal(err)
	}
	return found[id]
}

// A worker whose openvpn leaves a process behind (forks, setsid): the
// process is killed before the worker's ID goes to another server (one ID
// in the range: the next server gets the same).
func TestLeftoverProcessesAreKilledBeforeTheIDMoves(t *testing.T) {
	testenv.NeedBinary(t, "setsid", "util-linux")
	const uid = 70100
	m, ctx := oneIDStarted(t, uid, &logBuffer{}, "setsid sleep 120 </dev/null >/dev/null 2>&1 &\n")
	stA, _ := m.Status(serverA)
	var left []int
	testkit.WaitFor(t, 10*time.Second, 10*time.Millisecond, "the process worker A leaves", func() bool {
		left = slices.DeleteFunc(pidsOf(t, uid), func(pid int) bool { return pid == stA.PID })
		return len(left) > 0
	})
	t.Cleanup(func() {
		for _, pid := range left {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
	})
	if err := m.Stop(ctx, serverA); err != nil {
		t.Fatal(err)
	}
	for _, pid := range left {
		if alive(pid) {
			t.Errorf("process %d that worker A left still runs under uid %d after A's stop", pid, uid)
		}
	}
	if err := m.Start(ctx, serverB); err != nil {
		t.Fatal(err)
	}
	stB, _ := m.Status(serverB)
	if got, _ := procUID(t, stB.PID); got != uid {
		t.Fatalf("worker B runs as %d, want %d (the range's one ID)", got, uid)
	}
	for _, pid := range pidsOf(t, uid) {
		if slices.Contains(left, pid) {
			t.Fatalf("worker B's uid %d is shared with process %d worker A left", uid, pid)
		}
	}
}

// An ID under which a process survives the killing is never given out
// again (until the core restarts), and the log names the uid and the pid.
// The survivor is a process /proc shows that no signal reaches: a status
// in a /proc of the test's, with a pid beyond the kernel's.
func TestAnIDWhoseProcessesSurviveIsNotReused(t *testing.T) {
	const uid = 70110
	logs := &logBuffer{}
	m, ctx := oneIDStarted(t, uid, logs, "")
	fake := t.TempDir()
	const ghost = "2147483646"
	status := fmt.Sprintf("Name:\tsleep\nState:\tS (sleeping)\nPPid:\t1\nThreads:\t1\nUid:\t%d\t%d\t%d\t%d\nGid:\t%d\t%d\t%d\t%d\n",
		uid, uid, uid, uid, uid, uid, uid, uid)
	if err := os.Mkdir(filepath.Join(fake, ghost), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fake, ghost, "status"), []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	old := procRoot
	procRoot = fake
	t.Cleanup(func() { procRoot = old })
	if err := m.Stop(ctx, serverA); err != nil {
		t.Fatal(err)
	}
	err := m.Start(ctx, serverB)
	if !errors.Is(err, ErrIDs) {
		st, _ := m.Status(serverB)
		t.Fatalf("server B started (%v, pid %d) with the range's one ID, under which a process of A's survived", err, st.PID)
	}
	t.Logf("start of B: %v", err)
	procRoot = old
	if err := m.Start(ctx, serverB); !errors.Is(err, ErrIDs) {
		t.Fatalf("the quarantined ID was given out again once its process was gone (%v): it stays out until the core restarts", err)
	}
	if s := logs.String(); !strings.Contains(s, "quarantined") || !strings.Contains(s, fmt.Sprintf("uid=%d", uid)) || !strings.Contains(s, ghost) {
		t.Errorf("the log does not name the quarantined uid and its process:\n%s", s)
	}
}

// The two servers of the one-ID tests: serverA starts first, serverB
// takes its ID.
const serverA, serverB = "aaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbb"

// oneIDStarted returns a manager whose range is the one ID uid (closed
// with the test), with server a started under it, and a context that ends
// with the test or after 30 s; pre is shell run before the fake openvpn
// (ownIDsOptions).
func oneIDStarted(t *testing.T, uid uint32, logs io.Writer, pre string) (*Manager, context.Context) {
	t.Helper()
	o, _ := ownIDsOptions(t, logs, IDRange{First: uid, Count: 1}, pre)
	m := New(o)
	t.Cleanup(m.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if err := m.Start(ctx, serverA); err != nil {
		t.Fatal(err)
	}
	return m, ctx
}
