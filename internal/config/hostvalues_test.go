package config

import (
	"encoding"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestFile(t *testing.T) {
	abs, err := filepath.Abs("charon.vici")
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, "vici", func() encoding.TextUnmarshaler { return new(File) }, []valueCase{
		{in: "/var/run/charon.vici", want: "/var/run/charon.vici"},
		{in: "charon.vici", want: abs},
		{in: "", want: ""},
		{in: "a\nb", err: `"a\nb" is not a file path`},
		{in: "a\x00b", err: `"a\x00b" is not a file path`},
	})
}

func TestProgram(t *testing.T) {
	abs, err := filepath.Abs("bin/hook")
	if err != nil {
		t.Fatal(err)
	}
	const bad = " is not a program (a path or a name, without arguments: it runs without a shell)"
	checkValues(t, "hook", func() encoding.TextUnmarshaler { return new(Program) }, []valueCase{
		{in: "/usr/local/bin/link-hook", want: "/usr/local/bin/link-hook"},
		{in: "link-hook", want: "link-hook"}, // looked up in PATH when run
		{in: "bin/hook", want: abs},
		{in: "", want: ""},
		{in: "/bin/hook --now", err: `"/bin/hook --now"` + bad},
		{in: " hook", err: `" hook"` + bad},
		{in: "hook\t", err: `"hook\t"` + bad},
	})
}

func TestInterface(t *testing.T) {
	const bad = " is not a network interface name"
	checkValues(t, "route_dev", func() encoding.TextUnmarshaler { return new(Interface) }, []valueCase{
		{in: "ipsec0", want: "ipsec0"},
		{in: "xfrm-corp.100", want: "xfrm-corp.100"},
		{in: "fifteen-chars-1", want: "fifteen-chars-1"},
		{in: "", want: ""},
		{in: "sixteen-chars-12", err: `"sixteen-chars-12"` + bad},
		{in: "eth0/1", err: `"eth0/1"` + bad},
		{in: "eth0:1", err: `"eth0:1"` + bad},
		{in: "eth 0", err: `"eth 0"` + bad},
		{in: ".", err: `"."` + bad},
		{in: "..", err: `".."` + bad},
	})
}

func TestUint32(t *testing.T) {
	const bad = " is not a whole number between 0 and 4294967295"
	checkValues(t, "route_table", func() encoding.TextUnmarshaler { return new(Uint32) }, []valueCase{
		{in: "0", want: "0"},
		{in: "100", want: "100"},
		{in: "4294967295", want: "4294967295"},
		{in: "4294967296", err: `"4294967296"` + bad},
		{in: "-1", err: `"-1"` + bad},
		{in: "1.5", err: `"1.5"` + bad},
		{in: "0x10", err: `"0x10"` + bad},
		{in: "", err: `""` + bad},
	})
	// In JSON: a number, written back as one.
	var v struct {
		N Uint32 `json:"n,omitempty"`
	}
	if err := json.Unmarshal([]byte(`{"n":153}`), &v); err != nil || v.N != 153 {
		t.Fatalf("JSON number: %v %v", v.N, err)
	}
	if out, err := json.Marshal(v); err != nil || string(out) != `{"n":153}` {
		t.Fatalf("written as %s %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"n":"153"}`), &v); err == nil {
		t.Fatal("a JSON string accepted")
	}
}

func TestCIDR(t *testing.T) {
	const bad = " is not a CIDR without host bits"
	checkValues(t, "allow_routes[0]", func() encoding.TextUnmarshaler { return new(CIDR) }, []valueCase{
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: "2001:db8::/32", want: "2001:db8::/32"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "10.1.2.3/8", err: `"10.1.2.3/8"` + bad},
		{in: "192.0.2.1", err: `"192.0.2.1"` + bad},
		{in: "10.0.0.0/33", err: `"10.0.0.0/33"` + bad},
		{in: "", err: `""` + bad},
	})
}

// TestCIDRs: a list in JSON and in TOML; a bad element's error carries its
// index, which the file readers make part of the key.
func TestCIDRs(t *testing.T) {
	var l CIDRs
	if err := json.Unmarshal([]byte(`["10.0.0.0/8","fc00::/7"]`), &l); err != nil || len(l) != 2 || l.Netip()[1].String() != "fc00::/7" {
		t.Fatalf("JSON: %v %v", l, err)
	}
	if err := json.Unmarshal([]byte(`["10.0.0.0/8","10.0.0.1/8"]`), &l); err == nil || err.Error() != `[1]: "10.0.0.1/8" is not a CIDR without host bits` {
		t.Fatalf("JSON bad element: %v", err)
	}
	if err := json.Unmarshal([]byte(`"10.0.0.0/8"`), &l); err == nil {
		t.Fatal("JSON string accepted as a list")
	}
	var doc struct {
		Allow CIDRs `toml:"allow"`
	}
	if _, err := toml.Decode(`allow = ["10.0.0.0/8"]`, &doc); err != nil || len(doc.Allow) != 1 {
		t.Fatalf("TOML: %v %v", doc.Allow, err)
	}
	if _, err := toml.Decode(`allow = ["10.0.0.0/8", "x"]`, &doc); err == nil {
		t.Fatal("TOML bad element accepted")
	}
}
