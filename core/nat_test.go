package core

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// fakeNAT records what the core asks of the NAT rules.
type fakeNAT struct {
	mu    sync.Mutex
	calls [][]dynfw.NATRule
	err   error
}

func (f *fakeNAT) SyncNAT(_ context.Context, want []dynfw.NATRule) (int, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, slices.Clone(want))
	return 0, 0, f.err
}

func (f *fakeNAT) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// last is the rule set of the last call, as sorted strings.
func (f *fakeNAT) last(t *testing.T) []string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		t.Fatal("SyncNAT never called")
	}
	var out []string
	for _, r := range f.calls[len(f.calls)-1] {
		out = append(out, r.ServerID+" "+r.Network.String()+" "+r.Device)
	}
	slices.Sort(out)
	return out
}

// TestServerNAT: the nat field is created, read, updated and checked like
// the other fields, and every server change hands the NAT rules of the
// servers with NAT on (tunnel network, worker device) to the firewall.
func TestServerNAT(t *testing.T) {
	c := newTestCore(t, []int{os.Getuid()})
	fake := &fakeNAT{}
	var logs testkit.LockedBuffer
	c.svc.nat = fake
	c.svc.log = slog.New(slog.NewTextHandler(&logs, nil))
	c.login()
	rule := func(s api.Server) string { return s.ID + " " + s.Network + " " + vpn.DeviceName(s.ID) }

	var a, b api.Server
	if st := c.do("POST", "/server", api.ServerCreate{Name: "a", Protocol: "udp", Port: 1194, Network: "10.8.0.0/24",
		Hosts: []string{"198.51.100.7"}, NAT: true}, &a); st != 200 || !a.NAT {
		t.Fatalf("create with nat: %d %+v", st, a)
	}
	if got := fake.last(t); !slices.Equal(got, []string{rule(a)}) {
		t.Fatalf("NAT rules after create: %v", got)
	}
	if st := c.do("POST", "/server", api.ServerCreate{Name: "b", Protocol: "udp", Port: 1195, Network: "10.9.0.0/24",
		Hosts: []string{"198.51.100.7"}}, &b); st != 200 || b.NAT {
		t.Fatalf("create without nat: %d %+v", st, b)
	}
	if got := fake.last(t); !slices.Equal(got, []string{rule(a)}) {
		t.Fatalf("NAT rules after a server without NAT: %v", got)
	}
	var got api.Server
	if st := c.do("GET", "/server/"+a.ID, nil, &got); st != 200 || !got.NAT {
		t.Fatalf("read: %d %+v", st, got)
	}
	var list api.ServerList
	if st := c.do("GET", "/server", nil, &list); st != 200 || len(list.Servers) != 2 {
		t.Fatalf("list: %d %+v", st, list)
	}
	for _, s := range list.Servers {
		if s.NAT != (s.ID == a.ID) {
			t.Fatalf("listed %s with nat %v", s.Name, s.NAT)
		}
	}
	// The rule follows the network; a second server joins.
	network, yes, no := "10.7.0.0/24", true, false
	if st := c.do("PUT", "/server/"+a.ID, api.ServerUpdate{Network: &network}, &a); st != 200 || !a.NAT {
		t.Fatalf("network change: %d %+v", st, a)
	}
	if st := c.do("PUT", "/server/"+b.ID, api.ServerUpdate{NAT: &yes}, &b); st != 200 || !b.NAT {
		t.Fatalf("nat on: %d %+v", st, b)
	}
	want := []string{rule(a), rule(b)}
	slices.Sort(want)
	if got := fake.last(t); !slices.Equal(got, want) {
		t.Fatalf("NAT rules after updates: %v, want %v", got, want)
	}
	// Not a bool: refused before anything changes.
	var e api.Error
	calls := fake.count()
	if st := c.do("PUT", "/server/"+b.ID, json.RawMessage(`{"nat":"yes"}`), &e); st != 400 || e.Error != "bad_request" || e.Field != "nat" {
		t.Fatalf(`"nat":"yes": %d %+v`, st, e)
	}
	if st := c.do("POST", "/server", json.RawMessage(`{"name":"c","protocol":"udp","port":1196,"network":"10.6.0.0/24","hosts":["198.51.100.7"],"nat":1}`), &e); st != 400 || e.Field != "nat" {
		t.Fatalf(`"nat":1: %d %+v`, st, e)
	}
	if fake.count() != calls {
		t.Fatal("a refused request reached the firewall")
	}
	// Deleting a server takes its rule away; a firewall failure is an error.
	var ok api.OKResponse
	if st := c.do("DELETE", "/server/"+b.ID, nil, &ok); st != 200 {
		t.Fatalf("delete: %d", st)
	}
	if got := fake.last(t); !slices.Equal(got, []string{rule(a)}) {
		t.Fatalf("NAT rules after delete: %v", got)
	}
	fake.mu.Lock()
	fake.err = errors.New("netlink: boom")
	fake.mu.Unlock()
	if st := c.do("PUT", "/server/"+a.ID, api.ServerUpdate{NAT: &no}, &e); st != 500 || e.Error != "firewall" {
		t.Fatalf("firewall failure: %d %+v", st, e)
	}
	fake.mu.Lock()
	fake.err = nil
	fake.mu.Unlock()

	// IP forwarding off: turning NAT on for a started server warns, naming
	// the sysctl; on: no warning. The core never writes it.
	sysctl := filepath.Join(t.TempDir(), "ip_forward")
	if err := os.WriteFile(sysctl, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.svc.ipForward = sysctl
	if _, err := c.svc.setStarted(context.Background(), a.ID, true); err != nil {
		t.Fatal(err)
	}
	if st := c.do("PUT", "/server/"+a.ID, api.ServerUpdate{NAT: &yes}, &a); st != 200 {
		t.Fatalf("nat on: %d", st)
	}
	if l := logs.String(); !strings.Contains(l, "net.ipv4.ip_forward is 0") || !strings.Contains(l, "server_id="+a.ID) {
		t.Fatalf("no forwarding warning:\n%s", l)
	}
	if raw, _ := os.ReadFile(sysctl); string(raw) != "0\n" {
		t.Fatalf("the core wrote the sysctl: %q", raw)
	}
	if err := os.WriteFile(sysctl, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := strings.Count(logs.String(), "ip_forward is 0")
	c.do("PUT", "/server/"+a.ID, api.ServerUpdate{NAT: &no}, &a)
	c.do("PUT", "/server/"+a.ID, api.ServerUpdate{NAT: &yes}, &a)
	if n := strings.Count(logs.String(), "ip_forward is 0"); n != before {
		t.Fatal("warned with forwarding on")
	}

	// Without a firewall the core says that NAT servers get no NAT.
	c.svc.nat = nil
	if err := c.svc.startNAT(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "firewall is disabled") {
		t.Fatalf("no warning for NAT without a firewall:\n%s", logs.String())
	}
}
