// Package golden compares test output with a file in testdata/ and, with
// the -update flag, rewrites the file. Rewrite only after checking the
// change: the tests that prove what the bytes do (kernel, charon, client)
// are the real judges.
package golden

import (
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Check fails the test when got differs from the file at path, or rewrites
// the file when -update is given.
func Check(t testing.TB, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("output differs from %s (run with -update after checking):\n%s", path, got)
	}
}
