package agent

import (
	"context"
	"errors"
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
