package dynfw

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// TestGrantKeys: a grant yields one key per address of its approval, in
// order, the first held inline and the rest in more; IPv4 in its mapped
// form, so both forms of one address are one key.
func TestGrantKeys(t *testing.T) {
	l := newUserLimits(4, 10, nil)
	now := time.Now()
	addrs := []netip.Addr{netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("2001:db8::7"), netip.MustParseAddr("::ffff:198.51.100.9")}
	for n := 0; n <= len(addrs); n++ {
		ap := &Approval{Token: "t", UserID: "u", ServerID: "s", Protocol: "tcp", Port: 443, Addrs: addrs[:n], Created: now, Expires: now.Add(time.Minute)}
		var got []string
		g := l.grantOf(ap)
		g.eachKey(func(k [keyLen]byte) {
			a := netip.AddrFrom16([16]byte(k[:16])).Unmap()
			got = append(got, fmt.Sprintf("%s/%d/%d", a, k[16], int(k[17])<<8|int(k[18])))
		})
		want := []string{"192.0.2.7/6/443", "2001:db8::7/6/443", "198.51.100.9/6/443"}[:n]
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%d addresses: keys %v, want %v", n, got, want)
		}
	}
}

// TestGrantTokens: release, observe and revoked name a grant by its
// approval's token: each touches that grant and no other, also of the
// same user.
func TestGrantTokens(t *testing.T) {
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, now := context.Background(), time.Now()
	l := newUserLimits(10, 10, nil)
	ap := func(tok string, last byte) *Approval {
		return &Approval{Token: tok, UserID: "u", ServerID: "s", Protocol: "udp", Port: 1194,
			Addrs: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, last})}, Created: now, Expires: now.Add(time.Minute)}
	}
	for i, tok := range []string{"alpha", "bravo", "charlie"} {
		if reason, err := l.reserve(ctx, st, ap(tok, byte(i+1)), now); err != nil || reason != "" {
			t.Fatalf("reserve %s: %q, %v", tok, reason, err)
		}
	}
	count := func() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.users["u"]) }
	l.observe(ap("bravo", 2), now)
	if n := count(); n != 3 {
		t.Fatalf("after observing a counted approval: %d grants, want 3", n)
	}
	l.release("u", "bravo")
	if n := count(); n != 2 {
		t.Fatalf("after release: %d grants, want 2", n)
	}
	l.release("someone-else", "alpha")
	l.revoked("delta", now)
	if n := count(); n != 2 {
		t.Fatalf("after releasing another user's token and revoking an unknown one: %d grants, want 2", n)
	}
	l.revoked("alpha", now)
	if n := count(); n != 1 {
		t.Fatalf("after revoked: %d grants, want 1", n)
	}
	l.observe(ap("echo", 5), now)
	if n := count(); n != 2 {
		t.Fatalf("after observing a new approval: %d grants, want 2", n)
	}
}

// TestGrantMemory: the limits' grants of 20,000 stored approvals take
// under 100 B each on the heap, once loaded (137 B before the grant was
// made compact, 230 before that). The heap is measured in a process of
// its own (this test binary run again for this test alone): goroutines
// other tests leave behind allocate meanwhile.
func TestGrantMemory(t *testing.T) {
	if os.Getenv(grantMemoryChild) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestGrantMemory$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), grantMemoryChild+"=1")
		out, err := cmd.CombinedOutput()
		// Only the figure and the failure are passed on: the child's own
		// "--- PASS" lines would read as subtests in test2json.
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "B each on the heap") || strings.Contains(line, "want 1–99") {
				t.Log("measured in a process of its own:", strings.TrimSpace(line))
			}
		}
		if err != nil {
			t.Fatalf("the measuring process: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "B each on the heap") {
			t.Fatal("the measuring process printed no figure")
		}
		return
	}
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, now := context.Background(), time.Now()
	const n, perUser = 20_000, 10
	if err := st.Update(ctx, func(tx store.Tx) error {
		for i := range n {
			a := &Approval{Token: fmt.Sprintf("%032d", i), OrgID: "org", UserID: fmt.Sprintf("user%020d", i/perUser),
				ServerID: "server00000000000000", Protocol: "udp", Port: 1194,
				Addrs:   []netip.Addr{netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})},
				Created: now, Expires: now.Add(3 * time.Minute)}
			if err := InsertApproval(tx, a, now); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var loaded, freed runtime.MemStats
	l := newUserLimits(perUser, perUser, nil)
	l.mu.Lock()
	err = l.load(ctx, st, now)
	l.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	// Two collections before each reading: what survives one (sync.Pool's
	// victim caches, bbolt's page buffers of the seeding's commit among
	// them: 13.5 MiB) is gone after the second.
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&loaded)
	users := len(l.users)
	l = nil
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&freed)
	per := (int64(loaded.HeapAlloc) - int64(freed.HeapAlloc)) / n
	t.Logf("%d approvals of %d users: %d B each on the heap", n, users, per)
	if users != n/perUser {
		t.Fatalf("%d users loaded, want %d", users, n/perUser)
	}
	if per <= 0 || per >= 100 {
		t.Fatalf("%d B per approval, want 1–99", per)
	}
}

// grantMemoryChild marks the process TestGrantMemory measures in.
const grantMemoryChild = "PORTCULLIS_GRANT_MEMORY_CHILD"

// eachKey calls fn with each element key of g, duplicates included (the
// tests' view of what addKeys adds).
func (g *grant) eachKey(fn func(k [keyLen]byte)) {
	if g.n == 0 {
		return
	}
	fn(g.first)
	for i := 0; i+keyLen <= len(g.more); i += keyLen {
		fn([keyLen]byte([]byte(g.more[i : i+keyLen])))
	}
}
