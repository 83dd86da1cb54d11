package rpc

import (
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
)

func TestMuxCheckFindsEveryMismatch(t *testing.T) {
	ok := func(*Call, *api.NoBody) (*api.OKResponse, error) { return &api.OKResponse{OK: true}, nil }
	m := NewMux()
	for _, r := range api.Routes {
		m.add(r, nil)
	}
	if err := m.Check(); err != nil {
		t.Fatalf("a complete mux: %v", err)
	}
	delete(m.bound, "status")
	Handle(m, api.RouteLinkStateStop, ok) // bound twice
	m.add(&api.Route{Name: "extra", Method: "GET", Pattern: "/extra"}, nil)
	// The zero Endpoint is the only one not from the table.
	Handle(m, api.Endpoint[api.NoBody, api.OKResponse]{}, ok)
	// A route named as in the table, but not the table's.
	copyOfTable := *api.RouteOrgGet.Route()
	m.bound["org.get"] = binding{route: &copyOfTable}
	err := m.Check()
	for _, want := range []string{"route status has no handler", "route link.state.stop is bound twice",
		"handler extra has no route", "handler org.get has no route", "an endpoint without a route"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check() = %v, want it to say %q", err, want)
		}
	}
}

func TestNewServerRefusesAnIncompleteMux(t *testing.T) {
	if _, err := NewServer(Config{Token: make([]byte, 32)}, NewMux()); err == nil || !strings.Contains(err.Error(), "has no handler") {
		t.Fatalf("got %v", err)
	}
}
