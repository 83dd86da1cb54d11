package vpn

import (
	"context"
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/portcullis-gw/portcullis/internal/testenv"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// sweepLinks fakes the devices of the workers but removes the stale ones
// for real (Netlink.RemoveStale).
type sweepLinks struct{ *fakeLinks }

func (s sweepLinks) RemoveStale(ctx context.Context, prefix string, stale func(uint32) bool) ([]string, error) {
	return Netlink{}.RemoveStale(ctx, prefix, stale)
}

// makeTun makes a persistent tun device owned by owner (removed at the
// test's end).
func makeTun(t *testing.T, name string, owner uint32) {
	t.Helper()
	la := netlink.NewLinkAttrs()
	la.Name = name
	tun := &netlink.Tuntap{LinkAttrs: la, Mode: netlink.TUNTAP_MODE_TUN, Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_ONE_QUEUE,
		Owner: owner, Group: owner}
	if err := netlink.LinkAdd(tun); err != nil {
		t.Fatalf("make %s: %v", name, err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(name); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
}

func hasLink(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

// sleepAs starts sleep under uid and gid; orphan: through a shell that
// exits at once, so that nothing alive started it (a crashed core's
// worker's), otherwise as the test's child (another core's worker).
func sleepAs(t *testing.T, uid uint32, orphan bool) int {
	t.Helper()
	attr := &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
	if !orphan {
		cmd := exec.Command("sleep", "120")
		cmd.SysProcAttr = attr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd.Process.Pid
	}
	cmd := exec.Command("sh", "-c", "sleep 120 </dev/null >/dev/null 2>&1 &")
	cmd.SysProcAttr = attr
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	var pid int
	testkit.WaitFor(t, 5*time.Second, 10*time.Millisecond, "the orphan sleep", func() bool {
		pids := pidsOf(t, uid)
		if len(pids) == 1 {
			pid = pids[0]
		}
		return pid != 0
	})
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

// At the first start the core kills the processes an earlier run left
// under the range's IDs (orphans) and removes the pcv… devices owned by an
// ID of the range under which nothing runs; another core's worker (a
// process with a live parent) and its device, devices of other owners and
// other names stay.
func TestFirstStartSweepsWhatAnEarlierRunLeft(t *testing.T) {
	testenv.NeedFile(t, "/dev/net/tun", "the tun driver")
	testenv.NeedBinary(t, "sleep", "coreutils")
	r := IDRange{First: 70120, Count: 4}
	o, links := ownIDsOptions(t, &logBuffer{}, r, "")
	o.Links = sweepLinks{links}
	makeTun(t, "pcvsweeptst0", 70121) // stale: removed
	makeTun(t, "pcvsweeptst1", 70122) // another core's worker's: kept
	makeTun(t, "pcvsweeptst2", 4242)  // not the workers': kept
	makeTun(t, "pcxsweeptst3", 70121) // not a worker's name: kept
	live := sleepAs(t, 70122, false)
	orphan := sleepAs(t, 70123, true)

	m := New(o)
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx, "0123456789abcdef01234567"); err != nil {
		t.Fatal(err)
	}
	var errs []error
	if alive(orphan) {
		errs = append(errs, errors.New("the orphan left under uid 70123 still runs"))
	}
	if !alive(live) {
		errs = append(errs, errors.New("the process with a live parent under uid 70122 was killed"))
	}
	if hasLink("pcvsweeptst0") {
		errs = append(errs, errors.New("the stale pcvsweeptst0 (owner 70121) is still there"))
	}
	for _, name := range []string{"pcvsweeptst1", "pcvsweeptst2", "pcxsweeptst3"} {
		if !hasLink(name) {
			errs = append(errs, errors.New(name+" was removed"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}
