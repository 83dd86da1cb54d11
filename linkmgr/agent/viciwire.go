package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The VICI wire format, for the event stream only: govici v0.8.0 holds its
// event lock while it waits for a registration's confirmation, so an event
// arriving meanwhile (charon logs all the time) blocks its reader for good
// (found with real charons: TestEventsAgainstCharon hung). The agent reads
// its events itself: a packet is a 32-bit big-endian length and the
// payload, whose first byte is the packet type; named types carry an 8-bit
// name length and the name; then a message, as elements.

// Packet types.
const (
	pktEventRegister = 3
	pktEventConfirm  = 5
	pktEventUnknown  = 6
	pktEvent         = 7
)

// Message element types.
const (
	elSectionStart = 1
	elSectionEnd   = 2
	elKeyValue     = 3
	elListStart    = 4
	elListItem     = 5
	elListEnd      = 6
)

// Bounds of what the agent reads from charon.
const (
	maxVICIPacket = 1 << 20
	maxVICIDepth  = 16
)

// wireMsg is a decoded VICI message: its keys in order, each a string, a
// []string or a *wireMsg.
type wireMsg struct {
	keys []string
	vals map[string]any
}

func newWireMsg() *wireMsg { return &wireMsg{vals: map[string]any{}} }

// Keys returns the message's keys in order.
func (m *wireMsg) Keys() []string { return m.keys }

// Get returns a key's value (nil when absent).
func (m *wireMsg) Get(k string) any { return m.vals[k] }

func (m *wireMsg) set(k string, v any) {
	if _, dup := m.vals[k]; !dup {
		m.keys = append(m.keys, k)
	}
	m.vals[k] = v
}

func (m *wireMsg) str(k string) string {
	s, _ := m.vals[k].(string)
	return s
}

// registerPacket is the packet registering for the event name.
func registerPacket(name string) []byte {
	b := make([]byte, 4, 6+len(name))
	binary.BigEndian.PutUint32(b, uint32(2+len(name)))
	return append(append(b, pktEventRegister, byte(len(name))), name...)
}

// readPacket reads one packet: its type, name (for named types) and
// message bytes.
func readPacket(r io.Reader) (typ byte, name string, body []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, "", nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxVICIPacket {
		return 0, "", nil, fmt.Errorf("vici packet of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, "", nil, err
	}
	typ, p = p[0], p[1:]
	if typ == pktEvent || typ == pktEventRegister || typ == 0 || typ == 4 {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return 0, "", nil, errors.New("vici packet: short name")
		}
		name, p = string(p[1:1+int(p[0])]), p[1+int(p[0]):]
	}
	return typ, name, p, nil
}

// decodeWire decodes a message's elements.
func decodeWire(b []byte) (*wireMsg, error) {
	root := newWireMsg()
	stack := []*wireMsg{root}
	var list []string
	listName := ""
	inList := false
	name8 := func() (string, error) {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return "", errors.New("vici message: short name")
		}
		s := string(b[1 : 1+int(b[0])])
		b = b[1+int(b[0]):]
		return s, nil
	}
	value16 := func() (string, error) {
		if len(b) < 2 {
			return "", errors.New("vici message: short value length")
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return "", errors.New("vici message: short value")
		}
		s := string(b[2 : 2+n])
		b = b[2+n:]
		return s, nil
	}
	for len(b) > 0 {
		el := b[0]
		b = b[1:]
		if inList && el != elListItem && el != elListEnd {
			return nil, fmt.Errorf("vici message: element %d inside a list", el)
		}
		cur := stack[len(stack)-1]
		switch el {
		case elSectionStart:
			k, err := name8()
			if err != nil {
				return nil, err
			}
			if len(stack) >= maxVICIDepth {
				return nil, errors.New("vici message: sections nested too deep")
			}
			s := newWireMsg()
			cur.set(k, s)
			stack = append(stack, s)
		case elSectionEnd:
			if len(stack) == 1 {
				return nil, errors.New("vici message: section end without start")
			}
			stack = stack[:len(stack)-1]
		case elKeyValue:
			k, err := name8()
			if err != nil {
				return nil, err
			}
			v, err := value16()
			if err != nil {
				return nil, err
			}
			cur.set(k, v)
		case elListStart:
			k, err := name8()
			if err != nil {
				return nil, err
			}
			listName, list, inList = k, []string{}, true
		case elListItem:
			if !inList {
				return nil, errors.New("vici message: list item outside a list")
			}
			v, err := value16()
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		case elListEnd:
			if !inList {
				return nil, errors.New("vici message: list end without start")
			}
			cur.set(listName, list)
			inList = false
		default:
			return nil, fmt.Errorf("vici message: unknown element %d", el)
		}
	}
	if len(stack) != 1 || inList {
		return nil, errors.New("vici message: unterminated section or list")
	}
	return root, nil
}
