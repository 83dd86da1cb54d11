package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core"
	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/internal/procstat"
	"github.com/portcullis-gw/portcullis/internal/testenv"
	"golang.org/x/sys/unix"
)

// probeEnv makes the test binary a helper that tries to open each of the
// paths in it (one a line) and prints, for each, "<path>: ok" or the
// error; a path starting with "unlink " is removed instead.
const probeEnv = "PORTCULLIS_E2E_PROBE"

// probeHelper runs under a worker's credentials: it sets no_new_privs
// first (as the core does for the workers), reports its own privileges,
// then tries every path.
func probeHelper() int {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Println("no_new_privs:", err)
		return 1
	}
	if raw, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if k, _, _ := strings.Cut(l, ":"); k == "Uid" || k == "Gid" || k == "Groups" || k == "CapEff" || k == "CapPrm" || k == "NoNewPrivs" {
				fmt.Println("self", strings.Join(strings.Fields(l), " "))
			}
		}
	}
	for _, p := range strings.Split(os.Getenv(probeEnv), "\n") {
		if name, ok := strings.CutPrefix(p, "unlink "); ok {
			fmt.Printf("%s: %s\n", p, errText(os.Remove(name)))
			continue
		}
		f, err := os.Open(p)
		if err == nil {
			if fi, serr := f.Stat(); serr == nil && fi.IsDir() {
				_, err = f.Readdirnames(-1)
			} else if !strings.HasSuffix(p, "/mem") { // mem: offset 0 is not mapped, the open is what counts
				_, err = f.Read(make([]byte, 16))
			}
			f.Close()
		}
		fmt.Printf("%s: %s\n", p, errText(err))
	}
	return 0
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// sameIDs returns the one ID of a /proc/<pid>/status Uid or Gid line, which
// must all be the same.
func sameIDs(t *testing.T, what, line string) int {
	t.Helper()
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != f[1] || f[0] != f[2] || f[0] != f[3] {
		t.Fatalf("%s: real, effective, saved and fs IDs differ: %q", what, line)
	}
	id, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestVPNWorkersAreIsolatedFromEachOther: two started servers' workers run
// under distinct non-root uids and gids with no capability and no
// supplementary group, their tun devices and directories belong to them
// alone; a process with worker 1's credentials (uid, gid, no groups, no
// capabilities, no_new_privs) can open worker 1's /proc/<pid>/mem,
// environ, fd/4 (its directory) and its directory, and none of worker 2's,
// nor remove worker 2's management socket.
func TestVPNWorkersAreIsolatedFromEachOther(t *testing.T) {
	testenv.NeedRoot(t, "the workers run as their own uids only when the core is root")
	l := newVPNLab(t)
	var st [2]api.ServerStatus
	ids := [2]string{l.s1.ID, l.s2.ID}
	for i, id := range ids {
		l.server("start", id, &st[i])
		if !st[i].Running || st[i].PID == 0 {
			t.Fatalf("start %s: %+v", id, st[i])
		}
	}
	base, err := user.Lookup(vpn.DefaultUser)
	if err != nil {
		t.Fatal(err)
	}
	var uid, gid [2]int
	for i := range st {
		ps, err := procstat.Status(st[i].PID)
		if err != nil {
			t.Fatal(err)
		}
		uid[i], gid[i] = sameIDs(t, "Uid", ps["Uid"]), sameIDs(t, "Gid", ps["Gid"])
		if uid[i] == 0 || gid[i] == 0 || strconv.Itoa(uid[i]) == base.Uid || strconv.Itoa(gid[i]) == base.Gid ||
			uid[i] == 65534 || gid[i] == 65534 {
			t.Fatalf("worker %d runs as uid %d gid %d (root, nobody or %s)", i+1, uid[i], gid[i], vpn.DefaultUser)
		}
		if ps["CapEff"] != "0000000000000000" || ps["CapPrm"] != "0000000000000000" || ps["NoNewPrivs"] != "1" || ps["Groups"] != "" {
			t.Fatalf("worker %d: CapEff %s CapPrm %s NoNewPrivs %s Groups %q", i+1, ps["CapEff"], ps["CapPrm"], ps["NoNewPrivs"], ps["Groups"])
		}
		// The core's timer slack, inherited: the kernel's rule, kept
		// through the core's start of the worker under its own uid.
		slack, err := procstat.TimerSlack(st[i].PID)
		if err != nil || len(slack) == 0 {
			t.Fatalf("worker %d's timer slack: %v (%d threads)", i+1, err, len(slack))
		}
		for tid, s := range slack {
			if s != l.slack {
				t.Errorf("worker %d's thread %d: timer slack %v, want the core's %v", i+1, tid, s, l.slack)
			}
		}
		if _, err := user.LookupId(strconv.Itoa(uid[i])); err == nil {
			t.Errorf("worker %d's uid %d has a passwd entry", i+1, uid[i])
		}
		t.Logf("worker %d (server %s, pid %d): Uid %s Gid %s Groups %q CapEff %s CapBnd %s NoNewPrivs %s",
			i+1, ids[i], st[i].PID, ps["Uid"], ps["Gid"], ps["Groups"], ps["CapEff"], ps["CapBnd"], ps["NoNewPrivs"])
		dev := l.gw.MustIP("-d", "link", "show", vpn.DeviceName(ids[i]))
		if want := fmt.Sprintf("user %d group %d", uid[i], gid[i]); !strings.Contains(dev, want) {
			t.Fatalf("worker %d's device is not %s: %s", i+1, want, dev)
		}
		dir := filepath.Join(l.g.RuntimeDir, core.WorkerDirName, ids[i])
		for name, mode := range map[string]os.FileMode{dir: 0o770, filepath.Join(dir, vpn.CRLFileName): 0o640} {
			fi, err := os.Stat(name)
			if err != nil {
				t.Fatal(err)
			}
			if s, ok := fi.Sys().(*syscall.Stat_t); !ok || s.Uid != 0 || int(s.Gid) != gid[i] || fi.Mode().Perm() != mode {
				t.Fatalf("%s: %v %+v, want root, group %d, %v", name, fi.Mode(), fi.Sys(), gid[i], mode)
			}
		}
	}
	if uid[0] == uid[1] || gid[0] == gid[1] {
		t.Fatalf("the workers share an ID: uids %v gids %v", uid, gid)
	}

	// The workers' base directory is the core's, 0700: no worker reaches
	// any directory by name. To see what the directories' own permissions
	// do, the probe gets the base directory as fd 3 and search permission
	// on it for its duration.
	baseDir := filepath.Join(l.g.RuntimeDir, core.WorkerDirName)
	bd, err := os.Open(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	defer bd.Close()
	if err := os.Chmod(baseDir, 0o711); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.Chmod(baseDir, 0o700) }()
	paths := func(i int) []string {
		p := fmt.Sprintf("/proc/%d/", st[i].PID)
		d := "/proc/self/fd/3/" + ids[i]
		return []string{p + "mem", p + "environ", p + "fd/4", p + "fd/4/" + vpn.CRLFileName, d, d + "/" + vpn.CRLFileName}
	}
	probe := append(append(paths(0), paths(1)...), "unlink /proc/self/fd/3/"+ids[1]+"/"+vpn.MgmtSocketName)
	cmd := exec.Command(filepath.Join(binDir, "e2e-helper"))
	cmd.Env = append(os.Environ(), probeEnv+"="+strings.Join(probe, "\n"))
	cmd.ExtraFiles = []*os.File{bd}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid[0]), Gid: uint32(gid[0]), Groups: []uint32{}}}
	raw, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, raw)
	}
	out := string(raw)
	t.Logf("a process with worker 1's credentials:\n%s", out)
	self := fmt.Sprintf("self Uid: %d %d %d %d\n", uid[0], uid[0], uid[0], uid[0])
	if !strings.Contains(out, self) || !strings.Contains(out, "self CapEff: 0000000000000000\n") ||
		!strings.Contains(out, "self NoNewPrivs: 1\n") || !strings.Contains(out, "self Groups:\n") {
		t.Fatalf("the probe does not run with worker 1's credentials only:\n%s", out)
	}
	res := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if p, r, ok := strings.Cut(line, ": "); ok {
			res[p] = r
		}
	}
	for _, p := range paths(0) {
		if res[p] != "ok" {
			t.Errorf("worker 1's credentials cannot open worker 1's %s (%s): the probe proves nothing", p, res[p])
		}
	}
	for _, p := range append(paths(1), "unlink /proc/self/fd/3/"+ids[1]+"/"+vpn.MgmtSocketName) {
		if !strings.HasSuffix(res[p], "permission denied") {
			t.Errorf("worker 1's credentials reach worker 2's %s: %q", p, res[p])
		}
	}
	if _, err := os.Stat(filepath.Join(baseDir, ids[1], vpn.MgmtSocketName)); err != nil {
		t.Fatalf("worker 2's management socket: %v", err)
	}
}
