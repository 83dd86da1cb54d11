package api

import (
	"encoding/json"
	"strings"
	"testing"
)

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIsObjectID(t *testing.T) {
	good := []string{"0123456789abcdef01234567", "aaaaaaaaaaaaaaaaaaaaaaaa"}
	bad := []string{"", "0123456789abcdef0123456", "0123456789abcdef012345678", "0123456789ABCDEF01234567",
		"0123456789abcdef0123456g", "0123456789abcdef0123456 ", "../../../../../etc/passwd", "0123456789abcdef%2e234567"}
	for _, s := range good {
		if !IsObjectID(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range bad {
		if IsObjectID(s) {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestCheckParamNamesTheParameter(t *testing.T) {
	err := CheckParam("org_id", "nope")
	if err == nil || !strings.Contains(err.Error(), `"org_id"`) {
		t.Fatalf("got %v", err)
	}
	if err := CheckParam("unknown", "x"); err == nil {
		t.Fatal("parameter without a format accepted")
	}
}

func FuzzCheckParam(f *testing.F) {
	for _, s := range []string{"0123456789abcdef01234567", "x", "", "0123456789ABCDEF01234567", "0123456789abcdef0123456\x00"} {
		f.Add("org_id", s)
		f.Add("server_id", s)
	}
	f.Add("sync_hash", "0123456789abcdef0123456789abcdef")
	f.Add("link_code", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef")
	f.Add("link_code", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcde/")
	f.Fuzz(func(t *testing.T, name, value string) {
		err := CheckParam(name, value)
		if err != nil {
			return
		}
		// Anything accepted has its parameter's exact shape: 24 (IDs) or
		// 32 (sync_hash) lowercase hex characters, or 32 letters and
		// digits (link_code).
		switch name {
		case "sync_hash":
			if len(value) != 32 || strings.Trim(value, "0123456789abcdef") != "" {
				t.Fatalf("%s=%q accepted", name, value)
			}
		case "link_code":
			if len(value) != 32 || strings.Trim(value, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
				t.Fatalf("%s=%q accepted", name, value)
			}
		default:
			if len(value) != 24 || strings.Trim(value, "0123456789abcdef") != "" {
				t.Fatalf("%s=%q accepted", name, value)
			}
		}
	})
}
