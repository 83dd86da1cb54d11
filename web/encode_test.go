package web

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// wireTypes are the request and answer types of every route, and the
// error body.
func wireTypes() []reflect.Type {
	types := []reflect.Type{reflect.TypeFor[api.Error]()}
	for _, rt := range api.Routes {
		if rt.NewRequest != nil {
			types = append(types, reflect.TypeOf(rt.NewRequest()).Elem())
		}
		types = append(types, reflect.TypeOf(rt.NewResponse()).Elem())
	}
	return types
}

// checkAppendJSON decodes data leniently into every wire type and fails
// when appendJSON writes other bytes than json.Marshal.
func checkAppendJSON(t *testing.T, data []byte) {
	for _, typ := range wireTypes() {
		v := reflect.New(typ)
		if json.Unmarshal(data, v.Interface()) != nil {
			continue
		}
		want, err := json.Marshal(v.Interface())
		got, ok := appendJSON([]byte("prefix"), v.Interface())
		if !ok {
			if !bytes.Equal(got, []byte("prefix")) {
				t.Fatalf("%s: appendJSON gave up but changed the buffer: %q", typ, got)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s %s: appendJSON wrote %s, json.Marshal fails: %v", typ, data, got, err)
		}
		if !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Fatalf("%s %s:\nappendJSON   %s\njson.Marshal %s", typ, data, got[len("prefix"):], want)
		}
	}
}

func encodeSeeds() [][]byte {
	seeds := [][]byte{
		[]byte(`{"id":"5f1e2d3c4b5a697887960a2f","name":"vpn","protocol":"udp","port":1194,"network":"10.8.0.0/24",` +
			`"dynamic_firewall":true,"hosts":["a","b"],"organizations":[],"gateways":null,"created_at":"2026-11-30T08:00:00.5+01:00"}`),
		[]byte(`{"name":"a<b>&c","email":"\u2028","disabled":true,"port":-1,"created_at":"0001-01-01T00:00:00Z"}`),
		[]byte(`{"error":"x","message":"m\n","field":""}`), []byte(`{"users":[{"id":"x","profiles":[{"server_id":"s"}]}]}`),
		[]byte(`{"name":null,"hosts":[],"excludes":[["a","b"]],"ike":["aes"]}`), []byte(`{"profiles":{"a.ovpn":"x"}}`),
		[]byte(`{"created_at":"9999-12-31T23:59:59Z","expires_at":"2026-01-01T00:00:00Z","generation":18446744073709551615}`),
	}
	for _, typ := range wireTypes() {
		raw, _ := json.Marshal(reflect.New(typ).Interface())
		seeds = append(seeds, raw)
	}
	return seeds
}

func TestAppendJSONAgrees(t *testing.T) {
	for _, s := range encodeSeeds() {
		checkAppendJSON(t, s)
	}
	srv := &api.Server{ID: "5f1e2d3c4b5a697887960a2f", Name: "vpn", Protocol: "udp", Port: 1194, Network: "10.8.0.0/24",
		Hosts: []string{"vpn.example.com"}, CreatedAt: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)}
	if _, ok := appendJSON(nil, srv); !ok {
		t.Error("appendJSON gave up on a server")
	}
}

func FuzzAppendJSON(f *testing.F) {
	for _, s := range encodeSeeds() {
		f.Add(s)
	}
	f.Fuzz(checkAppendJSON)
}
