package core

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/random"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/api/linkproto"
)

// agentCall sends a signed link request as an agent would, from the
// report's address (192.0.2.50 when it names none).
func (c *testCore) agentCall(method, hostID, secret string, report *api.LinkReport, mutate func(*api.LinkHeaders, *[]byte)) (int, *api.LinkState, api.Error) {
	c.t.Helper()
	peer := "192.0.2.50"
	if report != nil && report.Address != "" {
		peer = report.Address
	}
	return c.agentCallFrom(peer, "", method, hostID, secret, report, mutate)
}

// agentCallFrom sends a signed link request as the front passes it on from
// peer, with the forwarded-for list forwarded ("": none).
func (c *testCore) agentCallFrom(peer, forwarded, method, hostID, secret string, report *api.LinkReport, mutate func(*api.LinkHeaders, *[]byte)) (int, *api.LinkState, api.Error) {
	c.t.Helper()
	var body []byte
	if report != nil {
		body, _ = json.Marshal(report)
	}
	mac, seal := linkproto.Keys(secret)
	nonce, _ := random.AlnumFrom(rand.Reader, 32)
	h := api.LinkHeaders{Host: hostID, Timestamp: strconv.FormatInt(time.Now().Unix(), 10), Nonce: nonce}
	h.Signature = linkproto.Sign(mac, linkproto.Message(h, method, "/link/state", body))
	if mutate != nil {
		mutate(&h, &body)
	}
	req, _ := http.NewRequest(method, "http://"+api.InternalHost+"/link/state", bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(api.HeaderToken, c.token)
	req.Header.Set(api.HeaderPeer, net.JoinHostPort(peer, "4444"))
	if forwarded != "" {
		req.Header.Set(api.HeaderForwarded, forwarded)
	}
	api.SetLinkHeaders(req.Header, h)
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e api.Error
	if resp.StatusCode != 200 {
		_ = json.Unmarshal(raw, &e)
		return resp.StatusCode, nil, e
	}
	if method == http.MethodDelete {
		return 200, nil, e
	}
	var sealed api.LinkSealed
	if err := json.Unmarshal(raw, &sealed); err != nil {
		c.t.Fatal(err)
	}
	plain, err := linkproto.Open(seal, h.Nonce, &sealed)
	if err != nil {
		c.t.Fatalf("open state: %v", err)
	}
	var st api.LinkState
	if err := api.DecodeStrict(plain, &st); err != nil {
		c.t.Fatal(err)
	}
	return 200, &st, e
}

func uriSecret(t *testing.T, uri string) (host, secret string) {
	rest := strings.TrimPrefix(uri, "portcullis://")
	cred, gws, ok := strings.Cut(rest, "@")
	if !ok || gws != "127.0.0.1:8443" {
		t.Fatalf("uri %q", uri)
	}
	host, secret, _ = strings.Cut(cred, ":")
	return host, secret
}

func TestLinkAdminAndSignedAgentAPI(t *testing.T) {
	c := newTestCore(t, []int{os.Getuid()})
	c.login()
	var l api.Link
	if st := c.do("POST", "/link", api.LinkCreate{Name: "corp"}, &l); st != 200 || l.IKE[0] != "aes128-sha256-x25519" || l.CheckPort != 9790 {
		t.Fatalf("create link: %d %+v", st, l)
	}
	c.do("POST", "/link/"+l.ID+"/location", api.LocationCreate{Name: "a", Routes: []string{"10.1.0.0/24"}}, &l)
	c.do("POST", "/link/"+l.ID+"/location", api.LocationCreate{Name: "b", Routes: []string{"10.2.0.0/24"}}, &l)
	var e api.Error
	if st := c.do("POST", "/link/"+l.ID+"/location", api.LocationCreate{Name: "c", Routes: []string{"10.3.0.1/24"}}, &e); st != 400 || e.Field != "routes[0]" {
		t.Fatalf("route with host bits: %d %+v", st, e)
	}
	locA, locB := l.Locations[0].ID, l.Locations[1].ID
	c.do("POST", "/link/"+l.ID+"/location/"+locA+"/host", api.HostCreate{Name: "a1"}, &l)
	c.do("POST", "/link/"+l.ID+"/location/"+locB+"/host", api.HostCreate{Name: "b1", Priority: 2}, &l)
	c.do("POST", "/link/"+l.ID+"/location/"+locB+"/host", api.HostCreate{Name: "b2", Priority: 1}, &l)
	uri := func(loc, host string) (string, string) {
		var u api.HostURI
		if st := c.do("GET", "/link/"+l.ID+"/location/"+loc+"/host/"+host+"/uri", nil, &u); st != 200 {
			t.Fatalf("uri: %d", st)
		}
		return uriSecret(t, u.URI)
	}
	a1, a1s := uri(locA, l.Locations[0].Hosts[0].ID)
	b1, b1s := uri(locB, l.Locations[1].Hosts[0].ID)
	b2, b2s := uri(locB, l.Locations[1].Hosts[1].ID)

	rep := func(addr string) *api.LinkReport {
		return &api.LinkReport{Version: 1, Address: addr, Reach: []api.LinkReach{}, Connections: []api.LinkConnection{}}
	}
	for _, h := range []struct{ id, secret, addr string }{{a1, a1s, "198.51.100.1"}, {b1, b1s, "198.51.100.2"}, {b2, b2s, ""}} {
		if st, _, e := c.agentCall("PUT", h.id, h.secret, rep(h.addr), nil); st != 200 {
			t.Fatalf("report %s: %d %+v", h.id, st, e)
		}
	}
	st, sa, _ := c.agentCall("PUT", a1, a1s, rep("198.51.100.1"), nil)
	if st != 200 || !sa.Active || len(sa.Peers) != 1 || sa.Peers[0].RemoteAddress != "198.51.100.2" || sa.Peers[0].Name != "corp-a-b" {
		t.Fatalf("a1 state: %d %+v", st, sa)
	}
	_, sb, _ := c.agentCall("PUT", b1, b1s, rep("198.51.100.2"), nil)
	if !sb.Active || sb.Peers[0].PSK != sa.Peers[0].PSK || sb.Peers[0].RemoteAddress != "198.51.100.1" {
		t.Fatalf("b1 state %+v", sb)
	}
	if _, s2, _ := c.agentCall("PUT", b2, b2s, rep(""), nil); s2.Active || len(s2.Peers) != 0 {
		t.Fatalf("standby b2: %+v", s2)
	}
	// Refusals: tampered body, wrong key, old timestamp, replayed nonce.
	cases := []struct {
		name   string
		secret string
		mutate func(*api.LinkHeaders, *[]byte)
		status int
	}{
		{"tampered body", a1s, func(_ *api.LinkHeaders, b *[]byte) {
			*b = bytes.Replace(*b, []byte("198.51.100.1"), []byte("198.51.100.9"), 1)
		}, 401},
		{"wrong key", b1s, nil, 401},
		{"old timestamp", a1s, func(h *api.LinkHeaders, b *[]byte) {
			mac, _ := linkproto.Keys(a1s)
			h.Timestamp = strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10)
			h.Signature = linkproto.Sign(mac, linkproto.Message(*h, "PUT", "/link/state", *b))
		}, 408},
		{"unknown host", a1s, func(h *api.LinkHeaders, _ *[]byte) { h.Host = strings.Repeat("f", 24) }, 401},
	}
	for _, tc := range cases {
		if st, _, e := c.agentCall("PUT", a1, tc.secret, rep("198.51.100.1"), tc.mutate); st != tc.status {
			t.Errorf("%s: %d %+v, want %d", tc.name, st, e, tc.status)
		}
	}
	var saved api.LinkHeaders
	var savedBody []byte
	c.agentCall("PUT", a1, a1s, rep("198.51.100.1"), func(h *api.LinkHeaders, b *[]byte) { saved, savedBody = *h, *b })
	if st, _, _ := c.agentCall("PUT", a1, a1s, rep("198.51.100.1"), func(h *api.LinkHeaders, b *[]byte) { *h, *b = saved, savedBody }); st != 409 {
		t.Errorf("replayed nonce: %d, want 409", st)
	}
	// A graceful stop of b1 hands site b to b2 at once.
	if st, _, e := c.agentCall("DELETE", b1, b1s, nil, nil); st != 200 {
		t.Fatalf("stop: %d %+v", st, e)
	}
	_, sa, _ = c.agentCall("PUT", a1, a1s, rep("198.51.100.1"), nil)
	if sa.Peers[0].RemoteAddress != "192.0.2.50" {
		t.Fatalf("after b1's stop a1 peers with %s, want b2 (seen from 192.0.2.50)", sa.Peers[0].RemoteAddress)
	}
	var view api.Link
	c.do("GET", "/link/"+l.ID, nil, &view)
	if !view.Locations[1].Hosts[1].Active || view.Locations[1].Hosts[0].Available {
		t.Fatalf("view %+v", view.Locations[1].Hosts)
	}
	// Excluding the pair removes the peer.
	ex := [][]string{{locA, locB}}
	c.do("PUT", "/link/"+l.ID, api.LinkUpdate{Excludes: &ex}, &view)
	if _, sa, _ = c.agentCall("PUT", a1, a1s, rep("198.51.100.1"), nil); len(sa.Peers) != 0 {
		t.Fatalf("excluded pair still peers: %+v", sa.Peers)
	}
	// Deleting the link forgets its hosts.
	var ok api.OKResponse
	c.do("DELETE", "/link/"+l.ID, nil, &ok)
	if st, _, _ := c.agentCall("PUT", a1, a1s, rep("198.51.100.1"), nil); st != 401 {
		t.Fatalf("host of a deleted link: %d", st)
	}
}

// TestLinkReportAddressMustBeItsSource: the core takes a link host's
// address from where its report came; a report naming another address, or
// coming from a loopback or unspecified one, is refused (400 link_address)
// and its address is never handed to the other hosts.
func TestLinkReportAddressMustBeItsSource(t *testing.T) {
	c := newTestCore(t, []int{os.Getuid()})
	c.login()
	var l api.Link
	c.do("POST", "/link", api.LinkCreate{Name: "corp"}, &l)
	c.do("POST", "/link/"+l.ID+"/location", api.LocationCreate{Name: "a", Routes: []string{"10.1.0.0/24"}}, &l)
	c.do("POST", "/link/"+l.ID+"/location", api.LocationCreate{Name: "b", Routes: []string{"10.2.0.0/24"}}, &l)
	c.do("POST", "/link/"+l.ID+"/location/"+l.Locations[0].ID+"/host", api.HostCreate{Name: "a1"}, &l)
	c.do("POST", "/link/"+l.ID+"/location/"+l.Locations[1].ID+"/host", api.HostCreate{Name: "b1"}, &l)
	var u api.HostURI
	c.do("GET", "/link/"+l.ID+"/location/"+l.Locations[0].ID+"/host/"+l.Locations[0].Hosts[0].ID+"/uri", nil, &u)
	a1, a1s := uriSecret(t, u.URI)
	c.do("GET", "/link/"+l.ID+"/location/"+l.Locations[1].ID+"/host/"+l.Locations[1].Hosts[0].ID+"/uri", nil, &u)
	b1, b1s := uriSecret(t, u.URI)
	rep := func(addr string) *api.LinkReport {
		return &api.LinkReport{Version: 1, Address: addr, Reach: []api.LinkReach{}, Connections: []api.LinkConnection{}}
	}
	for _, tc := range []struct{ peer, addr string }{
		{"192.0.2.60", "203.0.113.80"}, // a third party
		{"192.0.2.60", "127.0.0.1"},
		{"192.0.2.60", "0.0.0.0"},
		{"127.0.0.1", ""},
		{"::1", ""},
		{"127.0.0.1", "127.0.0.1"},
	} {
		if st, _, e := c.agentCallFrom(tc.peer, "", "PUT", a1, a1s, rep(tc.addr), nil); st != 400 || e.Error != "link_address" {
			t.Errorf("address %q from %s: %d %+v, want 400 link_address", tc.addr, tc.peer, st, e)
		}
	}
	st, sb, e := c.agentCallFrom("192.0.2.61", "", "PUT", b1, b1s, rep(""), nil)
	if st != 200 {
		t.Fatalf("b1: %d %+v", st, e)
	}
	for _, h := range sb.Hosts {
		if h.HostID == a1 {
			t.Fatalf("a refused address was handed to b1: %+v", sb.Hosts)
		}
	}
	if st, _, e := c.agentCallFrom("192.0.2.60", "", "PUT", a1, a1s, rep("192.0.2.60"), nil); st != 200 {
		t.Fatalf("a1 from its own address: %d %+v", st, e)
	}
	// A forwarded-for list from a peer that is no trusted proxy is ignored.
	if st, _, e := c.agentCallFrom("192.0.2.61", "203.0.113.7", "PUT", b1, b1s, rep("203.0.113.7"), nil); st != 400 || e.Error != "link_address" {
		t.Fatalf("forwarded address believed from an untrusted peer: %d %+v", st, e)
	}
}
