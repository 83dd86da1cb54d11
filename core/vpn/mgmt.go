package vpn

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The management-interface protocol, as far as the core speaks it. OpenVPN
// writes two kinds of lines on the socket: real-time notifications, which
// start with '>', and the answers to the command the client sent last
// ("SUCCESS: …", "ERROR: …", or for status a block of lines ending "END").
// The client notifications CONNECT, REAUTH, ESTABLISHED and DISCONNECT are
// followed by their environment, one ">CLIENT:ENV,name=value" line each,
// closed by ">CLIENT:ENV,END".
//
// The parser is pure: it takes lines (without their line ending) and
// returns events. It is the only code that reads what a worker writes, and
// a worker is the least trusted process the core talks to, so it is
// bounded and fuzzed (FuzzManagement).

// Notification kinds the core acts on.
const (
	KindConnect     = "CLIENT:CONNECT"
	KindReauth      = "CLIENT:REAUTH"
	KindEstablished = "CLIENT:ESTABLISHED"
	KindDisconnect  = "CLIENT:DISCONNECT"
	KindAddress     = "CLIENT:ADDRESS"
)

// Limits on what one event may carry.
const (
	MaxLine     = 64 << 10 // bytes in one line
	MaxEnv      = 512      // environment entries of one client event
	MaxEnvBytes = 256 << 10
)

// Env is one environment entry of a client event.
type Env struct{ Name, Value string }

// Event is one notification. Kind is its tag ("CLIENT:CONNECT", "INFO",
// "LOG", …). Client events carry their client ID, CONNECT and REAUTH also
// the key ID; CONNECT, REAUTH, ESTABLISHED and DISCONNECT carry Env.
// Anything after the IDs (an ADDRESS's address and primary flag) or after
// the tag of another notification is in Args, as written.
type Event struct {
	Kind   string
	CID    uint64
	KID    uint64
	Args   string
	Env    []Env
	HasEnv bool
}

// Get returns the value of the first environment entry named name.
func (e *Event) Get(name string) string {
	for _, v := range e.Env {
		if v.Name == name {
			return v.Value
		}
	}
	return ""
}

// ErrProtocol is wrapped by every parse error.
var ErrProtocol = errors.New("management protocol")

func perr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, a...))
}

// clientShape says which IDs a client notification carries and whether an
// environment block follows it.
var clientShape = map[string]struct{ kid, env bool }{
	KindConnect:     {kid: true, env: true},
	KindReauth:      {kid: true, env: true},
	KindEstablished: {env: true},
	KindDisconnect:  {env: true},
	KindAddress:     {},
}

// Parser turns lines into events. The zero value is ready.
type Parser struct {
	pending *Event // a client event whose environment is being read
	size    int
}

// Feed takes one line. It returns a complete event, or reply=true when the
// line is not a notification (it answers the last command), or neither
// while an environment block is open. An error leaves the parser ready for
// the next event (the half-read one is dropped).
func (p *Parser) Feed(line string) (ev *Event, reply bool, err error) {
	if len(line) > MaxLine {
		p.pending = nil
		return nil, false, perr("line of %d bytes", len(line))
	}
	if p.pending != nil {
		return p.env(line)
	}
	if !strings.HasPrefix(line, ">") {
		return nil, true, nil
	}
	kind, rest, ok := strings.Cut(line[1:], ",")
	if !strings.HasPrefix(kind, "CLIENT:") {
		// >TAG:text (INFO, LOG, STATE, HOLD, …): the tag ends at the first ':'.
		tag, text, found := strings.Cut(line[1:], ":")
		if !found || tag == "" {
			return nil, false, perr("notification without a tag")
		}
		return &Event{Kind: tag, Args: text}, false, nil
	}
	if kind == "CLIENT:ENV" {
		return nil, false, perr("environment line outside a client event")
	}
	shape, known := clientShape[kind]
	if !known {
		// A client notification the core does not act on (CR_RESPONSE, …):
		// passed on whole, never with an environment.
		if !ok {
			return &Event{Kind: kind}, false, nil
		}
		return &Event{Kind: kind, Args: rest}, false, nil
	}
	if !ok {
		return nil, false, perr("%s without a client ID", kind)
	}
	ev = &Event{Kind: kind}
	fields := strings.SplitN(rest, ",", 3)
	if ev.CID, err = parseID(fields[0]); err != nil {
		return nil, false, perr("%s client ID: %v", kind, err)
	}
	fields = fields[1:]
	if shape.kid {
		if len(fields) == 0 {
			return nil, false, perr("%s without a key ID", kind)
		}
		if ev.KID, err = parseID(fields[0]); err != nil {
			return nil, false, perr("%s key ID: %v", kind, err)
		}
		fields = fields[1:]
	}
	ev.Args = strings.Join(fields, ",")
	if shape.env {
		if ev.Args != "" {
			return nil, false, perr("%s with unexpected fields", kind)
		}
		ev.HasEnv = true
		p.pending, p.size = ev, 0
		return nil, false, nil
	}
	return ev, false, nil
}

func (p *Parser) env(line string) (*Event, bool, error) {
	const prefix = ">CLIENT:ENV,"
	ev := p.pending
	if !strings.HasPrefix(line, prefix) {
		p.pending = nil
		return nil, false, perr("%s: environment block interrupted", ev.Kind)
	}
	body := line[len(prefix):]
	if body == "END" {
		p.pending = nil
		return ev, false, nil
	}
	name, value, ok := strings.Cut(body, "=")
	if !ok || name == "" {
		p.pending = nil
		return nil, false, perr("%s: environment entry without a name", ev.Kind)
	}
	p.size += len(body)
	if len(ev.Env) >= MaxEnv || p.size > MaxEnvBytes {
		p.pending = nil
		return nil, false, perr("%s: environment too large", ev.Kind)
	}
	ev.Env = append(ev.Env, Env{Name: name, Value: value})
	return nil, false, nil
}

// parseID reads a client or key ID: decimal digits only.
func parseID(s string) (uint64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return strconv.ParseUint(s, 10, 64)
}

// Lines writes the event back as OpenVPN would, one line per element: the
// inverse of Feed for every event Feed returns.
func (e *Event) Lines() []string {
	if _, client := clientShape[e.Kind]; !client {
		if strings.HasPrefix(e.Kind, "CLIENT:") {
			if e.Args == "" {
				return []string{">" + e.Kind}
			}
			return []string{">" + e.Kind + "," + e.Args}
		}
		return []string{">" + e.Kind + ":" + e.Args}
	}
	head := ">" + e.Kind + "," + strconv.FormatUint(e.CID, 10)
	if clientShape[e.Kind].kid {
		head += "," + strconv.FormatUint(e.KID, 10)
	}
	if e.Args != "" {
		head += "," + e.Args
	}
	out := []string{head}
	if e.HasEnv {
		for _, v := range e.Env {
			out = append(out, ">CLIENT:ENV,"+v.Name+"="+v.Value)
		}
		out = append(out, ">CLIENT:ENV,END")
	}
	return out
}

// replyDone reports whether line ends a command's answer (a multi-line
// one ends with END) and whether the answer is an ERROR.
func replyDone(line string, multi bool) (done, failed bool) {
	switch {
	case strings.HasPrefix(line, "ERROR:"):
		return true, true
	case multi:
		return line == "END", false
	default:
		return strings.HasPrefix(line, "SUCCESS:"), false
	}
}

// quote makes a reason safe inside the double quotes of client-deny: no
// quotes, backslashes or control characters, at most 200 bytes.
func quote(reason string) string {
	var b strings.Builder
	for _, r := range reason {
		if b.Len() >= 200 {
			break
		}
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\'')
		case r < 0x20 || r == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return `"` + b.String() + `"`
}
