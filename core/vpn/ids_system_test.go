package vpn

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procUID returns the real uid and gid of a process (/proc/<pid>/status).
func procUID(t *testing.T, pid int) (uid, gid uint32) {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || (f[0] != "Uid:" && f[0] != "Gid:") {
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil {
			t.Fatal(err)
		}
		if f[0] == "Uid:" {
			uid = uint32(n)
		} else {
			gid = uint32(n)
		}
	}
	return uid, gid
}

// TestManagerGivesEachWorkerItsOwnIDs: with the real allocation (no
// Options.Account), two fake workers run under distinct IDs of the range,
// their devices are made for those IDs, and a server keeps its ID across
// a restart and a stop and start.
func TestManagerGivesEachWorkerItsOwnIDs(t *testing.T) {
	o, links := ownIDsOptions(t, &logBuffer{}, IDRange{First: 69000, Count: 16}, "")
	m := New(o)
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	servers := []string{testServerID, otherServerID}
	ids := map[string]uint32{}
	for _, id := range servers {
		if err := m.Start(ctx, id); err != nil {
			t.Fatalf("start %s: %v", id, err)
		}
		st, _ := m.Status(id)
		uid, gid := procUID(t, st.PID)
		if uid != gid || !o.IDs.contains(uid) {
			t.Fatalf("%s runs as uid %d gid %d, not one ID of %s", id, uid, gid, o.IDs)
		}
		ids[id] = uid
		t.Logf("server %s: pid %d uid %d gid %d", id, st.PID, uid, gid)
	}
	if ids[servers[0]] == ids[servers[1]] {
		t.Fatalf("two workers share uid %d", ids[servers[0]])
	}
	for i, tun := range links.made {
		if uint32(tun.UID) != ids[servers[i]] || uint32(tun.GID) != ids[servers[i]] {
			t.Fatalf("device %d made for %d/%d, want %d", i, tun.UID, tun.GID, ids[servers[i]])
		}
	}
	if err := m.Restart(ctx, servers[0]); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(ctx, servers[1]); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, servers[1]); err != nil {
		t.Fatal(err)
	}
	for _, id := range servers {
		st, _ := m.Status(id)
		if uid, _ := procUID(t, st.PID); uid != ids[id] {
			t.Errorf("%s: uid %d after a restart, was %d", id, uid, ids[id])
		}
	}
}
