package linkmgr

import (
	"net/netip"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// TestNilLogger: a manager built with a nil logger logs nowhere, and an
// election change (which it logs) does not panic.
func TestNilLogger(t *testing.T) {
	m := NewManager(nil)
	l := testLink()
	m.Sync([]Link{*l})
	changes, err := m.Report(l, hA1, netip.MustParseAddr("192.0.2.1"), &api.LinkReport{Version: 1}, time.Unix(1760000000, 0))
	if err != nil || len(changes) == 0 {
		t.Fatalf("no change logged: %v %v", changes, err)
	}
}
