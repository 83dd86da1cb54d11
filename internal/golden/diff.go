package golden

import (
	"fmt"
	"strings"
)

// context is the number of unchanged lines shown around a change.
const context = 3

type op struct {
	kind byte // ' ', '-' or '+'
	line string
}

// Diff returns a unified line diff from want to got ("" when equal), with
// the labels on its --- and +++ lines. Lines are compared whole; a missing
// final newline is reported as such.
func Diff(wantLabel, want, gotLabel, got string) string {
	if want == got {
		return ""
	}
	a, b := splitLines(want), splitLines(got)
	ops := editScript(a, b)
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s\n", wantLabel, gotLabel)
	// Walk the script, emitting one hunk per run of changes closer
	// together than 2*context unchanged lines.
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		start := max(i-context, 0)
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*context {
				end = min(end+context, len(ops))
				break
			}
			end = run
		}
		aStart, bStart := 1, 1
		for _, o := range ops[:start] {
			if o.kind != '+' {
				aStart++
			}
			if o.kind != '-' {
				bStart++
			}
		}
		var aN, bN int
		for _, o := range ops[start:end] {
			if o.kind != '+' {
				aN++
			}
			if o.kind != '-' {
				bN++
			}
		}
		fmt.Fprintf(&sb, "@@ -%s +%s @@\n", hunkRange(aStart, aN), hunkRange(bStart, bN))
		for _, o := range ops[start:end] {
			sb.WriteByte(o.kind)
			sb.WriteString(o.line)
			sb.WriteByte('\n')
		}
		i = end
	}
	return sb.String()
}

func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start-1)
	}
	if n == 1 {
		return fmt.Sprint(start)
	}
	return fmt.Sprintf("%d,%d", start, n)
}

// splitLines splits s into lines; a last line without a newline is marked
// so that a lost or added final newline shows in the diff.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		if strings.HasSuffix(l, "\n") {
			lines[i] = l[:len(l)-1]
		} else {
			lines[i] = l + "\n\\ No newline at end of file"
		}
	}
	return lines
}

// editScript is a shortest edit script from a to b by longest common
// subsequence: golden files are small, so the quadratic table is cheap.
// Beyond a few million cells it gives up on alignment and replaces the
// whole middle, which is still a correct diff.
func editScript(a, b []string) []op {
	// Common prefix and suffix first: most golden changes are local.
	var head, tail []op
	for len(a) > 0 && len(b) > 0 && a[0] == b[0] {
		head = append(head, op{' ', a[0]})
		a, b = a[1:], b[1:]
	}
	for len(a) > 0 && len(b) > 0 && a[len(a)-1] == b[len(b)-1] {
		tail = append([]op{{' ', a[len(a)-1]}}, tail...)
		a, b = a[:len(a)-1], b[:len(b)-1]
	}
	var mid []op
	if len(a)*len(b) > 4<<20 {
		for _, l := range a {
			mid = append(mid, op{'-', l})
		}
		for _, l := range b {
			mid = append(mid, op{'+', l})
		}
	} else {
		// lcs[i][j] is the LCS length of a[i:] and b[j:].
		lcs := make([][]int, len(a)+1)
		for i := range lcs {
			lcs[i] = make([]int, len(b)+1)
		}
		for i := len(a) - 1; i >= 0; i-- {
			for j := len(b) - 1; j >= 0; j-- {
				if a[i] == b[j] {
					lcs[i][j] = lcs[i+1][j+1] + 1
				} else {
					lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
				}
			}
		}
		i, j := 0, 0
		for i < len(a) || j < len(b) {
			switch {
			case i < len(a) && j < len(b) && a[i] == b[j]:
				mid = append(mid, op{' ', a[i]})
				i++
				j++
			case j < len(b) && (i == len(a) || lcs[i][j+1] > lcs[i+1][j]):
				mid = append(mid, op{'+', b[j]})
				j++
			default:
				mid = append(mid, op{'-', a[i]})
				i++
			}
		}
	}
	return append(append(head, mid...), tail...)
}
