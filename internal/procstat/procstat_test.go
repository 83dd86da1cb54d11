package procstat

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
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

// TestStatus reads the name and value of each status line, and the memory
// lines out of them; a missing or malformed memory line is an error.
func TestStatus(t *testing.T) {
	raw := "Name:\tport cullis\nUid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\n" +
		"VmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nRssAnon:\t     512 kB\nRssFile:\t     256 kB\n"
	st := ParseStatus([]byte(raw))
	for k, want := range map[string]string{"Name": "port cullis", "Uid": "1000\t1000\t1000\t1000", "CapEff": "0000000000000000", "NoNewPrivs": "1", "VmRSS": "1024 kB"} {
		if st[k] != want {
			t.Errorf("%s: %q, want %q", k, st[k], want)
		}
	}
	m, err := ParseMemory(1, st)
	if err != nil || m != (Mem{VmRSS: 1024, VmHWM: 2048, RssAnon: 512, RssFile: 256}) {
		t.Fatalf("%+v, %v", m, err)
	}
	for _, bad := range []string{
		strings.Replace(raw, "RssFile:", "RssFilf:", 1),     // missing
		strings.Replace(raw, "1024 kB", "1024 MB", 1),       // not kB
		strings.Replace(raw, "1024 kB", "10x4 kB", 1),       // not a number
		strings.Replace(raw, "    2048 kB", "2048 kB 1", 1), // extra word
	} {
		if m, err := ParseMemory(1, ParseStatus([]byte(bad))); err == nil {
			t.Errorf("no error for %q: %+v", bad, m)
		}
	}
	self, err := Status(os.Getpid())
	if err != nil || self["Pid"] != strconv.Itoa(os.Getpid()) {
		t.Fatalf("this process: Pid %q, %v", self["Pid"], err)
	}
}

// TestFileRss sums the Rss lines of each file's mappings, leaves out the
// anonymous ones, and reads this process's own binary among its files.
func TestFileRss(t *testing.T) {
	smaps := `55d0a0000000-55d0a0400000 r--p 00000000 08:01 1234   /usr/bin/port cullis
Size:               4096 kB
Rss:                1200 kB
55d0a0400000-55d0a0800000 r-xp 00400000 08:01 1234   /usr/bin/port cullis
Rss:                 300 kB
7f0000000000-7f0000100000 rw-p 00000000 00:00 0
Rss:                 999 kB
7f0000100000-7f0006100000 r--s 00000000 08:01 99     /var/lib/portcullis/store.db
Rss:               98304 kB
VmFlags: rd sh mr mw me ms sd
`
	got, err := ParseFileRss([]byte(smaps))
	if err != nil || len(got) != 2 || got["/usr/bin/port cullis"] != 1500 || got["/var/lib/portcullis/store.db"] != 98304 {
		t.Fatalf("got %v, %v", got, err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	mine, err := FileRss(os.Getpid())
	if err != nil || mine[exe] <= 0 {
		t.Fatalf("this process: %s not among %v (%v)", exe, mine, err)
	}
}

func TestTimerSlackSummary(t *testing.T) {
	for _, c := range []struct {
		in   map[int]time.Duration
		want string
	}{
		{nil, "no thread"},
		{map[int]time.Duration{7: time.Millisecond}, "1ms on 1 thread"},
		{map[int]time.Duration{1: time.Millisecond, 2: 50 * time.Microsecond, 3: time.Millisecond}, "50µs on 1 thread, 1ms on 2 threads"},
	} {
		if got := TimerSlackSummary(c.in); got != c.want {
			t.Errorf("TimerSlackSummary(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}
