package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/netlab"
)

func TestRoutesInNamespace(t *testing.T) {
	netlab.Require(t)
	a := netlab.NewNS(t, "rta")
	b := netlab.NewNS(t, "rtb")
	aIf, _ := netlab.Veth(t, a, "10.197.0.1/24", b, "10.197.0.2/24")
	for _, tc := range []struct {
		name         string
		table, mark  int
		wantTableArg string
	}{{"main table", 0, 0, "main"}, {"custom table with fwmark rule", 100, 0x99, "100"}} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := OpenRoutes(a.Path(), aIf, tc.table, tc.mark)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ctx := context.Background()
			if err := r.Sync(ctx, []netip.Prefix{netip.MustParsePrefix("10.2.0.0/24"), netip.MustParsePrefix("10.3.0.0/16")}); err != nil {
				t.Fatal(err)
			}
			out := a.MustIP("route", "show", "table", tc.wantTableArg, "proto", "156")
			if !strings.Contains(out, "10.2.0.0/24 dev "+aIf) || !strings.Contains(out, "10.3.0.0/16 dev "+aIf) {
				t.Fatalf("routes:\n%s", out)
			}
			if tc.mark > 0 && !strings.Contains(a.MustIP("rule", "show"), "fwmark 0x99 lookup 100") {
				t.Fatalf("no fwmark rule:\n%s", a.MustIP("rule", "show"))
			}
			// A foreign route in the same table is never touched.
			a.MustIP("route", "add", "10.9.0.0/24", "dev", aIf, "table", tc.wantTableArg)
			if err := r.Sync(ctx, []netip.Prefix{netip.MustParsePrefix("10.2.0.0/24")}); err != nil {
				t.Fatal(err)
			}
			out = a.MustIP("route", "show", "table", tc.wantTableArg)
			if strings.Contains(out, "10.3.0.0/16") || !strings.Contains(out, "10.2.0.0/24") || !strings.Contains(out, "10.9.0.0/24") {
				t.Fatalf("after sync:\n%s", out)
			}
			if err := r.RemoveAll(ctx); err != nil {
				t.Fatal(err)
			}
			out = a.MustIP("route", "show", "table", tc.wantTableArg)
			if strings.Contains(out, "10.2.0.0/24") || !strings.Contains(out, "10.9.0.0/24") {
				t.Fatalf("after RemoveAll:\n%s", out)
			}
			a.MustIP("route", "del", "10.9.0.0/24", "dev", aIf, "table", tc.wantTableArg)
			if tc.mark > 0 && strings.Contains(a.MustIP("rule", "show"), "fwmark 0x99") {
				t.Fatal("fwmark rule left behind")
			}
		})
	}
}

// TestTunnelDevices creates an XFRM interface and a VTI where the kernel
// has them, and otherwise checks the error names the missing option.
func TestTunnelDevices(t *testing.T) {
	netlab.Require(t)
	a := netlab.NewNS(t, "tun")
	r, err := OpenRoutes(a.Path(), "lo", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.CreateXFRM("pcx0", 42); err != nil {
		if !errors.Is(err, ErrKernelFeature) || !strings.Contains(err.Error(), "CONFIG_XFRM_INTERFACE") {
			t.Fatalf("XFRM interface: %v", err)
		}
		t.Logf("this kernel: %v", err)
	} else if !strings.Contains(a.MustIP("link", "show", "pcx0"), "pcx0") {
		t.Fatal("XFRM interface reported created but not there")
	}
	if err := r.CreateVTI("pcv0", netip.MustParseAddr("10.197.1.1"), netip.MustParseAddr("10.197.1.2"), 7); err != nil {
		if !errors.Is(err, ErrKernelFeature) || !strings.Contains(err.Error(), "CONFIG_NET_IPVTI") {
			t.Fatalf("VTI: %v", err)
		}
		t.Logf("this kernel: %v", err)
	} else if !strings.Contains(a.MustIP("link", "show", "pcv0"), "pcv0") {
		t.Fatal("VTI reported created but not there")
	}
}

// TestRoutesNeverTouchForeignRoutes: a remote subnet that the host already
// routes (its default route, a connected LAN, a static route at any
// metric) is a conflict, reported and left alone, in the main table and in
// a custom one; RemoveAll takes away only the agent's own routes.
func TestRoutesNeverTouchForeignRoutes(t *testing.T) {
	netlab.Require(t)
	host := netlab.NewNS(t, "rfh")
	lan := netlab.NewNS(t, "rfl")
	tun := netlab.NewNS(t, "rft")
	lanIf, _ := netlab.Veth(t, host, "10.195.0.1/24", lan, "10.195.0.2/24")
	tunIf, _ := netlab.Veth(t, host, "10.194.0.1/24", tun, "10.194.0.2/24")
	for _, tc := range []struct {
		name      string
		table     int
		tableArg  string
		mark      int
		connected bool // the LAN's connected route is in this table
	}{{"main table", 0, "main", 0, true}, {"custom table", 101, "101", 0x9a, false}} {
		t.Run(tc.name, func(t *testing.T) {
			host.MustIP("route", "add", "default", "via", "10.195.0.2", "table", tc.tableArg)
			host.MustIP("route", "add", "10.3.0.0/24", "via", "10.195.0.2", "metric", "50", "table", tc.tableArg)
			if !tc.connected {
				host.MustIP("route", "add", "10.195.0.0/24", "dev", lanIf, "table", tc.tableArg)
			}
			// The routes, without the carrier flag: the tunnel veth's
			// peer comes up on its own time, and "linkdown" then goes.
			foreign := func() string {
				return strings.ReplaceAll(host.MustIP("route", "show", "table", tc.tableArg), " linkdown", "")
			}
			if tc.mark > 0 {
				// The operator's own rule with the agent's selector.
				host.MustIP("rule", "add", "fwmark", fmt.Sprint(tc.mark), "lookup", tc.tableArg, "priority", "9790")
			}
			before := foreign()
			rulesBefore := host.MustIP("rule", "show")
			r, err := OpenRoutes(host.Path(), tunIf, tc.table, tc.mark)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ctx := context.Background()
			err = r.Sync(ctx, []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("10.195.0.0/24"),
				netip.MustParsePrefix("10.3.0.0/24"), netip.MustParsePrefix("10.2.0.0/24")})
			for _, p := range []string{"0.0.0.0/0", "10.195.0.0/24", "10.3.0.0/24"} {
				if err == nil || !strings.Contains(err.Error(), "conflict") || !strings.Contains(err.Error(), p) {
					t.Errorf("sync over the host's route to %s: error %v, want a conflict naming it", p, err)
				}
			}
			out := foreign()
			for _, want := range []string{"default via 10.195.0.2 dev " + lanIf, "10.195.0.0/24 dev " + lanIf,
				"10.3.0.0/24 via 10.195.0.2 dev " + lanIf + " metric 50", "10.2.0.0/24 dev " + tunIf + " proto 156"} {
				if !strings.Contains(out, want) {
					t.Errorf("route %q gone or changed; table %s:\n%s", want, tc.tableArg, out)
				}
			}
			if strings.Count(out, "proto 156") != 1 {
				t.Errorf("the agent routed more than its own subnet:\n%s", out)
			}
			if rules := host.MustIP("rule", "show"); tc.mark > 0 && !strings.Contains(rules, fmt.Sprintf("fwmark %#x lookup %s proto 156", tc.mark, tc.tableArg)) {
				t.Errorf("the agent's rule is missing or untagged:\n%s", rules)
			}
			t.Logf("conflicts: %v", err)
			// A second sync changes nothing and reports the same conflicts.
			if err := r.Sync(ctx, []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("10.2.0.0/24")}); err == nil {
				t.Error("second sync: no conflict reported")
			}
			if err := r.RemoveAll(ctx); err != nil {
				t.Fatal(err)
			}
			if after := foreign(); after != before {
				t.Errorf("RemoveAll changed the host's routes:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if after := host.MustIP("rule", "show"); after != rulesBefore {
				t.Errorf("RemoveAll changed the host's rules:\nbefore:\n%s\nafter:\n%s", rulesBefore, after)
			}
			if tc.mark > 0 {
				host.MustIP("rule", "del", "fwmark", fmt.Sprint(tc.mark), "lookup", tc.tableArg, "priority", "9790")
			}
			host.MustIP("route", "del", "default", "table", tc.tableArg)
			host.MustIP("route", "del", "10.3.0.0/24", "table", tc.tableArg)
			if !tc.connected {
				host.MustIP("route", "del", "10.195.0.0/24", "table", tc.tableArg)
			}
		})
	}
}
