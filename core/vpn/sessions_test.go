package vpn

import (
	"errors"
	"math/big"
	"testing"
	"time"
)

// Sessions copies the session table: the connects being decided with the
// certificate they present, the allowed sessions, the learnt ones; a
// server without a worker is ErrNotRunning.
func TestSessionTable(t *testing.T) {
	m := New(Options{})
	if _, err := m.Sessions("nope"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Sessions of a server without worker: %v", err)
	}
	w := newWorker("s1", &m.o, Account{})
	learnt := time.Now()
	w.sessions[7] = &session{userID: "u1", orgID: "o1", serial: big.NewInt(10), deciding: true}
	w.sessions[3] = &session{userID: "u2", orgID: "o1", serial: big.NewInt(11)}
	w.sessions[5] = &session{userID: "u3", learnt: learnt}
	got := w.sessionTable()
	want := []SessionInfo{
		{CID: 3, UserID: "u2", OrgID: "o1", Serial: big.NewInt(11)},
		{CID: 5, UserID: "u3", Learnt: learnt},
		{CID: 7, UserID: "u1", OrgID: "o1", Serial: big.NewInt(10), Deciding: true},
	}
	if len(got) != len(want) {
		t.Fatalf("table %+v, want %+v", got, want)
	}
	for i := range want {
		g, x := got[i], want[i]
		if g.CID != x.CID || g.UserID != x.UserID || g.OrgID != x.OrgID || g.Deciding != x.Deciding ||
			!g.Learnt.Equal(x.Learnt) || (g.Serial == nil) != (x.Serial == nil) || (g.Serial != nil && g.Serial.Cmp(x.Serial) != 0) {
			t.Fatalf("entry %d: %+v, want %+v", i, g, x)
		}
	}
	got[0].Serial.SetInt64(99) // a copy: the table keeps its own
	if w.sessions[3].serial.Int64() != 11 {
		t.Fatal("the table's serial was changed through Sessions")
	}
}
