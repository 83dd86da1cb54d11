package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

var benchBody = []byte(`{"name":"vpn-main","protocol":"udp","port":1194,"network":"10.8.0.0/24","dynamic_firewall":true,"hosts":["198.51.100.7","vpn.example.com"],"organizations":["0123456789abcdef01234567"]}`)

// BenchmarkDecode compares the strict decoder (plus validation) with a plain
// encoding/json Unmarshal of the same body, the baseline it replaces.
func BenchmarkDecode(b *testing.B) {
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v ServerCreate
			if err := json.Unmarshal(benchBody, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecodeStrict", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v ServerCreate
			if err := DecodeStrict(benchBody, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecodeStrict+Validate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v ServerCreate
			if err := DecodeStrict(benchBody, &v); err != nil {
				b.Fatal(err)
			}
			if err := Validate(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// scanSeeds are bodies for the scanner's checks against the walker.
var scanSeeds = []string{`{"name":"x","n":2,"tags":["a"],"in":{"a":1},"attrs":{"k":"v"}}`, `{}`, ` {"name":"x"} `,
	`{"name":"x","name":"y"}`, `{"attrs":{"k":"1","k":"2"}}`, `{"in":{"a":1,"b":2}}`, `{"Name":"x"}`, `{"n":-0.5e+3}`,
	`{"n":01}`, `{"n":1.}`, `{"n":` + strings.Repeat("1", 40) + `}`, `{"name":"a\u00e9\n\"b"}`, `{"na\u006de":"x"}`,
	`{"tags":[1,[2,{"a":null}],true,false]}`, `{"attrs":` + strings.Repeat(`[`, 9) + strings.Repeat(`]`, 9) + `}`,
	`{"name":"x"}x`, `{}{}`, `{"name":"x",}`, `{"tags":[1,]}`, `["x"]`, `"x"`, `1`, `null`, `{"in":[1]}`, `{"tags":{}}`,
	`{"tags":[` + strings.Repeat(`"a",`, MaxJSONTokens) + `"a"]}`, "{\"name\":\"a\tb\"}", `{"name":"\ud800"}`,
	string(benchBody)}

// checkScan fails when the scanner accepts what the walker refuses, and
// when it refuses a body without escape sequences that the walker accepts
// (the fast path would then be missed, not wrong).
func checkScan(t *testing.T, data []byte) {
	if !utf8.Valid(data) {
		return
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[sample](), reflect.TypeFor[ServerCreate](), reflect.TypeFor[Server]()} {
		scan, walk := scanStrict(data, typ), walkStrict(data, typ)
		if scan && walk != nil {
			t.Fatalf("%s: scanner accepts %q, walker refuses: %v", typ, data, walk)
		}
		if !scan && walk == nil && !bytes.ContainsRune(data, '\\') {
			t.Fatalf("%s: scanner refuses %q, walker accepts", typ, data)
		}
	}
}

func TestScanAgreesWithWalker(t *testing.T) {
	for _, s := range scanSeeds {
		checkScan(t, []byte(s))
	}
}

// FuzzScanStrict: the one-pass scanner never accepts what the walker
// refuses.
func FuzzScanStrict(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkScan)
}
