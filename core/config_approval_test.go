package core

import (
	"fmt"
	"strings"
	"testing"
)

// TestConfigApprovalDefaults (issue 9, item 11): a gateway opens only the
// peer address by default, with per-user caps and sized allow sets.
func TestConfigApprovalDefaults(t *testing.T) {
	c, err := DefaultConfig().Check()
	if err != nil {
		t.Fatal(err)
	}
	if c.Approval.ReportedAddresses {
		t.Fatal("approval.reported_addresses is on by default")
	}
	c, err = loadChecked(t, "[approval]\nreported_addresses = true\nmax_elements_per_user = 8\nmax_approvals_per_minute = 30\n"+
		"[firewall]\nallow_set_size = 1024\nallow_port_22 = true\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%+v %+v", c.Approval, c.Firewall); !strings.Contains(got, "ReportedAddresses:true") ||
		!strings.Contains(got, "MaxElementsPerUser:8") || !strings.Contains(got, "MaxApprovalsPerMinute:30") ||
		!strings.Contains(got, "AllowSetSize:1024") || !strings.Contains(got, "AllowPort22:true") {
		t.Fatalf("got %s", got)
	}
	for _, tc := range []struct{ toml, want string }{
		{"[approval]\nmax_elements_per_user = 0", `config: approval.max_elements_per_user: 0 is not between 1 and 64`},
		{"[approval]\nmax_approvals_per_minute = 0", `config: approval.max_approvals_per_minute: 0 is not between 1 and 600`},
		{"[firewall]\nallow_set_size = 8", `config: firewall.allow_set_size: 8 is not between 16 and 16777216`},
	} {
		if _, err := loadChecked(t, tc.toml); err == nil || err.Error() != tc.want {
			t.Errorf("%q:\n got %v\nwant %s", tc.toml, err, tc.want)
		}
	}
}

// TestConfigTrustedProxiesMinimumPrefix (issue 9, item 14): a trusted proxy
// prefix broader than approval.trusted_proxies_min_prefix4 (/16) or
// _min_prefix6 (/48) is refused, naming the entry and the keys, unless
// approval.trusted_proxies_force is set.
func TestConfigTrustedProxiesMinimumPrefix(t *testing.T) {
	for _, tc := range []struct{ list, want string }{
		{`["0.0.0.0/0"]`, `config: approval.trusted_proxies[0]: 0.0.0.0/0 is broader than /16 (approval.trusted_proxies_min_prefix4); list the proxies' own addresses, or set approval.trusted_proxies_force = true`},
		{`["192.0.2.7", "::/0"]`, `config: approval.trusted_proxies[1]: ::/0 is broader than /48 (approval.trusted_proxies_min_prefix6); list the proxies' own addresses, or set approval.trusted_proxies_force = true`},
		{`["10.0.0.0/8"]`, `config: approval.trusted_proxies[0]: 10.0.0.0/8 is broader than /16 (approval.trusted_proxies_min_prefix4); list the proxies' own addresses, or set approval.trusted_proxies_force = true`},
		{`["2001:db8::/32"]`, `config: approval.trusted_proxies[0]: 2001:db8::/32 is broader than /48 (approval.trusted_proxies_min_prefix6); list the proxies' own addresses, or set approval.trusted_proxies_force = true`},
	} {
		if _, err := loadChecked(t, "[approval]\ntrusted_proxies = "+tc.list+"\n"); err == nil || err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.list, err, tc.want)
		}
	}
	// At the minimum, or narrower: fine.
	if _, err := loadChecked(t, "[approval]\ntrusted_proxies = [\"10.1.0.0/16\", \"2001:db8:1::/48\", \"192.0.2.7\"]\n"); err != nil {
		t.Fatal(err)
	}
	// Another minimum, or forced.
	if _, err := loadChecked(t, "[approval]\ntrusted_proxies = [\"10.0.0.0/8\"]\ntrusted_proxies_min_prefix4 = 8\n"); err != nil {
		t.Fatal(err)
	}
	c, err := loadChecked(t, "[approval]\ntrusted_proxies = [\"0.0.0.0/0\", \"::/0\"]\ntrusted_proxies_force = true\n")
	if err != nil || len(c.TrustedProxies) != 2 {
		t.Fatalf("forced: %v %v", c, err)
	}
	if _, err := loadChecked(t, "[approval]\ntrusted_proxies_min_prefix6 = 129\n"); err == nil ||
		err.Error() != `config: approval.trusted_proxies_min_prefix6: 129 is not between 0 and 128` {
		t.Fatalf("got %v", err)
	}
}
