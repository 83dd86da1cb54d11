package vpn

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeTaken says the IDs in set have a passwd or group entry.
func fakeTaken(set ...uint32) func(uint32) (bool, error) {
	return func(id uint32) (bool, error) {
		for _, s := range set {
			if s == id {
				return true, nil
			}
		}
		return false, nil
	}
}

func serverIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%024x", 0x5f00aa00+i*7919)
	}
	return out
}

func TestIDsDistinctAndStableAcrossRestarts(t *testing.T) {
	r := IDRange{First: 70000, Count: 64}
	servers := serverIDs(40) // enough for collisions among preferred IDs
	first := newIDs(r)
	first.taken = fakeTaken()
	got := map[string]uint32{}
	seen := map[uint32]string{}
	for _, s := range servers {
		id, err := first.acquire(s)
		if err != nil {
			t.Fatal(err)
		}
		if id == 0 || !r.contains(id) {
			t.Fatalf("%s got %d, outside %s", s, id, r)
		}
		if other, ok := seen[id]; ok {
			t.Fatalf("%s and %s share %d", s, other, id)
		}
		seen[id], got[s] = s, id
	}
	// A new core (a new allocator) starting the same servers in the same
	// order gives each the same ID; one that did not collide keeps its
	// ID whatever the order.
	again := newIDs(r)
	again.taken = fakeTaken()
	for _, s := range servers {
		if id, _ := again.acquire(s); id != got[s] {
			t.Errorf("%s: %d after a restart, was %d", s, id, got[s])
		}
	}
	// Servers whose preferred IDs differ get them in any order.
	distinct := map[uint32]string{}
	for _, s := range serverIDs(10) {
		distinct[newIDs(DefaultIDRange).preferred(s)] = s
	}
	for _, order := range [][]string{sortedValues(distinct, false), sortedValues(distinct, true)} {
		a := newIDs(DefaultIDRange)
		a.taken = fakeTaken()
		for _, s := range order {
			if id, _ := a.acquire(s); id != a.preferred(s) {
				t.Errorf("%s: %d, not its preferred %d", s, id, a.preferred(s))
			}
		}
	}
	// Released and acquired again: the same ID.
	s := servers[0]
	first.release(got[s])
	if id, _ := first.acquire(s); id != got[s] {
		t.Errorf("%s: %d after release, was %d", s, id, got[s])
	}
}

// sortedValues returns m's values by key, descending when rev.
func sortedValues(m map[uint32]string, rev bool) []string {
	keys := slices.Sorted(maps.Keys(m))
	if rev {
		slices.Reverse(keys)
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, m[k])
	}
	return out
}

func TestIDsCollisionMovesToTheNextFree(t *testing.T) {
	r := IDRange{First: 70000, Count: 4}
	a := newIDs(r)
	a.taken = fakeTaken()
	var x, y string
	servers := serverIDs(20)
	for i := 0; x == "" && i < len(servers); i++ {
		for j := i + 1; j < len(servers); j++ {
			if a.preferred(servers[i]) == a.preferred(servers[j]) {
				x, y = servers[i], servers[j]
				break
			}
		}
	}
	if x == "" {
		t.Fatal("no two servers collide in a range of 4")
	}
	idx, _ := a.acquire(x)
	idy, _ := a.acquire(y)
	if idx != a.preferred(x) || idy == idx || idy != r.First+(idx-r.First+1)%r.Count {
		t.Fatalf("collision: %s got %d, %s got %d (preferred %d)", x, idx, y, idy, a.preferred(x))
	}
}

func TestIDsSkipExistingAccountsAndRefuseWhenExhausted(t *testing.T) {
	r := IDRange{First: 70000, Count: 3}
	a := newIDs(r)
	s := serverIDs(4)
	a.taken = fakeTaken(a.preferred(s[0]))
	id, err := a.acquire(s[0])
	if err != nil || id == a.preferred(s[0]) {
		t.Fatalf("an ID with a passwd or group entry was given: %d %v", id, err)
	}
	if _, err := a.acquire(s[1]); err != nil {
		t.Fatal(err)
	}
	_, err = a.acquire(s[2]) // 3 IDs: one taken by an account, two held
	if !errors.Is(err, ErrIDs) || !strings.Contains(err.Error(), "all 3 IDs of 70000-70002") {
		t.Fatalf("exhausted range: %v", err)
	}
	a.taken = func(uint32) (bool, error) { return false, errors.New("nss down") }
	if _, err := a.acquire(s[3]); !errors.Is(err, ErrIDs) || !strings.Contains(err.Error(), "nss down") {
		t.Fatalf("a failed lookup: %v", err)
	}
}

// TestLookupTaken: the real lookup sees root (uid and gid 0) and the base
// account, and not the default range's first ID (which must be free on a
// machine the tests run on).
func TestLookupTaken(t *testing.T) {
	if taken, err := lookupTaken(0); err != nil || !taken {
		t.Fatalf("uid 0: %v %v", taken, err)
	}
	if taken, err := lookupTaken(DefaultIDRange.First); err != nil || taken {
		t.Fatalf("%d: %v %v", DefaultIDRange.First, taken, err)
	}
}

func TestIDRangeValidate(t *testing.T) {
	base := Account{Name: "portcullis-vpn", UID: 999, GID: 995}
	if err := DefaultIDRange.validate(base); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []IDRange{
		{}, {First: 0, Count: 10}, {First: 65530, Count: 10}, {First: 65535, Count: 1},
		{First: 990, Count: 20}, {First: 995, Count: 1}, {First: 1<<32 - 10, Count: 10}, {First: 1<<32 - 1, Count: 2},
	} {
		if err := bad.validate(base); !errors.Is(err, ErrIDs) {
			t.Errorf("%+v accepted: %v", bad, err)
		}
	}
	dir := t.TempDir()
	sub := filepath.Join(dir, "subuid")
	if err := os.WriteFile(sub, []byte("# x\nalice:100000:65536\nbob:69000:10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := DefaultIDRange.checkSubordinate(sub, filepath.Join(dir, "missing")); !errors.Is(err, ErrIDs) || !strings.Contains(err.Error(), "bob's 69000-69009") {
		t.Fatalf("overlap with a subordinate range: %v", err)
	}
	if err := (IDRange{First: 80000, Count: 20000}).checkSubordinate(sub); err != nil {
		t.Fatalf("no overlap: %v", err)
	}
	if err := (IDRange{First: 80000, Count: 20001}).checkSubordinate(sub); err == nil {
		t.Fatal("overlap by one accepted")
	}
	if _, err := workerIDs(IDRange{}, base); err != nil {
		t.Fatalf("the default range on this machine: %v", err)
	}
}
