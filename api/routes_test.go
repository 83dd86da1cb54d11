package api

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestRouteTableIsConsistent(t *testing.T) {
	names := map[string]bool{}
	endpoints := map[string]bool{}
	for _, r := range Routes {
		if names[r.Name] {
			t.Errorf("duplicate route name %s", r.Name)
		}
		names[r.Name] = true
		key := r.Method + " " + r.Pattern
		if endpoints[key] {
			t.Errorf("duplicate endpoint %s", key)
		}
		endpoints[key] = true
		if !strings.HasPrefix(r.Pattern, "/") || strings.HasSuffix(r.Pattern, "/") {
			t.Errorf("%s: pattern %q must start and not end with /", r.Name, r.Pattern)
		}
		for _, p := range r.Params() {
			if _, ok := ParamFormats[p]; !ok {
				t.Errorf("%s: parameter %q has no format", r.Name, p)
			}
		}
		if r.NewResponse == nil {
			t.Errorf("%s: no response type", r.Name)
		} else if reflect.TypeOf(r.NewResponse()).Kind() != reflect.Pointer {
			t.Errorf("%s: response constructor must return a pointer", r.Name)
		}
		if r.NewRequest != nil && !r.StateChanging() {
			t.Errorf("%s: a %s route cannot have a body", r.Name, r.Method)
		}
		if r.Limit() <= 0 || r.RespLimit() <= 0 {
			t.Errorf("%s: limits must be positive", r.Name)
		}
		for _, q := range append(slices.Clone(r.Query), r.OptionalQuery...) {
			if _, ok := QueryFormats[q]; !ok {
				t.Errorf("%s: query parameter %q has no format", r.Name, q)
			}
			if slices.Contains(r.Query, q) && slices.Contains(r.OptionalQuery, q) {
				t.Errorf("%s: query parameter %q is both required and optional", r.Name, q)
			}
		}
		if r.Render == RenderTar {
			if _, ok := r.NewResponse().(Archive); !ok {
				t.Errorf("%s: rendered as a tar, but %T is not an Archive", r.Name, r.NewResponse())
			}
		}
	}
}

func TestBuildPath(t *testing.T) {
	r := Lookup("user.profile")
	got := r.BuildPath(map[string]string{"org_id": "a", "user_id": "b", "server_id": "c"})
	if got != "/organization/a/user/b/profile/c" {
		t.Fatalf("got %q", got)
	}
	if Lookup("nope") != nil {
		t.Fatal("Lookup of an unknown route returned one")
	}
}

func TestValidateNamesField(t *testing.T) {
	err := Validate(&ServerCreate{Name: "vpn", Protocol: "icmp", Port: 1194, Network: "10.8.0.0/24", Hosts: []string{"vpn.example.com"}})
	fe, ok := err.(*FieldError)
	if !ok || fe.Field != "protocol" || !strings.Contains(fe.Reason, "udp tcp") {
		t.Fatalf("got %#v", err)
	}
	err = Validate(&ServerCreate{Name: "vpn", Protocol: "udp", Port: 1194, Network: "10.8.0.0/24", Hosts: []string{"bad host"}})
	if fe, ok := err.(*FieldError); !ok || fe.Field != "hosts[0]" {
		t.Fatalf("got %#v", err)
	}
	if err := Validate(&ServerCreate{Name: "vpn", Protocol: "udp", Port: 1194, Network: "10.8.0.0/24", Hosts: []string{"198.51.100.1", "vpn.example.com"}}); err != nil {
		t.Fatal(err)
	}
	if err := Validate(&LoginRequest{Username: "Admin", Password: "x"}); err == nil {
		t.Fatal("upper-case username accepted")
	}
}

func TestIsHostAddr(t *testing.T) {
	for _, s := range []string{"198.51.100.1", "2001:db8::1", "vpn.example.com", "localhost", "a-b.c"} {
		if !IsHostAddr(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range []string{"", "fe80::1%eth0", "-a.com", "a..b", "1.2.3", "a b", "a_b.com", strings.Repeat("a", 64) + ".com"} {
		if IsHostAddr(s) {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestEndpointsBindTheirTypes(t *testing.T) {
	if _, ok := RouteOrgCreate.Route().NewRequest().(*OrganizationCreate); !ok {
		t.Errorf("org.create request is %T", RouteOrgCreate.Route().NewRequest())
	}
	if _, ok := RouteOrgCreate.Route().NewResponse().(*Organization); !ok {
		t.Errorf("org.create response is %T", RouteOrgCreate.Route().NewResponse())
	}
	if RouteOrgDelete.Route().NewRequest != nil {
		t.Error("a NoBody route has a request constructor")
	}
	for _, r := range Routes {
		if r.NewRequest == nil {
			continue
		}
		if _, none := r.NewRequest().(*NoBody); none {
			t.Errorf("%s: NoBody used as a request body", r.Name)
		}
	}
}

// Every route's request and response types are wire types the strict
// decoder takes (it panics on a type it does not support, such as one with
// an embedded struct): each decodes an empty object without panicking.
func TestRouteTypesDecode(t *testing.T) {
	for _, rt := range Routes {
		for what, mk := range map[string]func() any{"request": rt.NewRequest, "response": rt.NewResponse} {
			if mk == nil {
				continue
			}
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Errorf("%s %s: %v", rt.Name, what, p)
					}
				}()
				_ = DecodeStrict([]byte(`{}`), mk())
			}()
		}
	}
}
