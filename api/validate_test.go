package api

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
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
