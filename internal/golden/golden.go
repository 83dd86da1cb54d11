// Package golden compares test output with a file in testdata/ and, with
// the -update flag, rewrites the file. Rewrite only after checking the
// change: the tests that prove what the bytes do (kernel, charon, client)
// are the real judges.
//
// Golden files are text, one item per line (a binary protocol is printed
// one message per line with a "# comment" naming it), so that a mismatch
// is shown as a unified line diff.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Check fails the test when got differs from the file at path, showing a
// unified diff from the file (want) to got, or rewrites the file when
// -update is given.
func Check(t testing.TB, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if d := Diff(path+" (want)", string(want), "got", got); d != "" {
		name, _, _ := strings.Cut(t.Name(), "/")
		t.Fatalf("output differs from %s; if the change is intended, check it and run\n\tgo test %s -run '^%s$' -update\n%s",
			path, pkgDir(), name, d)
	}
}

// pkgDir is the test's package directory relative to the module root
// (tests run in their package directory), or "." when unknown.
func pkgDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			rel, err := filepath.Rel(dir, wd)
			if err != nil || rel == "." {
				return "."
			}
			return "./" + filepath.ToSlash(rel)
		}
		if filepath.Dir(dir) == dir {
			return "."
		}
	}
}
