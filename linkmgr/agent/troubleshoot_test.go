package agent

import (
	"testing"
	"time"
)

// TestWaitMessages: connect and disconnect hand charon their timeout in
// milliseconds, so charon answers when the SA is up, down or failed.
func TestWaitMessages(t *testing.T) {
	m, err := initiateWaitMessage("corp-A-B", 30*time.Second)
	if err != nil || m.String() != "{\n  child = corp-A-B\n  ike = corp-A-B\n  timeout = 30000\n}\n" {
		t.Fatalf("%q %v", m, err)
	}
	m, err = terminateWaitMessage("corp-A-B", 10*time.Second)
	if err != nil || m.String() != "{\n  ike = corp-A-B\n  force = yes\n  timeout = 10000\n}\n" {
		t.Fatalf("%q %v", m, err)
	}
}

// TestConnectionsOf: SAs grouped by name, sorted, counters summed.
func TestConnectionsOf(t *testing.T) {
	got := ConnectionsOf([]SA{
		{Name: "b", State: "CONNECTING"},
		{Name: "a", State: "ESTABLISHED", Children: []ChildSA{{Name: "a", State: "INSTALLED", BytesIn: 3}}},
		{Name: "a", State: "ESTABLISHED", Children: []ChildSA{{Name: "a", State: "REKEYED", BytesIn: 4}}},
	})
	if len(got) != 2 || got[0].Name != "a" || got[0].Child != "INSTALLED" || got[0].BytesIn != 7 || got[1].Name != "b" || got[1].State != "CONNECTING" {
		t.Fatalf("%+v", got)
	}
}

// TestAgentSavesPeers: each round the agent writes the peers it carries
// (name, address, remote subnets, check port) for portcullis-link check.
func TestAgentSavesPeers(t *testing.T) {
	dir := t.TempDir()
	if peers, err := ReadPeers(dir); err != nil || len(peers) != 0 {
		t.Fatalf("before any round: %+v %v", peers, err)
	}
	a, _, _ := testAgent(t, &calls{}, dir)
	mustRound(t, a)
	peers, err := ReadPeers(dir)
	if err != nil || len(peers) != 1 || peers[0].Name != "corp-A-B" || peers[0].RemoteAddress == "" || len(peers[0].RemoteSubnets) == 0 || peers[0].CheckPort == 0 {
		t.Fatalf("peers file %+v %v", peers, err)
	}
}
