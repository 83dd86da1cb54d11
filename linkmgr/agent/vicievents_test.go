package agent

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

// enc builds VICI message bytes: kv pairs of a key and a string, a
// []string (a list) or an enc section.
type enc []any

func (e enc) bytes() []byte {
	var b bytes.Buffer
	name := func(s string) { b.WriteByte(byte(len(s))); b.WriteString(s) }
	val := func(s string) { _ = binary.Write(&b, binary.BigEndian, uint16(len(s))); b.WriteString(s) }
	for i := 0; i < len(e); i += 2 {
		k := e[i].(string)
		switch v := e[i+1].(type) {
		case string:
			b.WriteByte(elKeyValue)
			name(k)
			val(v)
		case []string:
			b.WriteByte(elListStart)
			name(k)
			for _, s := range v {
				b.WriteByte(elListItem)
				val(s)
			}
			b.WriteByte(elListEnd)
		case enc:
			b.WriteByte(elSectionStart)
			name(k)
			b.Write(v.bytes())
			b.WriteByte(elSectionEnd)
		}
	}
	return b.Bytes()
}

func mustDecode(t *testing.T, e enc) *wireMsg {
	t.Helper()
	m, err := decodeWire(e.bytes())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestParseEvent reads the VICI events as charon sends them: a log line
// (an unnamed IKE SA has no connection), and updown events that say "up"
// only when up.
func TestParseEvent(t *testing.T) {
	at := time.Unix(1, 0)
	log := mustDecode(t, enc{"group", "IKE", "level", "1", "thread", "12", "ikesa-name", "(unnamed)", "ikesa-uniqueid", "7",
		"msg", "10.240.0.2 is initiating an IKE_SA"})
	evs, err := parseEvent("log", at, log)
	if err != nil || len(evs) != 1 || evs[0].Conn != "" || evs[0].IKEID != "7" || evs[0].Level != 1 || evs[0].Group != "IKE" ||
		evs[0].Msg != "10.240.0.2 is initiating an IKE_SA" {
		t.Fatalf("log event %+v", evs)
	}
	up := mustDecode(t, enc{"up", "yes", "corp-A-B", enc{"uniqueid", "3", "state", "ESTABLISHED", "local-ts", []string{"10.1.0.0/24"}}})
	if evs, err := parseEvent("child-updown", at, up); err != nil || len(evs) != 1 || !evs[0].Up || evs[0].Conn != "corp-A-B" || evs[0].IKEID != "3" {
		t.Fatalf("up event %+v", evs)
	}
	down := mustDecode(t, enc{"corp-A-B", enc{"uniqueid", "3"}})
	if evs, err := parseEvent("ike-updown", at, down); err != nil || len(evs) != 1 || evs[0].Up {
		t.Fatalf("down event %+v", evs)
	}
	if evs, err := parseEvent("list-sa", at, down); err != nil || evs != nil {
		t.Fatalf("an event the agent does not register for: %+v, %v", evs, err)
	}
	// A level that is not a number: an error, and the line kept.
	bad := mustDecode(t, enc{"group", "IKE", "level", "high", "msg", "x"})
	if evs, err := parseEvent("log", at, bad); err == nil || !strings.Contains(err.Error(), "level") || len(evs) != 1 || evs[0].Msg != "x" {
		t.Fatalf("bad level: %+v, %v", evs, err)
	}
}

// TestReadPacket reads an event packet and refuses oversized and short ones.
func TestReadPacket(t *testing.T) {
	body := enc{"msg", "hello"}.bytes()
	var p bytes.Buffer
	_ = binary.Write(&p, binary.BigEndian, uint32(2+3+len(body)))
	p.Write([]byte{pktEvent, 3, 'l', 'o', 'g'})
	p.Write(body)
	typ, name, got, err := readPacket(&p)
	if err != nil || typ != pktEvent || name != "log" || !bytes.Equal(got, body) {
		t.Fatalf("packet %d %q %q %v", typ, name, got, err)
	}
	for _, bad := range [][]byte{{0xff, 0, 0, 0, 7}, {0, 0, 0, 0}, {0, 0, 0, 2, pktEvent, 9}} {
		if _, _, _, err := readPacket(bytes.NewReader(bad)); err == nil {
			t.Fatalf("packet %x accepted", bad)
		}
	}
	if got := registerPacket("log"); !bytes.Equal(got, []byte{0, 0, 0, 5, pktEventRegister, 3, 'l', 'o', 'g'}) {
		t.Fatalf("register packet %x", got)
	}
}

// FuzzDecodeWire: whatever bytes come from the VICI socket, decoding
// neither panics nor nests past its bound, and a decoded event parses.
func FuzzDecodeWire(f *testing.F) {
	f.Add(enc{"group", "IKE", "level", "1", "ikesa-name", "t", "ikesa-uniqueid", "7", "msg", "retransmit 1 of request with message ID 0"}.bytes())
	f.Add(enc{"up", "yes", "t", enc{"uniqueid", "3", "child-sas", enc{"t-1", enc{"local-ts", []string{"10.1.0.0/24"}}}}}.bytes())
	f.Add([]byte{elSectionStart, 1, 'a', elListStart, 1, 'b', elListItem, 0, 1, 'x', elListEnd, elSectionEnd})
	f.Add([]byte{elSectionEnd})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeWire(data)
		if err != nil {
			return
		}
		depth := 0
		var walk func(*wireMsg, int)
		walk = func(w *wireMsg, d int) {
			depth = max(depth, d)
			for _, k := range w.Keys() {
				if s, ok := w.Get(k).(*wireMsg); ok {
					walk(s, d+1)
				}
			}
		}
		walk(m, 1)
		if depth > maxVICIDepth {
			t.Fatalf("nested %d deep", depth)
		}
		for _, name := range []string{"log", "ike-updown", "child-updown"} {
			if evs, err := parseEvent(name, time.Unix(0, 0), m); err != nil && len(evs) != 1 {
				t.Fatalf("%s: an error without the event: %v", name, err)
			}
		}
	})
}
