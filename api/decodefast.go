package api

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// decodeFast is DecodeStrict's one pass for a zero target: it checks data
// as scanStrict does and stores the values into v (addressable) as it
// goes. It returns true only when data passes every check and v then
// holds what json.Unmarshal would store into a zero v. For anything it
// does not handle itself (a string or key with an escape sequence, a
// number that does not fit its field or is not an integer for an integer
// field, a JSON type that does not match the field's, interface fields,
// TextUnmarshaler types, an UnmarshalJSON error, ...) it returns false,
// and DecodeStrict zeroes v and takes the scanner or walker and
// json.Unmarshal, which give the errors.
func decodeFast(data []byte, v reflect.Value) bool {
	s := scanner{data: data}
	s.space()
	if !s.decode(v, 0) {
		return false
	}
	s.space()
	return s.pos == len(s.data)
}

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodePlan is what decode needs to know of a type, computed once.
type decodePlan struct {
	// unmarshalJSON: *T implements json.Unmarshaler; other: *T implements
	// encoding.TextUnmarshaler only, or T is a struct decode does not
	// handle (a field named twice, a ",string" option).
	unmarshalJSON, other bool
	// fields are a struct's fields by exact JSON name.
	fields map[string]int
}

var planCache sync.Map // reflect.Type -> *decodePlan

// basicPlan is the plan of the predeclared types (string, int, bool, ...):
// they have no methods.
var basicPlan = &decodePlan{}

func planOf(t reflect.Type) *decodePlan {
	switch t.Kind() {
	case reflect.Bool, reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		if t.PkgPath() == "" {
			return basicPlan // predeclared: a defined type has a package path
		}
	}
	if v, ok := planCache.Load(t); ok {
		if p, ok := v.(*decodePlan); ok {
			return p
		}
	}
	p := &decodePlan{}
	pt := reflect.PointerTo(t)
	switch {
	case pt.Implements(jsonUnmarshalerType):
		p.unmarshalJSON = true
	case pt.Implements(textUnmarshalerType):
		p.other = true
	case t.Kind() == reflect.Struct:
		p.fields = make(map[string]int, t.NumField())
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() || f.Anonymous {
				// structFields refuses embedded fields; json ignores
				// unexported ones.
				p.other = p.other || f.Anonymous
				continue
			}
			// Named as structFields names it; a name json.Unmarshal
			// might read otherwise is left to it.
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if _, dup := p.fields[name]; dup || !PlainName(name) || strings.Contains(","+opts+",", ",string,") {
				p.other = true
			}
			p.fields[name] = i
		}
	}
	planCache.Store(t, p)
	return p
}

// PlainName reports whether a field's JSON name is letters, digits, '_',
// '-' and '.': a tag name json.Unmarshal takes as it is and json.Marshal
// writes as it is (no escaping). The front's fast encoder uses it too.
func PlainName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; !isAlnumByte(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// decode scans one value into v at the walker's depth.
func (s *scanner) decode(v reflect.Value, depth int) bool {
	if s.pos >= len(s.data) || !s.token() {
		return false
	}
	c := s.data[s.pos]
	if v.Kind() == reflect.Pointer {
		if c == 'n' {
			// null leaves a nil pointer nil (json.Unmarshal sets it
			// to nil, or calls a nil receiver's UnmarshalJSON).
			return v.IsNil() && s.literal("null")
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		s.tokens-- // the pointed value counts the token
		return s.decode(v.Elem(), depth)
	}
	plan := planOf(v.Type())
	if plan.other || v.Kind() == reflect.Interface {
		return false
	}
	if c == 'n' {
		// null: slices and maps become nil, other kinds stay as they are.
		if plan.unmarshalJSON || !s.literal("null") {
			return false
		}
		if k := v.Kind(); k == reflect.Slice || k == reflect.Map {
			v.SetZero()
		}
		return true
	}
	if plan.unmarshalJSON {
		// The same checks as the walker's for this type, then the
		// type's own decoder on the value's bytes, as json.Unmarshal.
		start := s.pos
		s.tokens--
		if !s.value(v.Type(), depth) {
			return false
		}
		u, ok := v.Addr().Interface().(json.Unmarshaler)
		return ok && u.UnmarshalJSON(s.data[start:s.pos]) == nil
	}
	switch {
	case c == '{':
		if depth >= MaxJSONDepth {
			return false
		}
		s.pos++
		return s.decodeObject(v, plan, depth+1)
	case c == '[':
		if depth >= MaxJSONDepth || v.Kind() != reflect.Slice {
			return false
		}
		s.pos++
		return s.decodeSlice(v, depth+1)
	case c == '"':
		raw, ok := s.str()
		if !ok || bytes.IndexByte(raw, '\\') >= 0 || v.Kind() != reflect.String {
			return false
		}
		v.SetString(string(raw))
		return true
	case c == '-' || (c >= '0' && c <= '9'):
		start := s.pos
		if !s.number() {
			return false
		}
		return setNumber(v, s.data[start:s.pos])
	case c == 't' || c == 'f':
		lit := "true"
		if c == 'f' {
			lit = "false"
		}
		if !s.literal(lit) || v.Kind() != reflect.Bool {
			return false
		}
		v.SetBool(c == 't')
		return true
	}
	return false
}

// setNumber stores the number literal num into v as json.Unmarshal does,
// or returns false where json.Unmarshal would refuse it (or might: a
// fraction or exponent for an integer).
func setNumber(v reflect.Value, num []byte) bool {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if bytes.ContainsAny(num, ".eE") {
			return false
		}
		n, err := strconv.ParseInt(string(num), 10, 64)
		if err != nil || v.OverflowInt(n) {
			return false
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if bytes.ContainsAny(num, "-.eE") {
			return false
		}
		n, err := strconv.ParseUint(string(num), 10, 64)
		if err != nil || v.OverflowUint(n) {
			return false
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(string(num), v.Type().Bits())
		if err != nil || v.OverflowFloat(f) {
			return false
		}
		v.SetFloat(f)
	default:
		return false
	}
	return true
}

func (s *scanner) decodeObject(v reflect.Value, plan *decodePlan, depth int) bool {
	isMap := v.Kind() == reflect.Map
	if isMap {
		if v.Type().Key().Kind() != reflect.String || planOf(v.Type().Key()).other || planOf(v.Type().Key()).unmarshalJSON {
			return false
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
	} else if v.Kind() != reflect.Struct {
		return false
	}
	var seenArr [maxScanKeys][]byte
	seen := seenArr[:0]
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return s.token()
	}
	for {
		s.space()
		key, ok := s.key()
		if !ok || len(seen) == maxScanKeys {
			return false
		}
		for _, k := range seen {
			if bytes.Equal(k, key) {
				return false
			}
		}
		seen = append(seen, key)
		s.space()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return false
		}
		s.pos++
		s.space()
		if isMap {
			elem := reflect.New(v.Type().Elem()).Elem()
			if !s.decode(elem, depth) {
				return false
			}
			v.SetMapIndex(reflect.ValueOf(string(key)).Convert(v.Type().Key()), elem)
		} else {
			i, ok := plan.fields[string(key)]
			if !ok || !s.decode(v.Field(i), depth) {
				return false
			}
		}
		if more, ok := s.next('}'); !more {
			return ok
		}
	}
}

func (s *scanner) decodeSlice(v reflect.Value, depth int) bool {
	if v.Type().Elem().Kind() == reflect.Uint8 {
		return false // []byte is base64 in a string, an array is json's odd case
	}
	if v.Type().Elem().Kind() == reflect.String && v.IsNil() {
		// Strings (most lists of the wire types): the slice made once, at
		// its length.
		if pos, tokens := s.pos, s.tokens; s.decodeStrings(v) {
			return true
		} else if s.pos, s.tokens = pos, tokens; !v.IsNil() {
			return false
		}
	}
	if v.IsNil() {
		v.Set(reflect.MakeSlice(v.Type(), 0, 0))
	}
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return s.token()
	}
	for i := 0; ; i++ {
		s.space()
		if i >= v.Cap() {
			v.Grow(1)
		}
		v.SetLen(i + 1)
		v.Index(i).SetZero()
		if !s.decode(v.Index(i), depth) {
			return false
		}
		if more, ok := s.next(']'); !more {
			return ok
		}
	}
}

// maxStrings is the longest list decodeStrings takes; a longer one, and
// one with an element it does not take, is decoded element by element.
const maxStrings = 16

// decodeStrings decodes a list of at most maxStrings plain strings (no
// escape sequence) into the nil slice v, after its '['. It returns false,
// v still nil, for any other list.
func (s *scanner) decodeStrings(v reflect.Value) bool {
	if planOf(v.Type().Elem()).other || planOf(v.Type().Elem()).unmarshalJSON {
		return false
	}
	var elems [maxStrings][]byte
	n := 0
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		return s.token()
	}
	for {
		s.space()
		if n == maxStrings || s.pos >= len(s.data) || s.data[s.pos] != '"' || !s.token() {
			return false
		}
		raw, ok := s.str()
		if !ok || bytes.IndexByte(raw, '\\') >= 0 {
			return false
		}
		elems[n] = raw
		n++
		more, ok := s.next(']')
		if !ok {
			return false
		}
		if more {
			continue
		}
		// The strings share one allocation.
		total := 0
		for _, e := range elems[:n] {
			total += len(e)
		}
		var all strings.Builder
		all.Grow(total)
		for _, e := range elems[:n] {
			all.Write(e)
		}
		joined, off := all.String(), 0
		sl := reflect.MakeSlice(v.Type(), n, n)
		for i, e := range elems[:n] {
			sl.Index(i).SetString(joined[off : off+len(e)])
			off += len(e)
		}
		v.Set(sl)
		return true
	}
}
