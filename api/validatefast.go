package api

import (
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"
	"github.com/portcullis-gw/portcullis/internal/ascii"
)

// fastValid is Validate's fast path: it walks v as the validator does
// (go-playground/validator with required structs enabled: pointers
// followed, nested structs validated after their field's rules, dive
// into slices) and checks the rules the wire types use, from a plan made
// once per type. It returns true only when the validator would find no
// error; for a failing rule, and for anything it does not know (another
// tag, a map dive, an interface, a rule on a kind it does not check), it
// returns false and the validator decides.
func fastValid(v any) bool {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct || rv.Type().ConvertibleTo(timeType) {
		return false
	}
	return structValid(rv)
}

var (
	timeType   = reflect.TypeFor[time.Time]()
	valuerType = reflect.TypeFor[validator.Valuer]()
)

type ruleKind int

const (
	ruleRequired ruleKind = iota
	ruleOmitEmpty
	ruleDive
	ruleMin
	ruleMax
	ruleLen
	ruleOneOf
	ruleUnique
	ruleStartsWith
	ruleFormat
)

type rule struct {
	kind  ruleKind
	n     int64    // min, max, len
	words []string // oneof
	param string   // startswith
	fn    func(string) bool
}

// builtinFormats are the validator's own string formats the wire types
// use, written as the validator checks them.
var builtinFormats = map[string]func(string) bool{
	// ^(0[xX])?[0-9a-fA-F]+$
	"hexadecimal": func(s string) bool {
		if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
			s = s[2:]
		}
		if s == "" {
			return false
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; !isDigit(c) && !(c >= 'a' && c <= 'f') && !(c >= 'A' && c <= 'F') {
				return false
			}
		}
		return true
	},
	// ^[\x20-\x7E]*$
	"printascii": func(s string) bool {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] > 0x7e {
				return false
			}
		}
		return true
	},
	"ip":   func(s string) bool { return net.ParseIP(s) != nil },
	"cidr": func(s string) bool { _, _, err := net.ParseCIDR(s); return err == nil },
	"cidrv4": func(s string) bool {
		ip, n, err := net.ParseCIDR(s)
		return err == nil && ip.To4() != nil && n.IP.Equal(ip)
	},
}

// parseRules reads a validate tag; ok is false for a tag fastValid does
// not know.
func parseRules(tag string) (rules []rule, ok bool) {
	for _, t := range strings.Split(tag, ",") {
		name, param, hasParam := strings.Cut(t, "=")
		var r rule
		switch {
		case strings.ContainsAny(t, "|'"):
			return nil, false
		case name == "required" && !hasParam:
			r.kind = ruleRequired
		case name == "omitempty" && !hasParam:
			r.kind = ruleOmitEmpty
		case name == "dive" && !hasParam:
			r.kind = ruleDive
		case name == "unique" && !hasParam:
			r.kind = ruleUnique
		case (name == "min" || name == "max" || name == "len") && hasParam:
			n, err := strconv.ParseInt(param, 0, 64)
			if err != nil || n < 0 {
				return nil, false
			}
			r.kind, r.n = map[string]ruleKind{"min": ruleMin, "max": ruleMax, "len": ruleLen}[name], n
		case name == "oneof" && hasParam:
			r.kind, r.words = ruleOneOf, strings.Fields(param)
		case name == "startswith" && hasParam:
			r.kind, r.param = ruleStartsWith, param
		case !hasParam && customFormats[name] != nil:
			r.kind, r.fn = ruleFormat, customFormats[name]
		case !hasParam && builtinFormats[name] != nil:
			r.kind, r.fn = ruleFormat, builtinFormats[name]
		default:
			return nil, false
		}
		rules = append(rules, r)
	}
	return rules, true
}

type fieldPlan struct {
	index int
	rules []rule
}

// structPlan is a struct type's fields as the validator walks them; ok
// is false when one has a tag fastValid does not know.
type structPlan struct {
	ok     bool
	fields []fieldPlan
}

var structPlans sync.Map // reflect.Type -> *structPlan

func planFor(t reflect.Type) *structPlan {
	if v, ok := structPlans.Load(t); ok {
		if p, ok := v.(*structPlan); ok {
			return p
		}
	}
	p := &structPlan{ok: true}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			p.ok = false
			break
		}
		tag := f.Tag.Get("validate")
		if !f.IsExported() || tag == "-" {
			continue
		}
		if hasValuer(f.Type) {
			// The validator checks what the type's ValidatorValue gives.
			p.ok = false
			break
		}
		fp := fieldPlan{index: i}
		if tag != "" {
			var ok bool
			if fp.rules, ok = parseRules(tag); !ok {
				p.ok = false
				break
			}
		}
		p.fields = append(p.fields, fp)
	}
	structPlans.Store(t, p)
	return p
}

// hasValuer reports whether t, or a type fieldValid reaches from it
// (through pointers and slice elements), implements validator.Valuer.
// Struct types are checked by their own plans. A type nested deeper than
// 16 levels (a recursive one) counts as having one: the validator decides.
func hasValuer(t reflect.Type) bool {
	for range 16 {
		if t.NumMethod() > 0 && t.Implements(valuerType) {
			return true
		}
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			t = t.Elem()
		default:
			return false
		}
	}
	return true
}

func structValid(v reflect.Value) bool {
	p := planFor(v.Type())
	if !p.ok {
		return false
	}
	for _, f := range p.fields {
		if !fieldValid(v.Field(f.index), f.rules) {
			return false
		}
	}
	return true
}

// fieldValid is the validator's traverseField for the rules fastValid
// knows.
func fieldValid(v reflect.Value, rules []rule) bool {
	isPtr := false
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			// No rule, or omitempty first: nothing to check; any other
			// rule fails on nil.
			return len(rules) == 0 || rules[0].kind == ruleOmitEmpty
		}
		isPtr, v = true, v.Elem()
	}
	switch {
	case v.Kind() == reflect.Interface:
		// The validator walks into a non-nil one.
		return v.IsNil() && len(rules) == 0
	}
	nested := v.Kind() == reflect.Struct && !v.Type().ConvertibleTo(timeType)
	for i, r := range rules {
		switch r.kind {
		case ruleOmitEmpty:
			if !hasValue(v, isPtr) {
				return true
			}
		case ruleDive:
			if v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
				return false
			}
			for j := 0; j < v.Len(); j++ {
				if !fieldValid(v.Index(j), rules[i+1:]) {
					return false
				}
			}
			return true
		default:
			if !r.check(v, isPtr) {
				return false
			}
		}
	}
	if nested {
		return structValid(v)
	}
	return true
}

// hasValue is the validator's required: a non-nil slice, map or
// pointer; for other kinds, a value reached through a pointer or a
// non-zero one.
func hasValue(v reflect.Value, isPtr bool) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface, reflect.Chan, reflect.Func:
		return !v.IsNil()
	}
	return isPtr || !v.IsZero()
}

// size is what min, max and len compare for v's kind; ok is false for a
// kind fastValid leaves to the validator.
func size(v reflect.Value) (n int64, ok bool) {
	switch v.Kind() {
	case reflect.String:
		return int64(runeCount(v.String())), true
	case reflect.Slice, reflect.Map, reflect.Array:
		return int64(v.Len()), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Type() == reflect.TypeFor[time.Duration]() {
			return 0, false
		}
		return v.Int(), true
	}
	return 0, false
}

// runeCount is utf8.RuneCountInString, counting a leading run of ASCII
// eight bytes at a time (ascii.Prefix): the strings checked against a
// length are mostly ASCII (the approval's base64 fields, about 1.5 KiB,
// are counted by the front and again by the core). A run of ASCII ends on
// a rune boundary, so the rest is counted as the whole would be.
func runeCount(s string) int {
	n := ascii.Prefix(s)
	return n + utf8.RuneCountInString(s[n:])
}

func (r rule) check(v reflect.Value, isPtr bool) bool {
	switch r.kind {
	case ruleRequired:
		return hasValue(v, isPtr)
	case ruleMin, ruleMax, ruleLen:
		n, ok := size(v)
		return ok && (r.kind == ruleMin && n >= r.n || r.kind == ruleMax && n <= r.n || r.kind == ruleLen && n == r.n)
	case ruleOneOf:
		var s string
		switch v.Kind() {
		case reflect.String:
			s = v.String()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			s = strconv.FormatInt(v.Int(), 10)
		default:
			return false
		}
		return slices.Contains(r.words, s)
	case ruleUnique:
		if (v.Kind() != reflect.Slice && v.Kind() != reflect.Array) || v.Type().Elem().Kind() != reflect.String {
			return false
		}
		if v.Len() > 16 {
			seen := make(map[string]struct{}, v.Len())
			for i := 0; i < v.Len(); i++ {
				if _, dup := seen[v.Index(i).String()]; dup {
					return false
				}
				seen[v.Index(i).String()] = struct{}{}
			}
			return true
		}
		for i := 0; i < v.Len(); i++ {
			for j := 0; j < i; j++ {
				if v.Index(i).String() == v.Index(j).String() {
					return false
				}
			}
		}
		return true
	case ruleStartsWith:
		return v.Kind() == reflect.String && strings.HasPrefix(v.String(), r.param)
	case ruleFormat:
		return v.Kind() == reflect.String && r.fn(v.String())
	}
	return false
}
