package api

import (
	"errors"
	"strings"
	"testing"
)

func TestParseQuery(t *testing.T) {
	sync := RouteProfileSync.Route()
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
	org := RouteOrgList.Route()
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

// TestParseOptionalQuery: the audit route's parameters may be left out,
// given in any order, each once and in its format; the canonical form puts
// them in the declared order.
func TestParseOptionalQuery(t *testing.T) {
	audit := RouteAuditList.Route()
	for raw, want := range map[string]string{
		"": "", "limit=10": "?limit=10", "before=7": "?before=7", "before=7&limit=500": "?before=7&limit=500",
		"limit=1&before=18446744073709551615": "?before=18446744073709551615&limit=1",
	} {
		v, err := audit.ParseQuery(raw, false)
		if err != nil || v == nil {
			t.Errorf("%q: %v %v", raw, v, err)
			continue
		}
		if got := audit.BuildQuery(v); got != want {
			t.Errorf("%q rebuilt as %q, want %q", raw, got, want)
		}
	}
	for raw, param := range map[string]string{
		"limit=0": "limit", "limit=501": "limit", "limit=010": "limit", "limit=-1": "limit", "limit=+1": "limit",
		"limit=": "limit", "limit=1e2": "limit", "before=0": "before", "before=18446744073709551616": "before",
		"before=007": "before", "before=1&before=2": "before", "limit=5&limit=5": "limit", "ver=2": "ver",
		"x=1": "x", "limit=5&x=1": "x", "limit": "", "&limit=5": "",
	} {
		_, err := audit.ParseQuery(raw, false)
		var qe *QueryError
		if !errors.As(err, &qe) || qe.Param != param {
			t.Errorf("%q: %v, want a QueryError naming %q", raw, err, param)
		}
	}
	if _, err := audit.ParseQuery("", true); err == nil {
		t.Error("a bare ? accepted on the audit route")
	}
}

// FuzzParseQuery: whatever the sync route accepts is exactly ver=2, and
// rebuilding it gives the canonical form; no route without declared
// parameters accepts anything.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"ver=2", "limit=5&before=9", "limit=501", "ver=3", "ver=2&ver=2", "ver=2&x=1", "ver=%32", "", "&", "=", "ver=2;a", "v\x00=2"} {
		f.Add(s, false)
	}
	f.Add("", true)
	f.Fuzz(func(t *testing.T, raw string, forced bool) {
		v, err := RouteProfileSync.Route().ParseQuery(raw, forced)
		if err == nil {
			if len(v) != 1 || v["ver"] != "2" || RouteProfileSync.Route().BuildQuery(v) != "?"+raw {
				t.Fatalf("%q (forced %v) accepted as %v", raw, forced, v)
			}
		} else if qe := (*QueryError)(nil); !errors.As(err, &qe) {
			t.Fatalf("%q: error %T", raw, err)
		}
		if _, err := RouteOrgList.Route().ParseQuery(raw, forced); err == nil && (raw != "" || forced) {
			t.Fatalf("%q accepted on a route without query parameters", raw)
		}
		// The audit route's optional parameters: what it accepts is
		// before and limit in their formats, and its canonical form
		// parses to the same values.
		audit := RouteAuditList.Route()
		if v, err := audit.ParseQuery(raw, forced); err == nil {
			for name, value := range v {
				if (name != "before" && name != "limit") || !QueryFormats[name].Check(value) {
					t.Fatalf("%q accepted as %v", raw, v)
				}
			}
			again, err := audit.ParseQuery(strings.TrimPrefix(audit.BuildQuery(v), "?"), false)
			if err != nil || len(again) != len(v) || again["before"] != v["before"] || again["limit"] != v["limit"] {
				t.Fatalf("%q: canonical form %q parses to %v, %v", raw, audit.BuildQuery(v), again, err)
			}
		}
	})
}
