package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// TestFirewallTableRestoredEndToEnd (issue 9, item 15): the gateway's
// table deleted from outside while the core runs (`nft delete table`) is
// noticed, logged and put back within a second, with the guarded ports and
// the live approval's element (with its remaining time); server changes
// right after answer 200.
func TestFirewallTableRestoredEndToEnd(t *testing.T) {
	testenv.NeedBinary(t, "nft", "nftables")
	l := newApprovalLab(t)
	if st := l.send(l.seal(l.tcpP, nil, time.Now()), clAddr); st != 200 {
		t.Fatalf("approval: %d", st)
	}
	approved := time.Now()
	if !l.open("tcp", clAddr) || l.open("tcp", clOther) {
		t.Fatal("gate not as approved")
	}
	if out, err := l.gw.Command("nft", "delete", "table", "inet", dynfw.TableName).CombinedOutput(); err != nil {
		t.Fatalf("nft delete table: %v\n%s", err, out)
	}
	deleted := time.Now()
	var back time.Duration
	for {
		out, err := l.gw.Command("nft", "list", "set", "inet", dynfw.TableName, dynfw.SetAllow4).CombinedOutput()
		if err == nil && strings.Contains(string(out), clAddr) {
			back = time.Since(deleted)
			break
		}
		if time.Since(deleted) > 3*time.Second {
			t.Fatalf("table not back 3 s after it was deleted: %v\n%s\ngateway logs:\n%s", err, out, l.g.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("table back %v after it was deleted from outside", back.Round(time.Millisecond))
	if back > time.Second {
		t.Fatalf("table back only after %v, want within a second", back)
	}
	els := l.elements()
	if len(els) != 1 || els[0].Addr != netip.MustParseAddr(clAddr) || els[0].Timeout > tokenTTL-time.Since(approved)+time.Second {
		t.Fatalf("elements after the restore: %+v", els)
	}
	if !l.open("tcp", clAddr) || l.open("tcp", clOther) || l.open("udp", clOther) {
		t.Fatal("restored gate does not guard as before")
	}
	if !strings.Contains(l.g.Logs(), "deleted from outside") {
		t.Fatalf("the restore was not logged:\n%s", l.g.Logs())
	}
	// A server change right after another deletion answers 200.
	if out, err := l.gw.Command("nft", "delete", "table", "inet", dynfw.TableName).CombinedOutput(); err != nil {
		t.Fatalf("nft delete table: %v\n%s", err, out)
	}
	var s api.Server
	if st := l.admin.Do("POST", "/server", api.ServerCreate{Name: "third", Protocol: "udp", Port: 11196, Network: "10.212.0.0/24",
		Hosts: []string{gwAddr}, DynamicFirewall: true, Organizations: []string{l.org.ID}}, &s); st != 200 {
		t.Fatalf("server created after the table vanished: %d", st)
	}
}
