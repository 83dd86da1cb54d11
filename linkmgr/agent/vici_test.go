package agent

import (
	"flag"
	"os"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
)

var update = flag.Bool("update", false, "rewrite golden files")

func goldenState() (*api.LinkState, *api.LinkPeer) {
	st := &api.LinkState{LinkName: "corp", IKE: []string{"aes256-sha256-x25519"}, ESP: []string{"aes256gcm128-x25519"}}
	p := &api.LinkPeer{Name: "corp-a-b", Location: "b", RemoteAddress: "198.51.100.2",
		PSK: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", LocalSubnets: []string{"10.1.0.0/24"}, RemoteSubnets: []string{"10.2.0.0/24", "10.3.0.0/24"}}
	return st, p
}

// TestVICIMessagesGolden pins the exact messages the agent sends charon.
func TestVICIMessagesGolden(t *testing.T) {
	st, p := goldenState()
	got := "load-shared:\n" + SharedMessage(p, "198.51.100.1").String() + "\n\nload-conn (preferred proposals):\n" +
		ConnMessage(st, p, "198.51.100.1").String()
	st.Force = true
	got += "\n\nload-conn (forced proposals):\n" + ConnMessage(st, p, "198.51.100.1").String() + "\n"
	const golden = "testdata/vici.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("messages differ from %s (run with -update after checking):\n%s", golden, got)
	}
}
