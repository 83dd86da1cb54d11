package web

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// appendJSON appends json.Marshal(v)'s bytes to b without the reflection
// walk of encoding/json for the shapes of the wire types: structs of
// strings, integers, booleans, times, pointers and slices of these. It
// returns ok false, and b unchanged, for anything else (a string that
// json.Marshal would escape, a map, a float, a type with its own
// marshaller, ...): then the caller uses json.Marshal. A test checks the
// bytes against json.Marshal for every route's types.
func appendJSON(b []byte, v any) ([]byte, bool) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return b, false
	}
	out, ok := appendValue(b, rv)
	if !ok {
		return b, false
	}
	return out, true
}

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	timeType          = reflect.TypeFor[time.Time]()
)

// encodePlan is what appendValue needs to know of a type, made once.
type encodePlan struct {
	// other: json.Marshal would call the type's own marshaller (time.Time
	// aside), or a struct field is one appendJSON does not write.
	other  bool
	fields []encodeField
}

type encodeField struct {
	index     int
	key       string // `"name":`
	omitEmpty bool
}

var encodePlans sync.Map // reflect.Type -> *encodePlan

func encodePlanOf(t reflect.Type) *encodePlan {
	if v, ok := encodePlans.Load(t); ok {
		if p, ok := v.(*encodePlan); ok {
			return p
		}
	}
	p := &encodePlan{}
	switch {
	case t == timeType:
	case t.Implements(jsonMarshalerType), t.Implements(textMarshalerType),
		reflect.PointerTo(t).Implements(jsonMarshalerType), reflect.PointerTo(t).Implements(textMarshalerType):
		p.other = true
	case t.Kind() == reflect.Struct:
		seen := map[string]bool{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Anonymous {
				p.other = true
				break
			}
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if name == "" {
				name = f.Name
			}
			omit := false
			for o := range strings.SplitSeq(opts, ",") {
				switch o {
				case "":
				case "omitempty":
					omit = true
				default: // string, omitzero: json's own rules
					p.other = true
				}
			}
			if seen[name] || !api.PlainName(name) {
				p.other = true
			}
			seen[name] = true
			p.fields = append(p.fields, encodeField{index: i, key: `"` + name + `":`, omitEmpty: omit})
		}
	}
	encodePlans.Store(t, p)
	return p
}

func appendValue(b []byte, v reflect.Value) ([]byte, bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return append(b, "null"...), true
		}
		if encodePlanOf(v.Type()).other {
			return b, false
		}
		return appendValue(b, v.Elem())
	case reflect.Bool, reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if v.Type().PkgPath() != "" && encodePlanOf(v.Type()).other {
			return b, false
		}
	case reflect.Struct, reflect.Slice:
		if encodePlanOf(v.Type()).other {
			return b, false
		}
	default:
		return b, false
	}
	switch v.Kind() {
	case reflect.Bool:
		return strconv.AppendBool(b, v.Bool()), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(b, v.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.AppendUint(b, v.Uint(), 10), true
	case reflect.String:
		return appendString(b, v.String())
	case reflect.Slice:
		if v.IsNil() {
			return append(b, "null"...), true
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return b, false // base64
		}
		b = append(b, '[')
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendValue(b, v.Index(i)); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	}
	// A struct.
	if v.Type() == timeType {
		tv, ok := v.Interface().(time.Time)
		if !ok {
			return b, false
		}
		t, err := tv.MarshalJSON()
		if err != nil {
			return b, false
		}
		return append(b, t...), true
	}
	b = append(b, '{')
	first := true
	for _, f := range encodePlanOf(v.Type()).fields {
		fv := v.Field(f.index)
		if f.omitEmpty && isEmpty(fv) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, f.key...)
		var ok bool
		if b, ok = appendValue(b, fv); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// isEmpty is json's omitempty test for the kinds appendValue writes.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String, reflect.Slice, reflect.Map, reflect.Array:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	}
	return false
}

// appendString quotes s when json.Marshal writes it as it is: printable
// ASCII without '"', '\\' or the characters it escapes for HTML ('<', '>',
// '&').
func appendString(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return b, false
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}
