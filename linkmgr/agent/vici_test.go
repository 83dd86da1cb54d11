package agent

import (
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
