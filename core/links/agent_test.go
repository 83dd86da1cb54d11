package links

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/rpc"
)

// TestReportSourceBehindTrustedProxy: a report's source is the peer the
// front saw, or, only when that peer is a trusted proxy, the last address
// it forwards.
func TestReportSourceBehindTrustedProxy(t *testing.T) {
	s := New(Config{Trusted: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/28")}})
	for _, tc := range []struct{ peer, forwarded, want string }{
		{"198.51.100.7:40000", "", "198.51.100.7"},
		{"[::ffff:198.51.100.7]:40000", "", "198.51.100.7"},
		{"198.51.100.7:40000", "203.0.113.9", "198.51.100.7"}, // not a proxy: its list is ignored
		{"192.0.2.1:40000", "", "192.0.2.1"},
		{"192.0.2.1:40000", "203.0.113.5, 203.0.113.9", "203.0.113.9"},
		{"192.0.2.16:40000", "203.0.113.9", "192.0.2.16"}, // just outside the trusted prefix
		{"", "203.0.113.9", "invalid IP"},
	} {
		h := http.Header{}
		if tc.forwarded != "" {
			h.Set(api.HeaderForwarded, tc.forwarded)
		}
		got, err := s.source(&rpc.Call{Peer: tc.peer, Header: h})
		if err != nil || got.String() != tc.want {
			t.Errorf("peer %q forwarded %q: %v %v, want %s", tc.peer, tc.forwarded, got, err, tc.want)
		}
	}
	h := http.Header{}
	h.Set(api.HeaderForwarded, "not-an-address")
	if _, err := s.source(&rpc.Call{Peer: "192.0.2.1:1", Header: h}); err == nil {
		t.Fatal("a malformed forwarded list from a trusted proxy accepted")
	}
}
