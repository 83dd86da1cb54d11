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

// wireTypes are the request and answer types of every route, and the
// decoder tests' own.
func wireTypes() []reflect.Type {
	types := []reflect.Type{reflect.TypeFor[sample]()}
	for _, rt := range Routes {
		if rt.NewRequest != nil {
			types = append(types, reflect.TypeOf(rt.NewRequest()).Elem())
		}
		types = append(types, reflect.TypeOf(rt.NewResponse()).Elem())
	}
	return types
}

// checkDecodeFast fails when the one-pass decoder accepts what the walker
// refuses, or stores anything else than json.Unmarshal into a zero value.
func checkDecodeFast(t *testing.T, data []byte) {
	if !utf8.Valid(data) {
		return
	}
	for _, typ := range wireTypes() {
		fast := reflect.New(typ)
		if !decodeFast(data, fast.Elem()) {
			continue
		}
		if err := walkStrict(data, typ); err != nil {
			t.Fatalf("%s: decodeFast accepts %q, the walker refuses: %v", typ, data, err)
		}
		ref := reflect.New(typ)
		if err := json.Unmarshal(data, ref.Interface()); err != nil {
			t.Fatalf("%s: decodeFast accepts %q, json.Unmarshal refuses: %v", typ, data, err)
		}
		if !reflect.DeepEqual(fast.Interface(), ref.Interface()) {
			t.Fatalf("%s: %q: decodeFast stored %+v, json.Unmarshal %+v", typ, data, fast.Elem(), ref.Elem())
		}
	}
}

// decodeSeeds: each wire type's zero value and a filled server, encoded.
func decodeSeeds(t testing.TB) [][]byte {
	seeds := [][]byte{benchBody, []byte(`{"name":"x","n":-2,"tags":["a",null],"in":{"a":1},"attrs":{"k":"v"}}`),
		[]byte(`{"in":null,"tags":null,"attrs":null,"name":null}`), []byte(`{"n":1.5}`), []byte(`{"n":1e2}`),
		[]byte(`{"n":99999999999999999999}`), []byte(`{"name":"a\n"}`), []byte(`{"created_at":null}`),
		[]byte(`{"id":"5f1e2d3c4b5a697887960a2f","created_at":"2026-11-30T08:00:00Z","port":70000}`)}
	for _, typ := range wireTypes() {
		raw, err := json.Marshal(reflect.New(typ).Interface())
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, raw)
	}
	for _, s := range scanSeeds {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

func TestDecodeFastAgreesWithUnmarshal(t *testing.T) {
	accepted := 0
	for _, s := range decodeSeeds(t) {
		checkDecodeFast(t, s)
		if decodeFast(s, reflect.New(reflect.TypeFor[ServerCreate]()).Elem()) {
			accepted++
		}
	}
	if accepted == 0 {
		t.Error("decodeFast accepted no seed as a ServerCreate")
	}
}

// FuzzDecodeFast: the one-pass decoder accepts only what the walker
// accepts, and stores what json.Unmarshal stores.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range decodeSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(checkDecodeFast)
}

// BenchmarkValidateApproval is the validation of an approval request's
// outer body as the front and the core run it (its base64 fields counted
// against their lengths). Not run by `make test`.
func BenchmarkValidateApproval(b *testing.B) {
	v := &ApprovalRequest{Data: strings.Repeat("QUJD", 250), Nonce: strings.Repeat("QUJD", 8),
		PublicKey: strings.Repeat("QUJD", 10) + "QUI=", Signature: strings.Repeat("QUJD", 171)}
	b.ReportAllocs()
	for b.Loop() {
		if err := Validate(v); err != nil {
			b.Fatal(err)
		}
	}
}
