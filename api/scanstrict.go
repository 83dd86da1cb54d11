package api

import (
	"bytes"
	"reflect"
)

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
// quotes, escape sequences as they are); ok is false for an invalid
// string.
func (s *scanner) str() (raw []byte, ok bool) {
	s.pos++ // '"'
	start := s.pos
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
		if more, ok := s.next('}'); !more {
			return ok
		}
	}
}

// next reads what follows a member or an element: a ',' (more), or the
// closing byte, whose token is then counted (ok is the count's verdict);
// anything else is not ok.
func (s *scanner) next(closing byte) (more, ok bool) {
	s.space()
	if s.pos >= len(s.data) {
		return false, false
	}
	switch s.data[s.pos] {
	case ',':
		s.pos++
		return true, true
	case closing:
		s.pos++
		return false, s.token()
	}
	return false, false
}

func (s *scanner) array(t reflect.Type, depth int) bool {
	elem, ok := arrayElem(t)
	if !ok {
		return false
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
		if more, ok := s.next(']'); !more {
			return ok
		}
	}
}
