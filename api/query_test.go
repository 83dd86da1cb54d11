package api

import (
	"errors"
	"strings"
	"testing"
)

func TestParseQuery(t *testing.T) {
	sync := RouteProfileSync.Route
	got, err := sync.ParseQuery("ver=2", false)
	if err != nil || got["ver"] != "2" || len(got) != 1 {
		t.Fatalf("ver=2: %v %v", got, err)
	}
	if q := sync.BuildQuery(got); q != "?ver=2" {
		t.Fatalf("BuildQuery %q", q)
	}
	for raw, param := range map[string]string{
		"": "ver", "ver=3": "ver", "ver=": "ver", "ver=2&ver=2": "ver", "ver=2&x=1": "x", "x=1": "x",
		"ver=%32": "ver", "ver=2 ": "ver", "ver": "", "=2": "", "ver=2&": "", "&ver=2": "", "Ver=2": "",
		"ver=2;x=1": "ver", strings.Repeat("ver=2&", 50) + "ver=2": "",
	} {
		_, err := sync.ParseQuery(raw, false)
		var qe *QueryError
		if !errors.As(err, &qe) || qe.Param != param {
			t.Errorf("%q: %v, want a QueryError naming %q", raw, err, param)
		}
	}
	if _, err := sync.ParseQuery("", true); err == nil {
		t.Error("a bare ? accepted on the sync route")
	}
	org := RouteOrgList.Route
	if v, err := org.ParseQuery("", false); err != nil || v != nil {
		t.Errorf("no query on a plain route: %v %v", v, err)
	}
	for _, raw := range []string{"x=1", "ver=2", "a"} {
		if _, err := org.ParseQuery(raw, false); err == nil {
			t.Errorf("%q accepted on a route without query parameters", raw)
		}
	}
	if _, err := org.ParseQuery("", true); err == nil {
		t.Error("a bare ? accepted")
	}
	if q := org.BuildQuery(nil); q != "" {
		t.Errorf("BuildQuery on a plain route: %q", q)
	}
}

// FuzzParseQuery: whatever the sync route accepts is exactly ver=2, and
// rebuilding it gives the canonical form; no route without declared
// parameters accepts anything.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"ver=2", "ver=3", "ver=2&ver=2", "ver=2&x=1", "ver=%32", "", "&", "=", "ver=2;a", "v\x00=2"} {
		f.Add(s, false)
	}
	f.Add("", true)
	f.Fuzz(func(t *testing.T, raw string, forced bool) {
		v, err := RouteProfileSync.Route.ParseQuery(raw, forced)
		if err == nil {
			if len(v) != 1 || v["ver"] != "2" || RouteProfileSync.Route.BuildQuery(v) != "?"+raw {
				t.Fatalf("%q (forced %v) accepted as %v", raw, forced, v)
			}
		} else if qe := (*QueryError)(nil); !errors.As(err, &qe) {
			t.Fatalf("%q: error %T", raw, err)
		}
		if _, err := RouteOrgList.Route.ParseQuery(raw, forced); err == nil && (raw != "" || forced) {
			t.Fatalf("%q accepted on a route without query parameters", raw)
		}
	})
}
