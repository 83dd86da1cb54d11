package agent

import (
	"fmt"

	"github.com/strongswan/govici/vici"

	"github.com/portcullis-gw/portcullis/api"
)

// Everything the agent loads into charon is named with its connection
// name (<link>-<location>-<peer>) and its shared keys with this prefix, so
// that it can be listed and removed.
const sharedPrefix = "portcullis-"

// msg builds a VICI message key by key, in order (not from Go maps, whose
// order is random, nor from structs, whose zero values would all be sent).
// The first error sticks and is returned by done.
type msg struct {
	m   *vici.Message
	err error
}

func newMsg() *msg { return &msg{m: vici.NewMessage()} }

func (b *msg) set(key string, value any) *msg {
	if b.err == nil {
		if err := b.m.Set(key, value); err != nil {
			b.err = fmt.Errorf("vici message key %s: %w", key, err)
		}
	}
	return b
}

func (b *msg) str(key, value string) *msg        { return b.set(key, value) }
func (b *msg) list(key string, v ...string) *msg { return b.set(key, v) }

func (b *msg) sub(key string, s *msg) *msg {
	if b.err == nil && s.err != nil {
		b.err = s.err
		return b
	}
	return b.set(key, s.m)
}

func (b *msg) done() (*vici.Message, error) {
	if b.err != nil {
		return nil, b.err
	}
	return b.m, nil
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
func SharedMessage(p *api.LinkPeer, local string) (*vici.Message, error) {
	return newMsg().
		str("id", sharedPrefix+p.Name).
		str("type", "IKE").
		str("data", p.PSK).
		list("owners", local, p.RemoteAddress).
		done()
}

// ConnMessage is the load-conn message of one peer connection: IKEv2 with
// PSK, dead peer detection every second, retries for ever, the child
// started at once and restarted when it dies or is closed.
func ConnMessage(st *api.LinkState, p *api.LinkPeer, local string) (*vici.Message, error) {
	return connMessage(connFor(st, p, local))
}

func connMessage(c Conn) (*vici.Message, error) {
	p := &c.Peer
	child := newMsg().
		list("local_ts", p.LocalSubnets...).
		list("remote_ts", p.RemoteSubnets...).
		list("esp_proposals", proposals(c.ESP, c.Force)...).
		str("start_action", "start").
		str("dpd_action", "restart").
		str("close_action", "restart")
	conn := newMsg().
		str("version", "2").
		list("local_addrs", c.Local).
		list("remote_addrs", p.RemoteAddress).
		list("proposals", proposals(c.IKE, c.Force)...).
		str("dpd_delay", "1s").
		str("keyingtries", "0").
		sub("local", newMsg().str("auth", "psk").str("id", c.Local)).
		sub("remote", newMsg().str("auth", "psk").str("id", p.RemoteAddress)).
		sub("children", newMsg().sub(p.Name, child))
	return newMsg().sub(p.Name, conn).done()
}

func initiateMessage(name string) (*vici.Message, error) {
	return newMsg().str("child", name).str("ike", name).str("timeout", "-1").done()
}

func terminateMessage(name string) (*vici.Message, error) {
	return newMsg().str("ike", name).str("force", "yes").str("timeout", "-1").done()
}

func unloadConnMessage(name string) (*vici.Message, error) {
	return newMsg().str("name", name).done()
}

func unloadSharedMessage(name string) (*vici.Message, error) {
	return newMsg().str("id", sharedPrefix+name).done()
}
