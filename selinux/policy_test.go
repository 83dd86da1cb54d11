package selinux_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// The modules, in the order semodule installs them (together: each
// requires types of the others).
var modules = []string{"portcullis", "portcullis_web", "portcullis_vpn", "portcullis_link"}

// The domains the modules declare, and systemd's, each queried once.
var domains = []string{"portcullis_t", "portcullis_web_t", "portcullis_vpn_t", "portcullis_link_t", "portcullis_link_hook_t", "init_t"}

// rule is one line of sesearch's output: an allow rule (perms set) or a
// type_transition (newType set). A conditional rule counts whatever its
// boolean's value: a boolean can be flipped at run time.
type rule struct {
	kind     string // allow, type_transition
	src, tgt string
	class    string
	perms    []string
	newType  string
	name     string // the object name of a named type_transition
	cond     string
	line     string
}

func (r rule) has(perm string) bool { return slices.Contains(r.perms, perm) }

// policy is the linked policy: the rules whose source is one of domains,
// the attributes of each type, and the file contexts.
type policy struct {
	kern   string            // the binary policy sesearch reads
	fc     string            // the merged file_contexts
	rules  map[string][]rule // by source domain, attributes expanded
	mu     sync.Mutex
	attrs  map[string][]string // a type's attributes
	timing string
}

var (
	loadOnce sync.Once
	loaded   *policy
	loadErr  error
	workDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if workDir != "" {
		os.RemoveAll(workDir)
	}
	os.Exit(code)
}

// need requires what building and analysing the policy takes.
func need(t *testing.T) {
	t.Helper()
	testenv.System(t, "SELinux policy build and analysis")
	testenv.NeedFile(t, "/usr/share/selinux/devel/Makefile", "selinux-policy-dev")
	testenv.NeedBinary(t, "checkmodule", "checkpolicy")
	testenv.NeedBinary(t, "semodule", "policycoreutils")
	testenv.NeedBinary(t, "sesearch", "setools")
	testenv.NeedBinary(t, "seinfo", "setools")
	testenv.NeedBinary(t, "matchpathcon", "selinux-utils")
	testenv.NeedFile(t, "/var/lib/selinux/default/active/modules", "selinux-policy-default")
	testenv.NeedRoot(t, "to read the policy store /var/lib/selinux/default (mode 0700)")
}

// load builds the modules with `make -C selinux` (what `make selinux`
// runs), links them into a copy of the distribution's policy store
// (selinux-policy-default) with semodule -p, and reads the rules of every
// domain back with sesearch. Once per test binary: about 10 s.
func load(t *testing.T) *policy {
	t.Helper()
	need(t)
	loadOnce.Do(func() {
		if workDir, loadErr = os.MkdirTemp("", "portcullis-selinux-"); loadErr == nil {
			loaded, loadErr = build(".")
		}
	})
	if loadErr != nil {
		t.Fatalf("policy: %v", loadErr)
	}
	return loaded
}

func run(dir, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out, nil
}

// build builds the modules in src (the selinux directory, or a loosened
// copy of it), links them into a copy of the policy store and reads the
// rules of every domain.
func build(src string) (*policy, error) {
	start := time.Now()
	dir, err := os.MkdirTemp(workDir, "policy-")
	if err != nil {
		return nil, err
	}
	makefile, err := filepath.Abs("Makefile")
	if err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "modules")
	if _, err := run(src, "make", "-s", "-f", makefile, "OUT="+out); err != nil {
		return nil, fmt.Errorf("build the modules: %w", err)
	}
	built := time.Now()
	// A copy of the store: semodule -p links into it and writes the
	// policy there, leaving the machine's own store as it was.
	root := filepath.Join(dir, "root")
	for _, d := range []string{"var/lib", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, err
		}
	}
	if _, err := run(".", "cp", "-a", "/var/lib/selinux", filepath.Join(root, "var/lib/")); err != nil {
		return nil, err
	}
	if _, err := run(".", "cp", "-a", "/etc/selinux", filepath.Join(root, "etc/")); err != nil {
		return nil, err
	}
	args := []string{"-p", root, "-s", "default", "-n", "-i"}
	for _, m := range modules {
		args = append(args, filepath.Join(out, m+".pp"))
	}
	if _, err := run(".", "semodule", args...); err != nil {
		return nil, fmt.Errorf("link the modules into a copy of the policy store: %w", err)
	}
	linked := time.Now()
	p := &policy{
		kern:  filepath.Join(root, "var/lib/selinux/default/active/policy.kern"),
		fc:    filepath.Join(root, "etc/selinux/default/contexts/files/file_contexts"),
		rules: map[string][]rule{},
		attrs: map[string][]string{},
	}
	type result struct {
		dom   string
		rules []rule
		err   error
	}
	results := make(chan result, len(domains))
	for _, d := range domains {
		go func() {
			rs, err := p.search("-A", "-T", "-s", d)
			results <- result{d, rs, err}
		}()
	}
	for range domains {
		r := <-results
		if r.err != nil {
			return nil, r.err
		}
		p.rules[r.dom] = r.rules
	}
	p.timing = fmt.Sprintf("build %v, link %v, read %v", built.Sub(start).Round(time.Millisecond),
		linked.Sub(built).Round(time.Millisecond), time.Since(linked).Round(time.Millisecond))
	return p, nil
}

// search runs sesearch on the linked policy and parses its rules.
func (p *policy) search(args ...string) ([]rule, error) {
	out, err := run(".", "sesearch", append(args, p.kern)...)
	if err != nil {
		return nil, err
	}
	var rules []rule
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			r, err := parseRule(line)
			if err != nil {
				return nil, err
			}
			rules = append(rules, r)
		}
	}
	return rules, sc.Err()
}

// parseRule reads one sesearch line:
//
//	allow SRC TGT:CLASS { p1 p2 }; [ bool ]:True
//	allow SRC TGT:CLASS perm;
//	type_transition SRC TGT:CLASS NEW;
//	type_transition SRC TGT:CLASS NEW "name";
func parseRule(line string) (rule, error) {
	r := rule{line: line}
	body, cond, _ := strings.Cut(line, ";")
	r.cond = strings.TrimSpace(cond)
	f := strings.Fields(body)
	if len(f) < 4 {
		return r, fmt.Errorf("sesearch: unexpected line %q", line)
	}
	r.kind, r.src = f[0], f[1]
	var ok bool
	if r.tgt, r.class, ok = strings.Cut(f[2], ":"); !ok {
		return r, fmt.Errorf("sesearch: no class in %q", line)
	}
	rest := f[3:]
	switch r.kind {
	case "allow", "auditallow", "dontaudit", "neverallow":
		if rest[0] == "{" {
			if rest[len(rest)-1] != "}" {
				return r, fmt.Errorf("sesearch: unterminated permission set in %q", line)
			}
			r.perms = rest[1 : len(rest)-1]
		} else {
			r.perms = rest[:1]
		}
	case "type_transition", "type_change", "type_member":
		r.newType = rest[0]
		if len(rest) > 1 {
			r.name = strings.Trim(rest[1], `"`)
		}
	default:
		return r, fmt.Errorf("sesearch: unknown rule kind in %q", line)
	}
	return r, nil
}

// attributes returns the attributes of typ (seinfo, cached).
func (p *policy) attributes(t *testing.T, typ string) []string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.attrs[typ]; ok {
		return a
	}
	out, err := run(".", "seinfo", "-t", typ, "-x", p.kern)
	if err != nil {
		t.Fatalf("seinfo: %v", err)
	}
	// "Types: 1\n   type NAME [alias { A B }], attr1, attr2;"
	var attrs []string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "type "+typ); ok {
			if _, after, ok := strings.Cut(rest, "}"); ok && strings.Contains(rest, "alias {") {
				rest = after
			}
			for _, a := range strings.Split(strings.TrimSuffix(rest, ";"), ",") {
				if a = strings.TrimSpace(a); a != "" {
					attrs = append(attrs, a)
				}
			}
		}
	}
	p.attrs[typ] = attrs
	return attrs
}
