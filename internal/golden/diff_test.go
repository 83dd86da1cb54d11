package golden

import (
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	lines := func(n int, change map[int]string) string {
		var b strings.Builder
		for i := 1; i <= n; i++ {
			if s, ok := change[i]; ok {
				if s != "" {
					b.WriteString(s + "\n")
				}
				continue
			}
			b.WriteString("line " + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + "\n")
		}
		return b.String()
	}
	cases := []struct {
		name      string
		want, got string
		diff      string
	}{
		{"equal", "a\nb\n", "a\nb\n", ""},
		{"one changed", "a\nb\nc\n", "a\nB\nc\n", "--- w\n+++ g\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"},
		{"added at end", "a\n", "a\nb\n", "--- w\n+++ g\n@@ -1 +1,2 @@\n a\n+b\n"},
		{"removed at start", "a\nb\n", "b\n", "--- w\n+++ g\n@@ -1,2 +1 @@\n-a\n b\n"},
		{"from empty", "", "a\n", "--- w\n+++ g\n@@ -0,0 +1 @@\n+a\n"},
		{"final newline lost", "a\n", "a", "--- w\n+++ g\n@@ -1 +1 @@\n-a\n+a\n\\ No newline at end of file\n"},
		{"two hunks", lines(20, nil), lines(20, map[int]string{2: "two", 18: ""}),
			"--- w\n+++ g\n@@ -1,5 +1,5 @@\n line xb\n-line xxc\n+two\n line d\n line xe\n line xxf\n" +
				"@@ -15,6 +15,5 @@\n line p\n line xq\n line xxr\n-line s\n line xt\n line xxu\n"},
		{"one hunk when close", lines(10, nil), lines(10, map[int]string{2: "two", 8: "eight"}),
			"--- w\n+++ g\n@@ -1,10 +1,10 @@\n line xb\n-line xxc\n+two\n line d\n line xe\n line xxf\n line g\n line xh\n-line xxi\n+eight\n line j\n line xk\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Diff("w", c.want, "g", c.got); got != c.diff {
				t.Errorf("diff\n%s\nwant\n%s", got, c.diff)
			}
		})
	}
}
