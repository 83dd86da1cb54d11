package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// FileRss reads /proc/<pid>/smaps: the resident KiB of each mapped file,
// by its path (the mappings of one file summed). The benchmarks split a
// process's RssFile with it (a store file mapped in memory, the binary).
func FileRss(pid int) (map[string]int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return nil, err
	}
	out, err := ParseFileRss(raw)
	if err != nil {
		return nil, fmt.Errorf("/proc/%d/smaps: %w", pid, err)
	}
	return out, nil
}

// ParseFileRss reads the text of /proc/<pid>/smaps as FileRss does. A
// mapping's header line has five fields and a path that starts with '/';
// its "Rss:" line follows.
func ParseFileRss(raw []byte) (map[string]int64, error) {
	out := map[string]int64{}
	path := ""
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			path = ""
			if len(f) >= 6 && strings.HasPrefix(f[5], "/") {
				path = strings.Join(f[5:], " ")
			}
			continue
		}
		if path == "" || len(f) != 3 || f[0] != "Rss:" || f[2] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("Rss of %s: %w", path, err)
		}
		out[path] += n
	}
	return out, sc.Err()
}
