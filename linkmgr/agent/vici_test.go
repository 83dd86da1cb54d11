package agent

import (
	"strings"
	"testing"

	"github.com/strongswan/govici/vici"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/golden"
)

func goldenState() (*api.LinkState, *api.LinkPeer) {
	st := &api.LinkState{LinkName: "corp", IKE: []string{"aes256-sha256-x25519"}, ESP: []string{"aes256gcm128-x25519"}}
	p := &api.LinkPeer{Name: "corp-a-b", Location: "b", RemoteAddress: "198.51.100.2",
		PSK: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", LocalSubnets: []string{"10.1.0.0/24"}, RemoteSubnets: []string{"10.2.0.0/24", "10.3.0.0/24"}}
	return st, p
}

// TestVICIMessagesGolden pins the exact messages the agent sends charon.
func TestVICIMessagesGolden(t *testing.T) {
	st, p := goldenState()
	must := func(m *vici.Message, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return m.String()
	}
	got := "load-shared:\n" + must(SharedMessage(p, "198.51.100.1")) + "\n\nload-conn (preferred proposals):\n" +
		must(ConnMessage(st, p, "198.51.100.1"))
	st.Force = true
	got += "\n\nload-conn (forced proposals):\n" + must(ConnMessage(st, p, "198.51.100.1")) + "\n"
	golden.Check(t, "testdata/vici.golden", got)
}

// TestMsgBuilderKeepsTheFirstError: a value VICI cannot carry is an error
// from done, not a panic, and it reaches the outer message.
func TestMsgBuilderKeepsTheFirstError(t *testing.T) {
	if _, err := newMsg().str("a", "b").set("bad", make(chan int)).str("c", "d").done(); err == nil || !strings.Contains(err.Error(), "bad") {
		t.Fatalf("error %v", err)
	}
	inner := newMsg().set("bad", make(chan int))
	if _, err := newMsg().sub("outer", inner).done(); err == nil {
		t.Fatal("inner error lost")
	}
	m, err := newMsg().str("a", "b").list("l", "x", "y").sub("s", newMsg().str("k", "v")).done()
	if err != nil || m.String() != "{\n  a = b\n  l = x,y\n  s {\n    k = v\n  }\n}\n" {
		t.Fatalf("%q %v", m, err)
	}
}
