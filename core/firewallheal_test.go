package core

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// TestServerChangesAfterTheTableVanished (issue 9, item 15): with the
// gateway's table deleted from outside, server changes still answer 200
// (never 500) and leave the table back with the guarded ports and the NAT
// rules.
func TestServerChangesAfterTheTableVanished(t *testing.T) {
	netlab.Require(t)
	testenv.NeedBinary(t, "nft", "nftables")
	ns := netlab.NewNS(t, "fw")
	f, err := os.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gate, err := dynfw.OpenNFT(slog.New(slog.NewTextHandler(io.Discard, nil)), int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gate.Close() })
	c := newTestCore(t, []int{os.Getuid()})
	ap := dynfw.NewApprover(dynfw.Config{}, NewDirectory(c.st), c.st, gate, nil)
	c.svc.approver, c.svc.nat, c.svc.revoker = ap, gate, revokerOf(ap)
	if _, _, err := ap.Reconcile(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	c.login()
	var a, b api.Server
	if st := c.do("POST", "/server", api.ServerCreate{Name: "a", Protocol: "udp", Port: 1194, Network: "10.8.0.0/24",
		Hosts: []string{"198.51.100.7"}, DynamicFirewall: true, NAT: true}, &a); st != 200 {
		t.Fatalf("create a: %d", st)
	}
	nft := func(args ...string) string {
		out, err := ns.Command("nft", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("nft %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	nft("delete", "table", "inet", dynfw.TableName)
	var e api.Error
	if st := c.do("POST", "/server", api.ServerCreate{Name: "b", Protocol: "tcp", Port: 1443, Network: "10.9.0.0/24",
		Hosts: []string{"198.51.100.7"}, DynamicFirewall: true}, &b); st != 200 {
		t.Fatalf("create b after the table vanished: %d", st)
	}
	nft("delete", "table", "inet", dynfw.TableName)
	port := 1195
	if st := c.do("PUT", "/server/"+a.ID, api.ServerUpdate{Port: &port}, &e); st != 200 {
		t.Fatalf("update a after the table vanished: %d %+v", st, e)
	}
	nft("delete", "table", "inet", dynfw.TableName)
	if st := c.do("DELETE", "/server/"+b.ID, nil, &e); st != 200 {
		t.Fatalf("delete b after the table vanished: %d %+v", st, e)
	}
	got := nft("list", "table", "inet", dynfw.TableName)
	if !strings.Contains(got, "udp . 1195") || strings.Contains(got, "1443") || !strings.Contains(got, "masquerade") {
		t.Fatalf("table after the changes:\n%s", got)
	}
}
