package api

import (
	"mime"
	"strings"
	"testing"
)

func TestIsJSONContentType(t *testing.T) {
	for v, want := range map[string]bool{
		"application/json":                   true,
		"application/json; charset=utf-8":    true,
		"application/json;charset=UTF-8":     true,
		"application/json \t; CharSet=uTf-8": true,
		"application/json; charset=utf-8 ":   false, // header values arrive trimmed
		"application/json; charset=utf8":     false,
		"application/json; charset=latin1":   false,
		`application/json; charset="utf-8"`:  false,
		"application/json; charset = utf-8":  false,
		"application/json;":                  false,
		"application/json; ;charset=utf-8":   false,
		"application/json; charset=utf-8;":   false,
		"application/json; version=1":        false,
		"application/json;charset=utf-8;a=b": false,
		"application/jsonx":                  false,
		"Application/json":                   false,
		"text/json":                          false,
		"":                                   false,
	} {
		if got := IsJSONContentType([]string{v}); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
	if IsJSONContentType(nil) || IsJSONContentType([]string{"application/json", "application/json"}) {
		t.Error("no value or two values accepted")
	}
}

// FuzzIsJSONContentType: whatever IsJSONContentType accepts, the standard
// media-type parser reads as application/json with at most charset=utf-8.
func FuzzIsJSONContentType(f *testing.F) {
	for _, s := range []string{"application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8;x=1",
		`application/json; charset="utf-8"`, "text/plain"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if !IsJSONContentType([]string{v}) {
			return
		}
		mt, params, err := mime.ParseMediaType(v)
		if err != nil || mt != JSONContentType {
			t.Fatalf("%q accepted, parsed as %q %v", v, mt, err)
		}
		if len(params) > 1 || (len(params) == 1 && !strings.EqualFold(params["charset"], "utf-8")) {
			t.Fatalf("%q accepted with parameters %v", v, params)
		}
	})
}
