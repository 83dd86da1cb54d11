// Package config holds the typed values the three daemons' configuration
// is made of (durations, addresses, prefixes, URLs, counts…) and the one way
// they are read: from a TOML file (the core), a JSON settings file (the link
// agent) or a flag.
//
// Every value parses and checks itself (encoding.TextUnmarshaler), so
// BurntSushi/toml, encoding/json and flag.TextVar all use the same parser;
// a value with a range carries it (Duration, Int) and says it in its error.
// A bad value is an *Error naming its key:
//
//	config: approval.window: "5x" is not a duration between 5s and 12h
//
// Unknown keys in a file are an error naming them, as is bad syntax.
package config

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Error is a bad value; Key names it as the file writes it
// ("approval.window", "web.public_urls[1]") or the flag that set it.
type Error struct {
	Key string
	Err error
}

func (e *Error) Error() string { return "config: " + e.Key + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Set parses text into v; a bad value is an *Error naming key.
func Set(key, text string, v encoding.TextUnmarshaler) error {
	if err := v.UnmarshalText([]byte(text)); err != nil {
		return &Error{Key: key, Err: err}
	}
	return nil
}

// LoadTOML decodes the TOML file at path over v, a pointer to a struct that
// holds the defaults (and so the ranges of its values). Bad syntax, unknown
// keys and bad values are errors; the last two name the key.
func LoadTOML(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	// Syntax first, so that every ParseError of the typed decode below is a
	// bad value.
	var syntax map[string]any
	if _, err := toml.Decode(string(raw), &syntax); err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return fmt.Errorf("config %s: %s", path, perr.ErrorWithPosition())
		}
		return fmt.Errorf("config %s: %w", path, err)
	}
	md, err := toml.Decode(string(raw), v)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) && perr.LastKey != "" {
			return valueError(perr.LastKey, perr.Message)
		}
		return fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return unknownKeys(path, keys)
	}
	return nil
}

// valueError rebuilds the *Error of a value toml wrapped into a ParseError
// (which keeps only its text); an array element's text starts with its
// index ("[1]: …", see decodeList).
func valueError(key, msg string) *Error {
	if idx, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(idx, "[") && strings.HasSuffix(idx, "]") {
		key, msg = key+idx, rest
	}
	return &Error{Key: key, Err: errors.New(msg)}
}

// DecodeJSON decodes a settings file holding one flat JSON object into v, a
// pointer to a struct, key by key with each value's own parser: unknown
// keys are an error naming them, as in a TOML file, and a bad value an
// *Error naming its key (an array element's with its index). A field
// tagged config:"required" must be present and not empty: a missing one is
// parsed as "" (its parser's error) or is an error saying it must be set.
// path names the file in errors.
func DecodeJSON(path string, raw []byte, v any) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	rv := reflect.ValueOf(v).Elem()
	t := rv.Type()
	fields := map[string]int{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" {
			name = t.Field(i).Name
		}
		fields[name] = i
	}
	var unknown []string
	for k := range obj {
		if _, ok := fields[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		return unknownKeys(path, unknown)
	}
	for i := range t.NumField() { // the first bad key in the struct's order
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" {
			name = t.Field(i).Name
		}
		f := rv.Field(i)
		required := t.Field(i).Tag.Get("config") == "required"
		text, present := obj[name]
		if !present && !required {
			continue
		}
		if !present {
			text = json.RawMessage(`""`)
		}
		if err := json.Unmarshal(text, f.Addr().Interface()); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				want := te.Type
				if want.Kind() == reflect.Pointer {
					want = want.Elem()
				}
				return &Error{Key: name, Err: fmt.Errorf("%s is a JSON %s; want %s", text, te.Value, want)}
			}
			return valueError(name, err.Error())
		}
		if required && f.IsZero() {
			return &Error{Key: name, Err: errors.New("must be set")}
		}
	}
	return nil
}

func unknownKeys(path string, keys []string) error {
	sort.Strings(keys)
	return fmt.Errorf("config %s: unknown key %s", path, strings.Join(keys, ", "))
}

// decodeList decodes a TOML array of strings element by element with T's
// own parser; a bad element's error starts with its index.
func decodeList[T any, P interface {
	*T
	encoding.TextUnmarshaler
}](data any) ([]T, error) {
	arr, ok := data.([]any)
	if !ok {
		return nil, fmt.Errorf("%v is not an array", data)
	}
	out := make([]T, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("[%d]: %v is not a string", i, e)
		}
		if err := P(&out[i]).UnmarshalText([]byte(s)); err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
	}
	return out, nil
}

// Strings returns the text of each value.
func Strings[T fmt.Stringer](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}
