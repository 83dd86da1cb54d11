package api

import (
	"strings"
	"testing"
)

func TestProfileSyncValidation(t *testing.T) {
	sig := strings.Repeat("A", 86) + "=="
	for _, tc := range []struct {
		v  ProfileSync
		ok bool
	}{
		{ProfileSync{}, true},
		{ProfileSync{Signature: sig, Conf: "#{\n#}\n"}, true},
		{ProfileSync{Signature: sig}, false},
		{ProfileSync{Conf: "x"}, false},
		{ProfileSync{Signature: "short", Conf: "x"}, false},
	} {
		if err := Validate(&tc.v); (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc.v, err)
		}
	}
}

func TestProfileMapValidation(t *testing.T) {
	good := ProfileMap{"Acme_alice_main.ovpn": "x"}
	if err := Validate(&good); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []ProfileMap{{"../a.ovpn": "x"}, {"a.ovpn": ""}, {"a.tar": "x"}, {"a b.ovpn": "x"}} {
		if err := Validate(&bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	var m ProfileMap
	if err := DecodeStrict([]byte(`{"a.ovpn":"x","a.ovpn":"y"}`), &m); err == nil {
		t.Error("duplicate key decoded")
	}
}
