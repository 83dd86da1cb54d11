package agent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/strongswan/govici/vici"
)

// viciTimeout bounds a VICI call whose context has no deadline: a govici
// session that hears nothing for its read deadline dies, so every call has
// one (see lab-facts).
const viciTimeout = 15 * time.Second

// VICI is a Charon over charon's VICI socket. Commands share one session,
// dialled on first use and again after it broke (charon restarted);
// listings use a session of their own.
type VICI struct {
	socket string
	mu     sync.Mutex
	sess   *vici.Session
}

// NewVICI returns a Charon for the VICI socket; it connects on first use.
func NewVICI(socket string) *VICI { return &VICI{socket: socket} }

// DialCharon connects to charon's VICI socket and checks that it answers.
func DialCharon(ctx context.Context, socket string) (*VICI, error) {
	v := NewVICI(socket)
	if _, err := v.call(ctx, "version", vici.NewMessage()); err != nil {
		return nil, errors.Join(err, v.Close())
	}
	return v, nil
}

// Close closes the command session.
func (v *VICI) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.sess == nil {
		return nil
	}
	err := v.sess.Close()
	v.sess = nil
	if err != nil {
		return fmt.Errorf("close vici session %s: %w", v.socket, err)
	}
	return nil
}

// CommandError is charon's refusal of a command; the session stays good.
type CommandError struct {
	Cmd, Msg string
}

func (e *CommandError) Error() string { return fmt.Sprintf("vici %s: %s", e.Cmd, e.Msg) }

// errmsgNoSAs is charon's answer to terminate when no SA matches.
const errmsgNoSAs = "no matching SAs to terminate found"

// call runs one command with a deadline. A failure of the session itself
// (not a refusal) closes it, so the next call dials again.
func (v *VICI) call(ctx context.Context, cmd string, in *vici.Message) (*vici.Message, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, viciTimeout)
		defer cancel()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.sess == nil {
		s, err := vici.NewSession(vici.WithSocketPath(v.socket))
		if err != nil {
			return nil, fmt.Errorf("vici %s: connect %s: %w", cmd, v.socket, err)
		}
		v.sess = s
	}
	m, err := v.sess.Call(ctx, cmd, in)
	if m != nil && m.Err() != nil {
		errmsg, _ := m.Get("errmsg").(string)
		return nil, &CommandError{Cmd: cmd, Msg: errmsg}
	}
	if err != nil {
		cerr := v.sess.Close()
		v.sess = nil
		if cerr != nil {
			err = errors.Join(err, fmt.Errorf("close broken session: %w", cerr))
		}
		return nil, fmt.Errorf("vici %s: %w", cmd, err)
	}
	return m, nil
}

// command builds a message and calls cmd with it.
func (v *VICI) command(ctx context.Context, cmd string, build func() (*vici.Message, error)) error {
	in, err := build()
	if err != nil {
		return fmt.Errorf("vici %s: %w", cmd, err)
	}
	_, err = v.call(ctx, cmd, in)
	return err
}

// LoadShared implements Charon.
func (v *VICI) LoadShared(ctx context.Context, c Conn) error {
	return v.command(ctx, "load-shared", func() (*vici.Message, error) { return SharedMessage(&c.Peer, c.Local) })
}

// LoadConn implements Charon.
func (v *VICI) LoadConn(ctx context.Context, c Conn) error {
	return v.command(ctx, "load-conn", func() (*vici.Message, error) { return connMessage(c) })
}

// Initiate implements Charon.
func (v *VICI) Initiate(ctx context.Context, name string) error {
	return v.command(ctx, "initiate", func() (*vici.Message, error) { return initiateMessage(name) })
}

// Terminate implements Charon.
func (v *VICI) Terminate(ctx context.Context, name string) error {
	err := v.command(ctx, "terminate", func() (*vici.Message, error) { return terminateMessage(name) })
	var ce *CommandError
	if errors.As(err, &ce) && ce.Msg == errmsgNoSAs {
		return nil
	}
	return err
}

// UnloadConn implements Charon.
func (v *VICI) UnloadConn(ctx context.Context, name string) error {
	return v.command(ctx, "unload-conn", func() (*vici.Message, error) { return unloadConnMessage(name) })
}

// UnloadShared implements Charon.
func (v *VICI) UnloadShared(ctx context.Context, name string) error {
	return v.command(ctx, "unload-shared", func() (*vici.Message, error) { return unloadSharedMessage(name) })
}

// Unload terminates a connection's SAs and unloads it and its key, trying
// every step and returning every error (portcullis-link remove).
func (v *VICI) Unload(ctx context.Context, name string) error {
	return errors.Join(v.Terminate(ctx, name), v.UnloadConn(ctx, name), v.UnloadShared(ctx, name))
}

// List implements Charon. govici's streaming call loses events when many
// arrive at once, so a separate session subscribes to list-sa and
// list-conn with a large buffer, issues plain calls and drains what arrived
// (see lab-facts).
func (v *VICI) List(ctx context.Context) (Listing, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, viciTimeout)
		defer cancel()
	}
	s, err := vici.NewSession(vici.WithSocketPath(v.socket))
	if err != nil {
		return Listing{}, fmt.Errorf("vici %s: %w", v.socket, err)
	}
	events := make(chan vici.Event, 4096)
	s.NotifyEvents(events)
	l, err := listOn(ctx, s, events)
	s.StopEvents(events)
	if cerr := s.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close vici listing session: %w", cerr))
	}
	if err != nil {
		return Listing{}, err
	}
	return l, nil
}

func listOn(ctx context.Context, s *vici.Session, events <-chan vici.Event) (Listing, error) {
	if err := s.Subscribe("list-sa", "list-conn"); err != nil {
		return Listing{}, fmt.Errorf("vici subscribe list-sa, list-conn: %w", err)
	}
	for _, cmd := range []string{"list-sas", "list-conns"} {
		if _, err := s.Call(ctx, cmd, vici.NewMessage()); err != nil {
			return Listing{}, fmt.Errorf("vici %s: %w", cmd, err)
		}
	}
	// The events were read before the answers, but govici hands them to
	// the channel from another goroutine: collect until the channel has
	// been quiet for a moment (bounded).
	var l Listing
	quiet := time.NewTimer(100 * time.Millisecond)
	defer quiet.Stop()
	limit := time.NewTimer(2 * time.Second)
	defer limit.Stop()
	for {
		select {
		case ev := <-events:
			if ev.Message != nil {
				switch ev.Name {
				case "list-sa":
					l.SAs = append(l.SAs, parseSAs(ev.Message)...)
				case "list-conn":
					l.Conns = append(l.Conns, ev.Message.Keys()...)
					l.addLoaded(ev.Message)
				}
			}
			quiet.Reset(100 * time.Millisecond)
		case <-quiet.C:
			return l.sorted(), nil
		case <-limit.C:
			return l.sorted(), nil
		case <-ctx.Done():
			return Listing{}, fmt.Errorf("vici listing: %w", ctx.Err())
		}
	}
}

func (l Listing) sorted() Listing {
	sort.Slice(l.SAs, func(i, j int) bool { return l.SAs[i].Name < l.SAs[j].Name })
	sort.Strings(l.Conns)
	return l
}

func str(m *vici.Message, key string) string {
	if v, ok := m.Get(key).(string); ok {
		return v
	}
	return ""
}

// parseSAs reads one list-sa event. A counter charon sends is always a
// decimal number; one that is not reads as 0.
func parseSAs(m *vici.Message) []SA {
	var out []SA
	for _, name := range m.Keys() {
		ike, ok := m.Get(name).(*vici.Message)
		if !ok {
			continue
		}
		sa := SA{Name: name, State: str(ike, "state"), Remote: str(ike, "remote-host")}
		readIKEDetail(&sa, ike)
		if children, ok := ike.Get("child-sas").(*vici.Message); ok {
			for _, k := range children.Keys() {
				ch, ok := children.Get(k).(*vici.Message)
				if !ok {
					continue
				}
				c := ChildSA{Name: str(ch, "name"), State: str(ch, "state"),
					BytesIn: counter(ch, "bytes-in"), BytesOut: counter(ch, "bytes-out")}
				readChildDetail(&c, ch)
				sa.Children = append(sa.Children, c)
			}
		}
		out = append(out, sa)
	}
	return out
}

func counter(m *vici.Message, key string) uint64 {
	n, err := strconv.ParseUint(str(m, key), 10, 64)
	if err != nil {
		return 0
	}
	return n
}
