package store

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// storeImport is this package's import path below the module path.
const storeImport = "internal/store"

// ownership is the bucket table of the package comment, with the bucket
// constants declared in store.go.
type ownership struct {
	module string
	// owner maps a bucket name to its owning package (full import path).
	owner map[string]string
	// constants maps a Bucket* constant name to its bucket name.
	constants map[string]string
}

// storeCalls are the functions and methods whose first or second argument
// is a bucket name (Tx methods, and the JSON helpers after the Tx).
var storeCalls = map[string]bool{"Get": true, "Put": true, "Delete": true, "Scan": true,
	"ScanReverse": true, "NextSequence": true, "GetJSON": true, "PutJSON": true, "Insert": true, "ScanJSON": true, "Count": true,
	"PutTTL": true, "PutJSONTTL": true, "InsertTTL": true, "DeleteWhere": true, "Peek": true}

// TestBucketOwnership parses every non-test Go file of the module and fails
// when a package other than a bucket's owner (the table in the package
// comment) names that bucket: through a store.Bucket* constant, through
// store.Buckets, or as a string literal given to a store call.
func TestBucketOwnership(t *testing.T) {
	root := moduleRoot(t)
	own := readOwnership(t, root)
	var problems []string
	used := map[string]bool{} // bucket/package pairs seen
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := own.module
		if rel != "." {
			pkg += "/" + filepath.ToSlash(rel)
		}
		if pkg == own.module+"/"+storeImport {
			return nil // the schema keeper: creates buckets, runs migrations
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, filepath.ToSlash(filepath.Join(rel, name)), src, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, r := range own.refs(fset, f) {
			used[r.bucket+" "+pkg] = true
			if r.problem != "" {
				problems = append(problems, r.problem)
			} else if owner := own.owner[r.bucket]; owner != pkg {
				problems = append(problems, r.pos+": package "+pkg+" uses bucket "+r.bucket+" ("+r.how+"), owned by "+owner)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A table row whose owner never touches the bucket is stale.
	for bucket, owner := range own.owner {
		if owner != own.module+"/"+storeImport && !used[bucket+" "+owner] {
			problems = append(problems, "the table makes "+owner+" the owner of "+bucket+", which it never uses")
		}
	}
	slices.Sort(problems)
	for _, p := range problems {
		t.Error(p)
	}
}

// TestBucketOwnershipCatchesStrayReferences runs the checker on a file that
// breaks the rule in each way it knows, so the test above cannot pass by
// seeing nothing.
func TestBucketOwnershipCatchesStrayReferences(t *testing.T) {
	own := readOwnership(t, moduleRoot(t))
	src := `package dynfw
import st "` + own.module + `/internal/store"
func stray(tx st.Tx) error {
	if _, err := tx.Get(st.BucketLinks, "x"); err != nil { return err }
	_, _ = st.GetJSON[int](tx, "orgs", "o1")
	for _, b := range st.Buckets { _ = b }
	_ = st.BucketNoSuch
	return tx.Put(st.BucketApprovals, "token", nil)
}`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "stray.go", src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range own.refs(fset, f) {
		if r.problem != "" {
			got = append(got, r.problem)
		} else if own.owner[r.bucket] != own.module+"/dynfw" {
			got = append(got, r.bucket+" by "+r.how)
		}
	}
	want := []string{"links by store.BucketLinks", "orgs by a string literal",
		"stray.go:6:20: store.Buckets names every bucket", "stray.go:7:6: store.BucketNoSuch is not in the ownership table"}
	if !slices.Equal(got, want) {
		t.Fatalf("checker found\n%q\nwant\n%q", got, want)
	}
}

// ref is one place a file names a bucket.
type ref struct {
	pos, bucket, how string
	// problem is set when the reference is wrong whoever makes it.
	problem string
}

// refs lists the bucket references of one file.
func (o *ownership) refs(fset *token.FileSet, f *ast.File) []ref {
	local := ""
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == o.module+"/"+storeImport {
			local = "store"
			if imp.Name != nil {
				local = imp.Name.Name
			}
		}
	}
	var out []ref
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			x, ok := n.X.(*ast.Ident)
			if !ok || local == "" || x.Name != local || !strings.HasPrefix(n.Sel.Name, "Bucket") {
				return true
			}
			r := ref{pos: fset.Position(n.Pos()).String(), how: "store." + n.Sel.Name}
			switch bucket, known := o.constants[n.Sel.Name]; {
			case n.Sel.Name == "Buckets":
				r.problem = r.pos + ": store.Buckets names every bucket"
			case !known:
				r.problem = r.pos + ": store." + n.Sel.Name + " is not in the ownership table"
			default:
				r.bucket = bucket
			}
			out = append(out, r)
		case *ast.CallExpr:
			if !storeCalls[calledName(n.Fun)] {
				return true
			}
			for _, a := range n.Args[:min(2, len(n.Args))] {
				lit, ok := a.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				if s, _ := strconv.Unquote(lit.Value); o.owner[s] != "" {
					out = append(out, ref{pos: fset.Position(lit.Pos()).String(), bucket: s, how: "a string literal"})
				}
			}
		}
		return true
	})
	return out
}

// calledName is the function or method name of a call, through generic
// instantiation.
func calledName(fun ast.Expr) string {
	switch f := fun.(type) {
	case *ast.IndexExpr:
		return calledName(f.X)
	case *ast.IndexListExpr:
		return calledName(f.X)
	case *ast.SelectorExpr:
		return f.Sel.Name
	case *ast.Ident:
		return f.Name
	}
	return ""
}

// readOwnership reads the table from store.go's package comment and the
// Bucket* constants from its declarations, and checks that the two and the
// Buckets list agree.
func readOwnership(t *testing.T, root string) *ownership {
	t.Helper()
	o := &ownership{module: modulePath(t, root), owner: map[string]string{}, constants: map[string]string{}}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(root, storeImport, "store.go"), nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	doc := f.Doc.Text()
	_, table, ok := strings.Cut(doc, "bucket        owner\n")
	if !ok {
		t.Fatal("store.go's package comment has no ownership table")
	}
	for _, line := range strings.Split(table, "\n") {
		fields := strings.Fields(line)
		if len(fields) != 2 {
			break
		}
		if o.owner[fields[0]] != "" {
			t.Errorf("bucket %s has two owners in the table", fields[0])
		}
		o.owner[fields[0]] = o.module + "/" + fields[1]
	}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs, ok := spec.(*ast.ValueSpec)
			if !ok {
				continue
			}
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Bucket") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("%s is not a string literal", name.Name)
				}
				o.constants[name.Name], _ = strconv.Unquote(lit.Value)
			}
		}
	}
	var consts []string
	for _, b := range o.constants {
		consts = append(consts, b)
		if o.owner[b] == "" {
			t.Errorf("bucket %s has no owner in the table", b)
		}
	}
	for b := range o.owner {
		if !slices.Contains(consts, b) {
			t.Errorf("the table lists %s, which is not a Bucket* constant", b)
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(consts)), slices.Sorted(slices.Values(Buckets))) {
		t.Errorf("Buckets %v and the Bucket* constants %v differ", Buckets, consts)
	}
	if len(o.owner) < 10 {
		t.Fatalf("the ownership table looks wrong: %v", o.owner)
	}
	return o
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func modulePath(t *testing.T, root string) string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if mod, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.TrimSpace(mod)
		}
	}
	t.Fatal("go.mod has no module line")
	return ""
}
