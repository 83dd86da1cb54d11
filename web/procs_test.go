package web

import "testing"

// TestProcs: GOMAXPROCS in the environment wins, then web.gomaxprocs, then
// half of what Go would use, at least one.
func TestProcs(t *testing.T) {
	for _, tc := range []struct {
		configured, goDefault int
		inEnv                 bool
		want                  int
		from                  string
	}{
		{0, 1, false, 1, "half of the 1 CPUs Go would use"},
		{0, 2, false, 1, "half of the 2 CPUs Go would use"},
		{0, 3, false, 1, "half of the 3 CPUs Go would use"},
		{0, 16, false, 8, "half of the 16 CPUs Go would use"},
		{6, 16, false, 6, "web.gomaxprocs"},
		{6, 2, false, 6, "web.gomaxprocs"},
		{6, 4, true, 4, "GOMAXPROCS in the environment"},
		{0, 4, true, 4, "GOMAXPROCS in the environment"},
	} {
		n, from := Procs(tc.configured, tc.goDefault, tc.inEnv)
		if n != tc.want || from != tc.from {
			t.Errorf("Procs(%d, %d, %v) = %d, %q; want %d, %q", tc.configured, tc.goDefault, tc.inEnv, n, from, tc.want, tc.from)
		}
	}
}
