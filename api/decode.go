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
	// The one-pass scanner (scanStrict, below) accepts only what the walker
	// accepts; whatever it cannot vouch for, the walker decides, with its
	// errors.
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

func (w *walker) array(t reflect.Type, path string, depth int) error {
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Slice, reflect.Array:
			elem = t.Elem()
		case reflect.Interface:
		default:
			return badJSON(path, "has the wrong type: expected "+jsonKind(t))
		}
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

// scanStrict is the walker's fast path: one pass over data, no
// allocation for the wire types' small objects. It returns true only when
// the walker would accept data for the target type t: valid JSON syntax,
// one value and nothing after it but white space, every object's keys
// known to t and not repeated, no nesting deeper than MaxJSONDepth, no
// number literal longer than MaxJSONNumberLen, at most MaxJSONTokens
// tokens (counted as json.Decoder.Token yields them). It returns false for
// anything else, and for what it does not handle itself (a key with an
// escape sequence): then the walker runs and gives the error. data is
// valid UTF-8 (DecodeStrict checks it first).
func scanStrict(data []byte, t reflect.Type) bool {
	s := scanner{data: data}
	s.space()
	if !s.value(t, 0) {
		return false
	}
	s.space()
	return s.pos == len(s.data)
}

type scanner struct {
	data   []byte
	pos    int
	tokens int
}

// maxScanKeys is the number of keys of one object checked for repeats
// without a map.
const maxScanKeys = 16

func (s *scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// token counts one token, as the walker does.
func (s *scanner) token() bool {
	s.tokens++
	return s.tokens <= MaxJSONTokens
}

// value scans one value whose target type is t (nil: any) at the walker's
// depth.
func (s *scanner) value(t reflect.Type, depth int) bool {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s.pos >= len(s.data) || !s.token() {
		return false
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		if depth >= MaxJSONDepth {
			return false
		}
		s.pos++
		return s.object(t, depth+1)
	case c == '[':
		if depth >= MaxJSONDepth {
			return false
		}
		s.pos++
		return s.array(t, depth+1)
	case c == '"':
		_, ok := s.str()
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

func (s *scanner) literal(lit string) bool {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return false
	}
	s.pos += len(lit)
	return true
}

// number scans -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *scanner) number() bool {
	start := s.pos
	if s.data[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(s.data) && s.data[s.pos] == '0':
		s.pos++
	case s.pos < len(s.data) && s.data[s.pos] >= '1' && s.data[s.pos] <= '9':
		s.digits()
	default:
		return false
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if s.digits() == 0 {
			return false
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if s.digits() == 0 {
			return false
		}
	}
	return s.pos-start <= MaxJSONNumberLen
}

func (s *scanner) digits() int {
	start := s.pos
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
	}
	return s.pos - start
}

// str scans a string at s.pos and returns its raw contents (between the
// quotes) and whether it has no escape sequence; ok is false for an
// invalid string.
func (s *scanner) str() (raw []byte, plain bool) {
	s.pos++ // '"'
	start := s.pos
	plain = true
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			raw = s.data[start:s.pos]
			s.pos++
			return raw, true
		case c < 0x20:
			return nil, false
		case c == '\\':
			plain = false
			if s.pos+1 >= len(s.data) {
				return nil, false
			}
			switch s.data[s.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos += 2
			case 'u':
				if s.pos+6 > len(s.data) {
					return nil, false
				}
				for _, h := range s.data[s.pos+2 : s.pos+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return nil, false
					}
				}
				s.pos += 6
			default:
				return nil, false
			}
		default:
			s.pos++
		}
	}
	return nil, false
}

// key scans an object key; ok is false for an invalid string and for one
// with an escape sequence (the walker compares keys unescaped).
func (s *scanner) key() ([]byte, bool) {
	if s.pos >= len(s.data) || s.data[s.pos] != '"' || !s.token() {
		return nil, false
	}
	start := s.pos + 1
	if _, ok := s.str(); !ok {
		return nil, false
	}
	raw := s.data[start : s.pos-1]
	if bytes.IndexByte(raw, '\\') >= 0 {
		return nil, false
	}
	return raw, true
}

func (s *scanner) object(t reflect.Type, depth int) bool {
	var fields map[string]reflect.Type
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = structFields(t)
		case reflect.Map:
			elem = t.Elem()
		case reflect.Interface:
		default:
			return false
		}
	}
	var seenArr [maxScanKeys][]byte
	seen := seenArr[:0]
	var seenMap map[string]struct{}
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return s.token()
	}
	for {
		s.space()
		key, ok := s.key()
		if !ok {
			return false
		}
		// Repeated keys: a linear look for the first keys, a map beyond.
		if seenMap == nil && len(seen) == maxScanKeys {
			seenMap = make(map[string]struct{}, 2*maxScanKeys)
			for _, k := range seen {
				seenMap[string(k)] = struct{}{}
			}
		}
		if seenMap != nil {
			if _, dup := seenMap[string(key)]; dup {
				return false
			}
			seenMap[string(key)] = struct{}{}
		} else {
			for _, k := range seen {
				if bytes.Equal(k, key) {
					return false
				}
			}
			seen = append(seen, key)
		}
		ft := elem
		if fields != nil {
			if ft, ok = fields[string(key)]; !ok {
				return false
			}
		}
		s.space()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return false
		}
		s.pos++
		s.space()
		if !s.value(ft, depth) {
			return false
		}
		s.space()
		if s.pos >= len(s.data) {
			return false
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return s.token()
		default:
			return false
		}
	}
}

func (s *scanner) array(t reflect.Type, depth int) bool {
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Slice, reflect.Array:
			elem = t.Elem()
		case reflect.Interface:
		default:
			return false
		}
	}
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return s.token()
	}
	for {
		s.space()
		if !s.value(elem, depth) {
			return false
		}
		s.space()
		if s.pos >= len(s.data) {
			return false
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return s.token()
		default:
			return false
		}
	}
}
