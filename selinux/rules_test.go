package selinux_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// allow asks that src may do perms on tgt:class, through any rule (its own
// or an attribute's). It reports the permissions no rule grants.
func (p *policy) allow(t *testing.T, src, tgt, class string, perms ...string) error {
	t.Helper()
	tgts := append([]string{tgt}, p.attributes(t, tgt)...)
	var have []string
	for _, r := range p.rules[src] {
		if r.kind == "allow" && r.class == class && slices.Contains(tgts, r.tgt) && r.cond == "" {
			have = append(have, r.perms...)
		}
	}
	var missing []string
	for _, perm := range perms {
		if !slices.Contains(have, perm) {
			missing = append(missing, perm)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("allow %s %s:%s { %s } is not granted", src, tgt, class, strings.Join(missing, " "))
	}
	return nil
}

// transition asks for the automatic transition src → newType when src
// executes a file of type exec: the type_transition, the source's execute
// and process transition, the new domain's entrypoint, and nnp_transition
// (the core and systemd start them with no_new_privs set).
func (p *policy) transition(t *testing.T, src, exec, newType string) error {
	t.Helper()
	found := false
	for _, r := range p.rules[src] {
		if r.kind == "type_transition" && r.class == "process" && r.tgt == exec && r.newType == newType {
			found = true
		}
	}
	errs := []error{
		p.allow(t, src, exec, "file", "execute", "read", "open", "map"),
		p.allow(t, src, newType, "process", "transition"),
		p.allow(t, src, newType, "process2", "nnp_transition"),
		p.allow(t, newType, exec, "file", "entrypoint"),
	}
	if !found {
		errs = append(errs, fmt.Errorf("no type_transition %s %s:process %s", src, exec, newType))
	}
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return nil
}

// none asks that no allow rule of src (its own or an attribute's, any
// boolean's value) match.
func (p *policy) none(src string, match func(rule) bool) error {
	var bad []string
	for _, r := range p.rules[src] {
		if r.kind == "allow" && match(r) {
			bad = append(bad, r.line)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d forbidden rule(s):\n\t%s", len(bad), strings.Join(bad, "\n\t"))
	}
	return nil
}

// expand returns types and all their attributes: a rule whose target is
// any of them reaches one of the types.
func (p *policy) expand(t *testing.T, types ...string) []string {
	t.Helper()
	out := slices.Clone(types)
	for _, typ := range types {
		out = append(out, p.attributes(t, typ)...)
	}
	return out
}

func anyPerm(r rule, perms ...string) bool {
	for _, p := range perms {
		if r.has(p) {
			return true
		}
	}
	return false
}

var capClasses = []string{"capability", "capability2", "cap_userns", "cap2_userns"}

// libTypes are the shared-library types the base policy lets every domain
// map executable (allow domain ld_so_t, lib_t, textrel_shlib_t:file
// execute): no module can take that away, and none of them can be run as
// a program without execute_no_trans or a transition.
var libTypes = []string{"ld_so_t", "lib_t", "textrel_shlib_t"}

// executeOnly asks that src execute nothing but the types in allowed and
// the shared libraries, and never without a transition (execute_no_trans).
func (p *policy) executeOnly(src string, allowed ...string) error {
	allowed = append(allowed, libTypes...)
	return p.none(src, func(r rule) bool {
		return r.has("execute_no_trans") || (r.has("execute") && !slices.Contains(allowed, r.tgt))
	})
}
