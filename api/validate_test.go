package api

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// The regular expressions the format loops of validate.go replace: the
// reference they are checked against.
var (
	refSafeName    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._@+-]{0,63}$`)
	refUserName    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,31}$`)
	refDNSLabel    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	refConnName    = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	refProposal    = regexp.MustCompile(`^[a-z0-9]{2,32}(-[a-z0-9]{2,32}){1,7}$`)
	refGatewayName = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)
)

// refHostAddr is IsHostAddr as it was written with the regular
// expression.
func refHostAddr(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Zone() == ""
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if !refDNSLabel.MatchString(l) {
			return false
		}
	}
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}

var formatSeeds = []string{"", "a", "A", "0", "-", " ", "a ", "a b", "Acme Corp.", "x@y+z_w-v", "a.", ".a", "a-", "-a",
	"aes128-sha256-x25519", "aes128", "aes-sha", "a-sha256", "aes128--sha256", "aes128-sha256-", "a1-b2-c3-d4-e5-f6-g7-h8",
	"a1-b2-c3-d4-e5-f6-g7-h8-i9", strings.Repeat("a", 32) + "-" + strings.Repeat("b", 32), strings.Repeat("a", 33) + "-bb",
	"gw-a", "gw.a_b-c", "GW", "vpn.example.com", "198.51.100.7", "1.2.3", "1.2.3.4.5", "::1", "fe80::1%eth0", "1.2.3.4%x",
	"a..b", "a.b.", "123.com", "example.123", "xn--bcher-kva.example", "é.com", "a\x00b", "\xff",
	strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 65), strings.Repeat("a.", 126) + "a",
	strings.Repeat("a", 31), strings.Repeat("a", 32), strings.Repeat("a", 33)}

func checkFormats(t *testing.T, s string) {
	for _, c := range []struct {
		name      string
		got, want bool
	}{
		{"safename", isSafeName(s), refSafeName.MatchString(s) && !strings.HasSuffix(s, " ")},
		{"username", isUserName(s), refUserName.MatchString(s)},
		{"dns label", isDNSLabel(s), refDNSLabel.MatchString(s)},
		{"connname", IsConnName(s), refConnName.MatchString(s)},
		{"proposal", isProposal(s), refProposal.MatchString(s)},
		{"gatewayname", IsGatewayName(s), refGatewayName.MatchString(s)},
		{"hostaddr", IsHostAddr(s), refHostAddr(s)},
	} {
		if c.got != c.want {
			t.Errorf("%s(%q) = %v, the regular expression says %v", c.name, s, c.got, c.want)
		}
	}
}

func TestFormatsMatchRegexps(t *testing.T) {
	for _, s := range formatSeeds {
		checkFormats(t, s)
	}
}

func FuzzFormats(f *testing.F) {
	for _, s := range formatSeeds {
		f.Add(s)
	}
	f.Fuzz(checkFormats)
}

// checkFastValid decodes data leniently into every wire type and fails
// when fastValid and the validator disagree: fastValid must never pass
// what the validator refuses, and should pass what it accepts.
func checkFastValid(t *testing.T, data []byte) {
	for _, typ := range wireTypes() {
		v := reflect.New(typ)
		if json.Unmarshal(data, v.Interface()) != nil {
			continue
		}
		if _, self := v.Interface().(selfChecker); self {
			continue
		}
		fast, ref := fastValid(v.Interface()), validatorInstance().Struct(v.Interface())
		if fast && ref != nil {
			t.Fatalf("%s %s: fastValid passes what the validator refuses: %v", typ, data, ref)
		}
		if !fast && ref == nil && fullyPlanned(typ, 0) {
			t.Fatalf("%s %s: fastValid refuses what the validator accepts", typ, data)
		}
	}
}

// fullyPlanned reports whether fastValid decides t by itself: t's plan and
// the plan of every struct type its fields reach (through pointers, slices
// and arrays) are ok. Where one is not, fastValid answers false and
// Validate asks the validator, which is not a disagreement.
func fullyPlanned(t reflect.Type, depth int) bool {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.ConvertibleTo(timeType) {
		return true
	}
	if depth > 16 || !planFor(t).ok {
		return false
	}
	for _, f := range planFor(t).fields {
		if !fullyPlanned(t.Field(f.index).Type, depth+1) {
			return false
		}
	}
	return true
}

func validSeeds() [][]byte {
	seeds := [][]byte{benchBody,
		[]byte(`{"name":"vpn","protocol":"tcp","port":443,"network":"10.8.0.0/24","hosts":["a.example","a.example"]}`),
		[]byte(`{"name":"vpn","protocol":"udp","port":0,"network":"10.8.0.1/24","hosts":["1.2.3.4"],"gateways":["GW"]}`),
		[]byte(`{"name":" x","organizations":["0123456789abcdef01234567"],"hosts":[]}`),
		[]byte(`{"id":"5f1e2d3c4b5a697887960a2f","name":"x","protocol":"udp","port":1,"network":"10.0.0.0/8","hosts":["h"],"organizations":[],"gateways":null,"created_at":"2026-01-01T00:00:00Z"}`),
		[]byte(`{"users":[{"id":"5f1e2d3c4b5a697887960a2f","organization_id":"5f1e2d3c4b5a697887960a2f","name":"u","profiles":[{"server_id":"x","cert_serial":"0x1f"}]}]}`),
		// A user without profiles in a list: User's plan is not ok (its
		// email rule), so fastValid leaves the list to the validator.
		[]byte(`{"users":[{"id":"000000000000000000000000","organization_id":"000000000000000000000000","name":"u"}]}`),
		[]byte(`{"name":"n","email":"a@b.c","disabled":true}`), []byte(`{"name":null,"email":""}`),
		[]byte(`{"username":"admin","password":""}`), []byte(`{"error":"x","message":"m","field":"f"}`),
		[]byte(`{"excludes":[["5f1e2d3c4b5a697887960a2f","5f1e2d3c4b5a697887960a2e"],["x"]]}`),
		[]byte(`{"hosts":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q","a"]}`),
		[]byte(`{"uri":"pritunl://x","profiles":[{"name":"a.ovpn","profile":"x"}]}`)}
	for _, typ := range wireTypes() {
		raw, _ := json.Marshal(reflect.New(typ).Interface())
		seeds = append(seeds, raw)
	}
	return seeds
}

func TestFastValidAgrees(t *testing.T) {
	for _, s := range validSeeds() {
		checkFastValid(t, s)
	}
	if !fastValid(&ServerCreate{Name: "vpn", Protocol: "udp", Port: 1194, Network: "10.8.0.0/24", Hosts: []string{"vpn.example.com"}}) {
		t.Error("fastValid refuses a valid ServerCreate")
	}
}

func FuzzFastValid(f *testing.F) {
	for _, s := range validSeeds() {
		f.Add(s)
	}
	f.Fuzz(checkFastValid)
}

// TestRuneCount: runeCount counts as utf8.RuneCountInString does, on ASCII
// runs of every length around a word and multi-byte or invalid bytes at
// each place.
func TestRuneCount(t *testing.T) {
	for n := range 20 {
		for i := 0; i <= n; i++ {
			for _, r := range []string{"", "é", "€", "\xff", "\xe2\x82", "😀"} {
				s := strings.Repeat("a", i) + r + strings.Repeat("b", n-i)
				if got, want := runeCount(s), utf8.RuneCountInString(s); got != want {
					t.Fatalf("runeCount(%q) = %d, want %d", s, got, want)
				}
			}
		}
	}
}

// FuzzRuneCount: runeCount answers as utf8.RuneCountInString does.
func FuzzRuneCount(f *testing.F) {
	f.Add("0123456789abcdef")
	f.Add("0123456\xe2\x82\xac89")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := runeCount(s), utf8.RuneCountInString(s); got != want {
			t.Fatalf("runeCount(%q) = %d, want %d", s, got, want)
		}
	})
}
