package web

import "testing"

// TestProcs: a GOMAXPROCS the runtime takes wins, then web.gomaxprocs, then
// half of what Go uses, at least one. A GOMAXPROCS the runtime ignores is
// ignored.
func TestProcs(t *testing.T) {
	for _, tc := range []struct {
		configured, goDefault int
		env                   string
		want                  int
		from                  string
	}{
		{0, 1, "", 1, "half of the 1 CPUs Go would use"},
		{0, 2, "", 1, "half of the 2 CPUs Go would use"},
		{0, 3, "", 1, "half of the 3 CPUs Go would use"},
		{0, 16, "", 8, "half of the 16 CPUs Go would use"},
		{6, 16, "", 6, "web.gomaxprocs"},
		{6, 2, "", 6, "web.gomaxprocs"},
		{6, 4, "4", 4, ProcsFromEnv},
		{0, 4, "4", 4, ProcsFromEnv},
		{0, 4, "+4", 4, ProcsFromEnv},
		// Ignored by the runtime, which then uses its default.
		{0, 4, "0", 2, "half of the 4 CPUs Go would use"},
		{0, 4, "-3", 2, "half of the 4 CPUs Go would use"},
		{0, 4, " 4", 2, "half of the 4 CPUs Go would use"},
		{0, 4, "four", 2, "half of the 4 CPUs Go would use"},
		{5, 4, "4294967297", 5, "web.gomaxprocs"},
	} {
		n, from, set := Procs(tc.configured, tc.goDefault, tc.env)
		if n != tc.want || from != tc.from || set != (tc.from != ProcsFromEnv) {
			t.Errorf("Procs(%d, %d, %q) = %d, %q, %v; want %d, %q", tc.configured, tc.goDefault, tc.env, n, from, set, tc.want, tc.from)
		}
	}
}
