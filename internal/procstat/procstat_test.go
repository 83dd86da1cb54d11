package procstat

import (
	"os"
	"testing"
)

// TestStatTicks reads utime and stime (fields 14 and 15) after a command
// name holding spaces and parentheses, and refuses a cut line.
func TestStatTicks(t *testing.T) {
	line := "4242 (port (cullis) x) S 1 4242 4242 0 -1 4194560 1500 0 0 0 731 269 0 0 20 0 9 0 123 456 789\n"
	got, err := ParseStatTicks(4242, []byte(line))
	if err != nil || got != 731+269 {
		t.Fatalf("got %d, %v; want 1000", got, err)
	}
	for _, bad := range []string{"4242 (x) S 1 2 3", "4242 no parenthesis", "4242 (x) S 1 4242 4242 0 -1 4194560 1500 0 0 0 7a1 269 0"} {
		if _, err := ParseStatTicks(4242, []byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if _, err := CPUTicks(os.Getpid()); err != nil {
		t.Fatalf("this process: %v", err)
	}
}

// TestMemory reads this process's memory lines: all four present, the
// resident set no larger than its peak.
func TestMemory(t *testing.T) {
	m, err := Memory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.VmRSS <= 0 || m.VmHWM < m.VmRSS || m.RssAnon+m.RssFile > m.VmRSS {
		t.Fatalf("%+v", m)
	}
}
