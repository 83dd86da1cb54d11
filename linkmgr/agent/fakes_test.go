package agent

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"github.com/portcullis-gw/portcullis/api"
)

// calls is the ordered log the fakes share, so that a test sees the order
// across charon, the firewall and the routes.
type calls struct {
	mu   sync.Mutex
	log  []string
	fail map[string]error // a call (as logged) → its error, until removed
}

func (c *calls) do(call string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = append(c.log, call)
	return c.fail[call]
}

func (c *calls) failOn(call string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail == nil {
		c.fail = map[string]error{}
	}
	c.fail[call] = err
}

func (c *calls) heal(call string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.fail, call)
}

// take returns the calls so far and starts a new log.
func (c *calls) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.log
	c.log = nil
	return out
}

// fakeCharon records calls and keeps what is loaded, like charon.
type fakeCharon struct {
	*calls
	mu      sync.Mutex // guards what follows
	sas     []SA
	listErr error
	conns   map[string]Conn
}

func newFakeCharon(c *calls) *fakeCharon { return &fakeCharon{calls: c, conns: map[string]Conn{}} }

func (f *fakeCharon) LoadShared(_ context.Context, c Conn) error {
	return f.do("load-shared " + c.Name() + " psk " + c.Peer.PSK)
}

func (f *fakeCharon) LoadConn(_ context.Context, c Conn) error {
	if err := f.do("load-conn " + c.Name() + " remote " + c.Peer.RemoteAddress); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns[c.Name()] = c
	return nil
}

func (f *fakeCharon) Initiate(_ context.Context, name string) error { return f.do("initiate " + name) }
func (f *fakeCharon) Terminate(_ context.Context, name string) error {
	return f.do("terminate " + name)
}

func (f *fakeCharon) UnloadConn(_ context.Context, name string) error {
	if err := f.do("unload-conn " + name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, name)
	return nil
}

func (f *fakeCharon) UnloadShared(_ context.Context, name string) error {
	return f.do("unload-shared " + name)
}

func (f *fakeCharon) List(context.Context) (Listing, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listErr != nil {
		return Listing{}, f.listErr
	}
	return Listing{SAs: f.sas, Conns: sortedKeys(f.conns)}, nil
}

func (f *fakeCharon) setListErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listErr = err
}

// up makes charon report an installed child SA for each name.
func (f *fakeCharon) up(names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sas = nil
	for _, n := range names {
		f.sas = append(f.sas, SA{Name: n, State: "ESTABLISHED", Children: []ChildSA{{Name: n, State: "INSTALLED", BytesIn: 1}}})
	}
}

type fakeFirewall struct{ *calls }

func (f fakeFirewall) Set(_ context.Context, hosts []netip.Addr, port uint16) error {
	return f.do(fmt.Sprintf("firewall %v %d", hosts, port))
}

type fakeRoutes struct{ *calls }

func (f fakeRoutes) Sync(_ context.Context, subnets []netip.Prefix) error {
	return f.do(fmt.Sprintf("routes %v", subnets))
}

func (f fakeRoutes) RemoveAll(context.Context) error { return f.do("routes remove-all") }

// fakeGateway answers every report with its current state.
type fakeGateway struct {
	*calls
	mu      sync.Mutex
	state   *api.LinkState
	err     error
	reports []*api.LinkReport
	// hang, when set, makes Report hang, deaf to its context, until it is
	// closed (a stalled call); each hanging call is sent on hung.
	hang chan struct{}
	hung chan struct{}
}

func (g *fakeGateway) Report(_ context.Context, r *api.LinkReport) (*api.LinkState, error) {
	g.mu.Lock()
	hang, hung := g.hang, g.hung
	g.mu.Unlock()
	if hang != nil {
		hung <- struct{}{}
		<-hang
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reports = append(g.reports, r)
	if g.err != nil {
		return nil, g.err
	}
	return g.state, g.do("gateway report")
}

func (g *fakeGateway) Stop(context.Context) error { return g.do("gateway stop") }

func (g *fakeGateway) lastReport() *api.LinkReport {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.reports[len(g.reports)-1]
}

func (g *fakeGateway) set(st *api.LinkState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.state = st
}

func (g *fakeGateway) setErr(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.err = err
}

// stall makes the next reports hang until the returned function is
// called; hung receives once per hanging call.
func (g *fakeGateway) stall() (hung <-chan struct{}, release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hang, g.hung = make(chan struct{}), make(chan struct{}, 16)
	hang := g.hang
	return g.hung, func() {
		g.mu.Lock()
		g.hang = nil
		g.mu.Unlock()
		close(hang)
	}
}
