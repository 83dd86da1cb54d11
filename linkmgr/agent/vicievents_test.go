package agent

import (
	"testing"
	"time"

	"github.com/strongswan/govici/vici"
)

func viciMsg(t *testing.T, kv ...any) *vici.Message {
	t.Helper()
	m := vici.NewMessage()
	for i := 0; i < len(kv); i += 2 {
		if err := m.Set(kv[i].(string), kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// TestParseEvent reads the VICI events as charon sends them: a log line
// (an unnamed IKE SA has no connection), and updown events that say "up"
// only when up.
func TestParseEvent(t *testing.T) {
	at := time.Unix(1, 0)
	log := viciMsg(t, "group", "IKE", "level", "1", "thread", "12", "ikesa-name", "(unnamed)", "ikesa-uniqueid", "7",
		"msg", "10.240.0.2 is initiating an IKE_SA")
	evs := parseEvent("log", at, log)
	if len(evs) != 1 || evs[0].Conn != "" || evs[0].IKEID != "7" || evs[0].Level != 1 || evs[0].Group != "IKE" ||
		evs[0].Msg != "10.240.0.2 is initiating an IKE_SA" {
		t.Fatalf("log event %+v", evs)
	}
	up := viciMsg(t, "up", "yes", "corp-A-B", viciMsg(t, "uniqueid", "3", "state", "ESTABLISHED"))
	if evs := parseEvent("child-updown", at, up); len(evs) != 1 || !evs[0].Up || evs[0].Conn != "corp-A-B" || evs[0].IKEID != "3" {
		t.Fatalf("up event %+v", evs)
	}
	down := viciMsg(t, "corp-A-B", viciMsg(t, "uniqueid", "3"))
	if evs := parseEvent("ike-updown", at, down); len(evs) != 1 || evs[0].Up {
		t.Fatalf("down event %+v", evs)
	}
	if evs := parseEvent("list-sa", at, down); evs != nil {
		t.Fatalf("an event the agent does not register for: %+v", evs)
	}
}
