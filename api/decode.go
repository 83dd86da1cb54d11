package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"
)

// Limits of the strict decoder.
const (
	MaxJSONDepth     = 8
	MaxJSONNumberLen = 32
	MaxJSONTokens    = 4096
)

// ErrBadJSON is wrapped by every error DecodeStrict returns.
var ErrBadJSON = errors.New("bad JSON body")

// DecodeStrict decodes one JSON value from data into v (a pointer to a
// struct) and refuses anything a lenient decoder would quietly accept:
// invalid UTF-8, keys that do not match a field of the target type exactly
// (encoding/json matches case-insensitively and ignores unknown keys),
// duplicate keys, nesting deeper than MaxJSONDepth, number literals longer
// than MaxJSONNumberLen, more than MaxJSONTokens tokens, and anything after
// the value. Errors are *FieldError values that wrap ErrBadJSON.
func DecodeStrict(data []byte, v any) error {
	if !utf8.Valid(data) {
		return badJSON("", "body is not valid UTF-8")
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("DecodeStrict: target must be a non-nil pointer")
	}
	// A zero target (the front's case: a fresh request or answer) is
	// checked and filled in one pass; whatever decodeFast cannot vouch
	// for goes the long way from a zero value again.
	if rv.Elem().IsZero() {
		if decodeFast(data, rv.Elem()) {
			return nil
		}
		rv.Elem().SetZero()
	}
	// The one-pass scanner (scanStrict, decodefast.go) accepts only what
	// the walker accepts; whatever it cannot vouch for, the walker
	// decides, with its errors.
	if !scanStrict(data, rv.Type().Elem()) {
		if err := walkStrict(data, rv.Type().Elem()); err != nil {
			return err
		}
	}
	if err := json.Unmarshal(data, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return badJSON(te.Field, "has the wrong type: expected "+jsonKind(te.Type))
		}
		return badJSON("", err.Error())
	}
	return nil
}

// walkStrict checks data for the target type t token by token with
// json.Decoder: the reference for scanStrict, and the source of the
// errors.
func walkStrict(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	w := walker{dec: dec}
	if err := w.value(t, "", 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return badJSON("", "trailing data after the JSON value")
	}
	return nil
}

func badJSON(field, reason string) error {
	return &decodeError{FieldError{Field: field, Reason: reason}}
}

type decodeError struct{ FieldError }

func (e *decodeError) Unwrap() []error { return []error{ErrBadJSON, &e.FieldError} }

func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	}
	return t.String()
}

type walker struct {
	dec    *json.Decoder
	tokens int
}

func (w *walker) token() (json.Token, error) {
	w.tokens++
	if w.tokens > MaxJSONTokens {
		return nil, badJSON("", fmt.Sprintf("more than %d JSON tokens", MaxJSONTokens))
	}
	tok, err := w.dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, badJSON("", "body is empty or truncated")
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, badJSON("", fmt.Sprintf("syntax error at byte %d: %s", se.Offset, se.Error()))
		}
		return nil, badJSON("", err.Error())
	}
	return tok, nil
}

// value walks one JSON value whose target type is t (nil: any).
func (w *walker) value(t reflect.Type, path string, depth int) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := w.token()
	if err != nil {
		return err
	}
	switch tok := tok.(type) {
	case json.Delim:
		if depth >= MaxJSONDepth {
			return badJSON(path, fmt.Sprintf("nesting deeper than %d", MaxJSONDepth))
		}
		if tok == '{' {
			return w.object(t, path, depth+1)
		}
		return w.array(t, path, depth+1)
	case json.Number:
		if len(tok) > MaxJSONNumberLen {
			return badJSON(path, fmt.Sprintf("number longer than %d characters", MaxJSONNumberLen))
		}
	}
	return nil
}

func (w *walker) object(t reflect.Type, path string, depth int) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	known := t == nil
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = structFields(t)
		case reflect.Map:
			elem, known = t.Elem(), true
		case reflect.Interface:
			known = true
		default:
			return badJSON(path, "has the wrong type: expected "+jsonKind(t))
		}
	}
	seen := make(map[string]struct{})
	for w.dec.More() {
		tok, err := w.token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return badJSON(path, "object key is not a string")
		}
		sub := joinPath(path, key)
		if _, dup := seen[key]; dup {
			return badJSON(sub, "duplicate key")
		}
		seen[key] = struct{}{}
		ft := elem
		if fields != nil {
			var ok bool
			if ft, ok = fields[key]; !ok {
				return badJSON(sub, "unknown field")
			}
		} else if !known {
			return badJSON(sub, "unknown field")
		}
		if err := w.value(ft, sub, depth); err != nil {
			return err
		}
	}
	_, err := w.token() // '}'
	return err
}

// arrayElem is the type of a JSON array's elements under the target t:
// t's element type for a slice or an array, nil (anything) for an
// interface or no target; ok is false when t takes no array.
func arrayElem(t reflect.Type) (elem reflect.Type, ok bool) {
	if t == nil {
		return nil, true
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return t.Elem(), true
	case reflect.Interface:
		return nil, true
	}
	return nil, false
}

func (w *walker) array(t reflect.Type, path string, depth int) error {
	elem, ok := arrayElem(t)
	if !ok {
		return badJSON(path, "has the wrong type: expected "+jsonKind(t))
	}
	for i := 0; w.dec.More(); i++ {
		if err := w.value(elem, fmt.Sprintf("%s[%d]", path, i), depth); err != nil {
			return err
		}
	}
	_, err := w.token() // ']'
	return err
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// structFields maps the exact JSON names of t's exported fields to their
// types. Embedded structs are not used in the wire types and are refused.
func structFields(t reflect.Type) map[string]reflect.Type {
	if v, ok := fieldCache.Load(t); ok {
		if m, ok := v.(map[string]reflect.Type); ok {
			return m
		}
	}
	m := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Anonymous {
			panic("api: embedded struct fields are not supported in wire types: " + t.String())
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	fieldCache.Store(t, m)
	return m
}
