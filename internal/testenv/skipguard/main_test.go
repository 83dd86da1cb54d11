package main

import (
	"bytes"
	"strings"
	"testing"
)

func run(t *testing.T, required bool, events ...event) (string, bool) {
	t.Helper()
	var out bytes.Buffer
	s := &summary{out: &out, buf: map[key][]string{}}
	for _, e := range events {
		s.handle(e)
	}
	ok := s.report(required)
	return out.String(), ok
}

var skipped = []event{
	{Action: "run", Package: "p", Test: "TestA"},
	{Action: "output", Package: "p", Test: "TestA", Output: "=== RUN   TestA\n"},
	{Action: "output", Package: "p", Test: "TestA", Output: "--- PASS: TestA (0.00s)\n"},
	{Action: "pass", Package: "p", Test: "TestA"},
	{Action: "run", Package: "p", Test: "TestB"},
	{Action: "output", Package: "p", Test: "TestB", Output: "=== RUN   TestB\n"},
	{Action: "output", Package: "p", Test: "TestB", Output: "    b_test.go:9: needs ip in PATH (apt-get install iproute2)\n"},
	{Action: "output", Package: "p", Test: "TestB", Output: "--- SKIP: TestB (0.00s)\n"},
	{Action: "skip", Package: "p", Test: "TestB"},
	{Action: "output", Package: "p", Output: "PASS\n"},
	{Action: "output", Package: "p", Output: "ok  \tp\t0.01s\n"},
	{Action: "pass", Package: "p"},
	{Action: "skip", Package: "q"}, // no test files: not a skipped test
}

func TestSkipsAreCountedAndNamed(t *testing.T) {
	out, ok := run(t, false, skipped...)
	want := "ok  \tp\t0.01s\n" +
		"skipguard: 1 packages, 2 tests: 1 passed, 0 failed, 1 skipped\n" +
		"skipguard: SKIP p TestB: b_test.go:9: needs ip in PATH (apt-get install iproute2)\n"
	if !ok || out != want {
		t.Fatalf("ok %v, output\n%s\nwant\n%s", ok, out, want)
	}
}

func TestSkipFailsWhenRequired(t *testing.T) {
	out, ok := run(t, true, skipped...)
	if ok || !strings.Contains(out, "skipguard: FAIL: 1 tests skipped with PORTCULLIS_REQUIRE_SYSTEM=1") {
		t.Fatalf("ok %v, output\n%s", ok, out)
	}
	if out, ok := run(t, true, skipped[:4]...); ok || !strings.Contains(out, "0 packages") {
		t.Fatalf("a run without a finished package passed:\n%s", out)
	}
}

func TestFailureShowsTheTestOutput(t *testing.T) {
	out, ok := run(t, false,
		event{Action: "run", Package: "p", Test: "TestC"},
		event{Action: "output", Package: "p", Test: "TestC", Output: "=== RUN   TestC\n"},
		event{Action: "output", Package: "p", Test: "TestC", Output: "    c_test.go:3: boom\n"},
		event{Action: "output", Package: "p", Test: "TestC", Output: "--- FAIL: TestC (0.00s)\n"},
		event{Action: "fail", Package: "p", Test: "TestC"},
		event{Action: "output", Package: "p", Output: "FAIL\tp\t0.01s\n"},
		event{Action: "fail", Package: "p"},
	)
	if ok || !strings.HasPrefix(out, "    c_test.go:3: boom\n--- FAIL: TestC (0.00s)\nFAIL\tp\t0.01s\n") {
		t.Fatalf("ok %v, output\n%s", ok, out)
	}
}
