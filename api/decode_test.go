package api

import (
	"errors"
	"strings"
	"testing"
)

type inner struct {
	A int `json:"a"`
}

type sample struct {
	Name  string            `json:"name"`
	N     int               `json:"n,omitempty"`
	Tags  []string          `json:"tags"`
	In    *inner            `json:"in"`
	Attrs map[string]string `json:"attrs"`
	Skip  string            `json:"-"`
}

func TestDecodeStrict(t *testing.T) {
	deep := strings.Repeat(`{"in":`, 1) + `{"a":1}` + `}`
	cases := []struct {
		name, body string
		field      string // expected field in the error; "" with ok
		ok         bool
	}{
		{"valid", `{"name":"x","n":2,"tags":["a"],"in":{"a":1},"attrs":{"k":"v"}}`, "", true},
		{"valid nested", deep, "", true},
		{"empty object", `{}`, "", true},
		{"unknown field", `{"name":"x","admin":true}`, "admin", false},
		{"unknown nested field", `{"in":{"a":1,"b":2}}`, "in.b", false},
		{"case mismatch", `{"Name":"x"}`, "Name", false},
		{"dash field", `{"Skip":"x"}`, "Skip", false},
		{"duplicate key", `{"name":"x","name":"y"}`, "name", false},
		{"duplicate nested key", `{"in":{"a":1,"a":2}}`, "in.a", false},
		{"duplicate map key", `{"attrs":{"k":"1","k":"2"}}`, "attrs.k", false},
		{"trailing data", `{"name":"x"} {}`, "", false},
		{"trailing garbage", `{"name":"x"}x`, "", false},
		{"two values", `{}{}`, "", false},
		{"not an object", `["x"]`, "", false},
		{"wrong type", `{"n":"2"}`, "n", false},
		{"wrong type array", `{"tags":"a"}`, "tags", false},
		{"long number", `{"n":` + strings.Repeat("1", 40) + `}`, "n", false},
		{"fraction into int", `{"n":1.5}`, "n", false},
		{"empty", ``, "", false},
		{"truncated", `{"name":`, "", false},
		{"invalid utf8", "{\"name\":\"\xff\"}", "", false},
		{"too deep", `{"attrs":` + strings.Repeat(`[`, 20) + strings.Repeat(`]`, 20) + `}`, "attrs", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var v sample
			err := DecodeStrict([]byte(tc.body), &v)
			if tc.ok {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %q", tc.body)
			}
			if !errors.Is(err, ErrBadJSON) {
				t.Fatalf("error does not wrap ErrBadJSON: %v", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a FieldError: %v", err)
			}
			if tc.field != "" && fe.Field != tc.field {
				t.Fatalf("field = %q, want %q (%v)", fe.Field, tc.field, err)
			}
		})
	}
}

func TestDecodeStrictTokenLimit(t *testing.T) {
	body := `{"tags":[` + strings.Repeat(`"a",`, MaxJSONTokens) + `"a"]}`
	var v sample
	if err := DecodeStrict([]byte(body), &v); err == nil || !strings.Contains(err.Error(), "tokens") {
		t.Fatalf("got %v", err)
	}
}

func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{`{"name":"x"}`, `{"name":"x","name":"y"}`, `{"in":{"a":1}}`, `{}{}`, `{"tags":[1,2]}`,
		`{"attrs":{"k":"v"}}`, `{"n":1e400}`, "{\"name\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v sample
		if err := DecodeStrict(data, &v); err != nil {
			if !errors.Is(err, ErrBadJSON) {
				t.Fatalf("error does not wrap ErrBadJSON: %v", err)
			}
			return
		}
		// Whatever is accepted re-encodes and decodes to the same value.
		var again sample
		raw := mustMarshal(t, v)
		if err := DecodeStrict(raw, &again); err != nil {
			t.Fatalf("re-encoded value %s refused: %v", raw, err)
		}
	})
}
