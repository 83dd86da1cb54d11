package agent

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/strongswan/govici/vici"

	"github.com/portcullis-gw/portcullis/api"
)

// Everything the agent loads into charon is named with its connection
// name (<link>-<location>-<peer>) and its shared keys with this prefix, so
// that it can be listed and removed.
const sharedPrefix = "portcullis-"

// The VICI messages are built key by key (not from Go maps, whose order is
// random, nor from structs, whose zero values would all be sent).

func list(v ...string) []string { return v }

func section(kv ...any) *vici.Message {
	m := vici.NewMessage()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := m.Set(kv[i].(string), kv[i+1]); err != nil {
			panic(fmt.Sprintf("vici message %v: %v", kv[i], err))
		}
	}
	return m
}

// proposals returns the link's proposals, with "default" appended unless
// the link forces its own.
func proposals(p []string, force bool) []string {
	out := append([]string{}, p...)
	if !force {
		out = append(out, "default")
	}
	return out
}

// SharedMessage is the load-shared message of a peer's PSK.
func SharedMessage(p *api.LinkPeer, local string) *vici.Message {
	return section(
		"id", sharedPrefix+p.Name,
		"type", "IKE",
		"data", p.PSK,
		"owners", list(local, p.RemoteAddress),
	)
}

// ConnMessage is the load-conn message of one peer connection: IKEv2 with
// PSK, dead peer detection every second, retries for ever, the child
// started at once and restarted when it dies or is closed.
func ConnMessage(st *api.LinkState, p *api.LinkPeer, local string) *vici.Message {
	child := section(
		"local_ts", p.LocalSubnets,
		"remote_ts", p.RemoteSubnets,
		"esp_proposals", proposals(st.ESP, st.Force),
		"start_action", "start",
		"dpd_action", "restart",
		"close_action", "restart",
	)
	conn := section(
		"version", "2",
		"local_addrs", list(local),
		"remote_addrs", list(p.RemoteAddress),
		"proposals", proposals(st.IKE, st.Force),
		"dpd_delay", "1s",
		"keyingtries", "0",
		"local", section("auth", "psk", "id", local),
		"remote", section("auth", "psk", "id", p.RemoteAddress),
		"children", section(p.Name, child),
	)
	return section(p.Name, conn)
}

// Charon is a VICI connection to one charon.
type Charon struct {
	socket string
	sess   *vici.Session
}

// DialCharon connects to charon's VICI socket.
func DialCharon(ctx context.Context, socket string) (*Charon, error) {
	s, err := vici.NewSession(vici.WithSocketPath(socket))
	if err != nil {
		return nil, fmt.Errorf("vici %s: %w", socket, err)
	}
	c := &Charon{socket: socket, sess: s}
	if _, err := c.call(ctx, "version", nil); err != nil {
		s.Close()
		return nil, err
	}
	return c, nil
}

// Close closes the session.
func (c *Charon) Close() error { return c.sess.Close() }

// call runs one command with a deadline (a VICI session hearing nothing
// for its read deadline dies, so every call has one).
func (c *Charon) call(ctx context.Context, cmd string, in *vici.Message) (*vici.Message, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
	}
	m, err := c.sess.Call(ctx, cmd, in)
	if err != nil {
		return nil, fmt.Errorf("vici %s: %w", cmd, err)
	}
	if err := m.Err(); err != nil {
		return nil, fmt.Errorf("vici %s: %w", cmd, err)
	}
	return m, nil
}

// Load loads a peer's shared key and connection.
func (c *Charon) Load(ctx context.Context, st *api.LinkState, p *api.LinkPeer, local string) error {
	if _, err := c.call(ctx, "load-shared", SharedMessage(p, local)); err != nil {
		return err
	}
	_, err := c.call(ctx, "load-conn", ConnMessage(st, p, local))
	return err
}

// Initiate starts a connection's child SA without waiting for it.
func (c *Charon) Initiate(ctx context.Context, name string) error {
	_, err := c.call(ctx, "initiate", section("child", name, "ike", name, "timeout", "-1"))
	return err
}

// Unload terminates a connection's SAs and unloads it and its key.
func (c *Charon) Unload(ctx context.Context, name string) error {
	_, _ = c.call(ctx, "terminate", section("ike", name, "force", "yes", "timeout", "-1"))
	if _, err := c.call(ctx, "unload-conn", section("name", name)); err != nil {
		return err
	}
	_, err := c.call(ctx, "unload-shared", section("id", sharedPrefix+name))
	return err
}

// SA is one IKE SA with its child SAs, as list-sas reports it.
type SA struct {
	Name     string
	State    string // IKE state, e.g. ESTABLISHED
	Remote   string
	Children []ChildSA
}

// ChildSA is one child SA.
type ChildSA struct {
	Name              string
	State             string // e.g. INSTALLED
	BytesIn, BytesOut uint64
}

// ListSAs lists the IKE SAs. govici's streaming call loses events when many
// arrive at once, so a separate session subscribes to list-sa with a large
// buffer, issues a plain call and drains what arrived (see lab-facts).
func (c *Charon) ListSAs(ctx context.Context) ([]SA, error) {
	s, err := vici.NewSession(vici.WithSocketPath(c.socket))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	events := make(chan vici.Event, 1024)
	s.NotifyEvents(events)
	defer s.StopEvents(events)
	if err := s.Subscribe("list-sa"); err != nil {
		return nil, fmt.Errorf("vici subscribe list-sa: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
	}
	if _, err := s.Call(ctx, "list-sas", vici.NewMessage()); err != nil {
		return nil, fmt.Errorf("vici list-sas: %w", err)
	}
	// The events were read before the answer, but govici hands them to
	// the channel from another goroutine: collect until the channel has
	// been quiet for a moment (bounded).
	var out []SA
	quiet := time.NewTimer(100 * time.Millisecond)
	defer quiet.Stop()
	limit := time.After(2 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Name == "list-sa" && ev.Message != nil {
				out = append(out, parseSAs(ev.Message)...)
			}
			quiet.Reset(100 * time.Millisecond)
		case <-quiet.C:
			sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
			return out, nil
		case <-limit:
			sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
			return out, nil
		}
	}
}

func str(m *vici.Message, key string) string {
	if v, ok := m.Get(key).(string); ok {
		return v
	}
	return ""
}

func parseSAs(m *vici.Message) []SA {
	var out []SA
	for _, name := range m.Keys() {
		ike, ok := m.Get(name).(*vici.Message)
		if !ok {
			continue
		}
		sa := SA{Name: name, State: str(ike, "state"), Remote: str(ike, "remote-host")}
		if children, ok := ike.Get("child-sas").(*vici.Message); ok {
			for _, k := range children.Keys() {
				ch, ok := children.Get(k).(*vici.Message)
				if !ok {
					continue
				}
				in, _ := strconv.ParseUint(str(ch, "bytes-in"), 10, 64)
				outB, _ := strconv.ParseUint(str(ch, "bytes-out"), 10, 64)
				sa.Children = append(sa.Children, ChildSA{Name: str(ch, "name"), State: str(ch, "state"), BytesIn: in, BytesOut: outB})
			}
		}
		out = append(out, sa)
	}
	return out
}
