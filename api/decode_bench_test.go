package api

import (
	"encoding/json"
	"testing"
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
