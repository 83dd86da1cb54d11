package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// file is a small configuration in the shape the daemons use: typed values
// whose defaults carry their ranges.
type file struct {
	Name  string `toml:"name"`
	Inner struct {
		Window  Duration `toml:"window"`
		Count   Int      `toml:"count"`
		Proxies Prefixes `toml:"proxies"`
		URLs    HTTPSURLs
		On      bool `toml:"on"`
	} `toml:"inner"`
}

func defaults() file {
	var f file
	f.Inner.Window = Duration{D: time.Minute, Min: time.Second, Max: time.Hour}
	f.Inner.Count = Int{N: 3, Min: 1, Max: 10}
	return f
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadTOML(t *testing.T) {
	path := writeFile(t, "c.toml", "name = \"x\"\n[inner]\nwindow = \"90s\"\ncount = 10\nproxies = [\"10.0.0.1\", \"192.0.2.0/24\"]\nurls = [\"https://a.example\"]\non = true\n")
	f := defaults()
	if err := LoadTOML(path, &f); err != nil {
		t.Fatal(err)
	}
	if f.Name != "x" || f.Inner.Window.D != 90*time.Second || f.Inner.Count.N != 10 || !f.Inner.On ||
		strings.Join(Strings(f.Inner.Proxies), " ") != "10.0.0.1/32 192.0.2.0/24" || len(f.Inner.URLs) != 1 {
		t.Fatalf("got %+v", f)
	}
	// The ranges stay with the values the file set.
	if f.Inner.Window.Min != time.Second || f.Inner.Count.Max != 10 {
		t.Fatalf("ranges lost: %+v", f.Inner)
	}
	if got := f.Inner.Proxies.Netip(); len(got) != 2 || got[1].String() != "192.0.2.0/24" {
		t.Fatalf("netip %v", got)
	}
}

func TestLoadTOMLErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"[inner]\nwindow = \"5x\"\n", `config: inner.window: "5x" is not a duration between 1s and 1h`},
		{"[inner]\nwindow = 30\n", `config: inner.window: "30" is not a duration between 1s and 1h`},
		{"[inner]\ncount = 11\n", "config: inner.count: 11 is not between 1 and 10"},
		{"[inner]\ncount = \"many\"\n", `config: inner.count: "many" is not a whole number between 1 and 10`},
		{"[inner]\nproxies = [\"10.0.0.1\", \"proxy\"]\n", `config: inner.proxies[1]: "proxy" is not an IP address or CIDR`},
		{"[inner]\nproxies = [\"10.0.0.1\", 7]\n", "config: inner.proxies[1]: 7 is not a string"},
		{"[inner]\nurls = [\"http://a\"]\n", `config: inner.urls[0]: "http://a" is not https://host[:port]`},
		{"inner.count = 0\n", "config: inner.count: 0 is not between 1 and 10"}, // dotted key
	} {
		f := defaults()
		err := LoadTOML(writeFile(t, "c.toml", tc.text), &f)
		var ce *Error
		if err == nil || err.Error() != tc.want || !errors.As(err, &ce) {
			t.Errorf("%q: got %v, want %s", tc.text, err, tc.want)
		}
	}
	// A value of the wrong TOML type names its key too (toml's own words).
	f := defaults()
	if err := LoadTOML(writeFile(t, "c.toml", "[inner]\non = \"yes\"\n"), &f); err == nil || !strings.Contains(err.Error(), `"inner.on"`) {
		t.Errorf("wrong type: got %v", err)
	}
}

func TestLoadTOMLUnknownKeysSyntaxAndMissingFile(t *testing.T) {
	f := defaults()
	path := writeFile(t, "c.toml", "nmae = 1\n[inner]\nwindw = \"1s\"\n[extra]\nx = 1\n")
	if err := LoadTOML(path, &f); err == nil || err.Error() != "config "+path+": unknown key extra, extra.x, inner.windw, nmae" {
		t.Errorf("unknown keys: got %v", err)
	}
	path = writeFile(t, "c.toml", "name = \"x\"\n[inner]\nwindow = \n")
	if err := LoadTOML(path, &f); err == nil || !strings.HasPrefix(err.Error(), "config "+path+": ") || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("syntax: got %v", err)
	}
	path = writeFile(t, "c.toml", "name = \"x\"\nname = \"y\"\n")
	if err := LoadTOML(path, &f); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("duplicate key: got %v", err)
	}
	missing := filepath.Join(t.TempDir(), "none.toml")
	if err := LoadTOML(missing, &f); !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "config "+missing) {
		t.Errorf("missing file: got %v", err)
	}
}

func TestDecodeJSON(t *testing.T) {
	type settings struct {
		URI   string `json:"uri"`
		Table int    `json:"route_table,omitempty"`
		On    bool
		Req   string `json:"req" config:"required"`
	}
	var s settings
	if err := DecodeJSON("agent.json", []byte(`{"uri":"u","route_table":100,"On":true,"req":"x"}`), &s); err != nil || s.URI != "u" || s.Table != 100 || !s.On || s.Req != "x" {
		t.Fatalf("got %+v %v", s, err)
	}
	for raw, want := range map[string]string{
		`{"uri":"u","zone":1,"addres":"x"}`: "config agent.json: unknown key addres, zone",
		`{"uri":"u",}`:                      "config agent.json: invalid character '}' looking for beginning of object key string",
		`{"route_table":"100"}`:             `config: route_table: "100" is a JSON string; want int`,
		`{"uri":"u","req":""}`:              "config: req: must be set",
		`{"uri":"u"}`:                       "config: req: must be set",
	} {
		if err := DecodeJSON("agent.json", []byte(raw), new(settings)); err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %s", raw, err, want)
		}
	}
}
