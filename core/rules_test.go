package core

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// TestDynfwAndLinkmgrDoNotImportCore keeps the layering of DESIGN.md: the
// firewall and the link model are libraries the core uses, never the
// other way round.
func TestDynfwAndLinkmgrDoNotImportCore(t *testing.T) {
	gobin := testenv.NeedBinary(t, "go", "") // the go.mod toolchain, not always Debian's
	out, err := exec.Command(gobin, "list", "-deps", "../dynfw", "../linkmgr/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const core = "github.com/portcullis-gw/portcullis/core"
	deps := strings.Fields(string(out))
	for _, d := range deps {
		if d == core || strings.HasPrefix(d, core+"/") {
			t.Errorf("dynfw or linkmgr depends on %s", d)
		}
	}
	if !strings.Contains(string(out), "github.com/portcullis-gw/portcullis/dynfw\n") || len(deps) < 10 {
		t.Fatalf("dependency list looks wrong (%d entries): %v", len(deps), deps)
	}
}

// TestVPNTestOnlyInCoreTests keeps the tests' fake openvpn
// (core/vpn/vpntest) where it belongs: only the tests of core and core/vpn
// import it, never non-test code.
func TestVPNTestOnlyInCoreTests(t *testing.T) {
	gobin := testenv.NeedBinary(t, "go", "")
	const format = `{{.ImportPath}}{{range .Imports}} {{.}}{{end}} |{{range .TestImports}} {{.}}{{end}}{{range .XTestImports}} {{.}}{{end}}`
	out, err := exec.Command(gobin, "list", "-f", format, "../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const mod = "github.com/portcullis-gw/portcullis/"
	users := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		code, tests, _ := strings.Cut(line, "|")
		pkg := strings.Fields(code)[0]
		if slices.Contains(strings.Fields(code)[1:], mod+"core/vpn/vpntest") {
			t.Errorf("%s imports vpntest outside its tests", pkg)
		}
		if slices.Contains(strings.Fields(tests), mod+"core/vpn/vpntest") {
			users[pkg] = true
		}
	}
	if !maps.Equal(users, map[string]bool{mod + "core": true, mod + "core/vpn": true}) {
		t.Errorf("the packages whose tests import vpntest: %v, want core and core/vpn", slices.Sorted(maps.Keys(users)))
	}
}

// TestNoUncheckedTypeAssertions fails on any x.(T) outside the two-value
// form or a type switch in the non-test code of the whole module: a
// surprise type is then an error with a message, never a panic.
func TestNoUncheckedTypeAssertions(t *testing.T) {
	eachModuleSource(t, func(path string, src []byte) {
		for _, f := range uncheckedAssertions(t, path, src) {
			t.Error(f)
		}
	})
}

// eachModuleSource calls check with the path and text of every non-test Go
// file of the module (outside .git and testdata), and fails the test when
// it found fewer than 100: a walk not rooted at the module checks nothing.
func eachModuleSource(t *testing.T, check func(path string, src []byte)) {
	t.Helper()
	checked := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		check(path, src)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("only %d source files found; is the walk rooted at the module?", checked)
	}
}

func TestUncheckedAssertionCheckerFindsThem(t *testing.T) {
	src := `package x
func f(v any, err error) {
	a := v.(int)
	b, ok := v.(string)
	var c, ok2 = v.(bool)
	switch v.(type) {}
	switch w := v.(type) { default: _ = w }
	g(err.(interface{ Code() int }).Code())
	_, _, _, _, _ = a, b, ok, c, ok2
}`
	got := uncheckedAssertions(t, "x.go", []byte(src))
	if len(got) != 2 || !strings.HasPrefix(got[0], "x.go:3:") || !strings.HasPrefix(got[1], "x.go:8:") {
		t.Fatalf("got %q", got)
	}
}

// uncheckedAssertions lists the single-value type assertions of a file.
func uncheckedAssertions(t *testing.T, name string, src []byte) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	checked := map[ast.Expr]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if len(n.Lhs) == 2 && len(n.Rhs) == 1 {
				checked[ast.Unparen(n.Rhs[0])] = true
			}
		case *ast.ValueSpec:
			if len(n.Names) == 2 && len(n.Values) == 1 {
				checked[ast.Unparen(n.Values[0])] = true
			}
		}
		return true
	})
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		if ta, ok := n.(*ast.TypeAssertExpr); ok && ta.Type != nil && !checked[ta] {
			out = append(out, fset.Position(ta.Pos()).String()+": unchecked type assertion")
		}
		return true
	})
	return out
}

// maxFileLines is the size of a non-test source file one can read in one
// sitting (issue 7: "no non-test file is over ~600 lines").
const maxFileLines = 600

// TestNoLongSourceFiles keeps every non-test Go file of the module at or
// under maxFileLines lines: a file that grows past it is split by what it
// holds.
func TestNoLongSourceFiles(t *testing.T) {
	eachModuleSource(t, func(path string, src []byte) {
		if n := strings.Count(string(src), "\n"); n > maxFileLines {
			t.Errorf("%s: %d lines (more than %d): split it by what it holds", path, n, maxFileLines)
		}
	})
}
