package agent

import (
	"context"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// Charon is what the agent needs from strongSwan's charon. Every call
// takes a context with a deadline. VICI is the real implementation.
type Charon interface {
	// LoadShared loads (or replaces) the connection's pre-shared key.
	LoadShared(ctx context.Context, c Conn) error
	// LoadConn loads (or replaces) the connection.
	LoadConn(ctx context.Context, c Conn) error
	// Initiate starts the connection's child SA without waiting for it.
	Initiate(ctx context.Context, name string) error
	// Terminate closes the connection's IKE SA; none being up is no error.
	Terminate(ctx context.Context, name string) error
	// UnloadConn unloads the connection.
	UnloadConn(ctx context.Context, name string) error
	// UnloadShared unloads the connection's pre-shared key.
	UnloadShared(ctx context.Context, name string) error
	// List reports the IKE SAs and the loaded connections.
	List(ctx context.Context) (Listing, error)
}

// Conn is one connection the state asks for: the peer, under the link's
// proposals, from this host's address.
type Conn struct {
	Peer     api.LinkPeer
	IKE, ESP []string
	// Force: only the link's proposals, without charon's defaults.
	Force bool
	// Local is this host's address (IKE source and identity).
	Local string
}

// Name is the connection's name, <link>-<location>-<peer>, which is also
// its child SA's.
func (c Conn) Name() string { return c.Peer.Name }

func connFor(st *api.LinkState, p *api.LinkPeer, local string) Conn {
	return Conn{Peer: *p, IKE: st.IKE, ESP: st.ESP, Force: st.Force, Local: local}
}

// Listing is what charon reports.
type Listing struct {
	SAs []SA
	// Conns are the names of the loaded connections.
	Conns []string
	// Loaded are the loaded connections' traffic selectors as charon has
	// them (list-conns), by name: what the diagnosis tells of this side,
	// whoever loaded it.
	Loaded map[string]LoadedConn
}

// LoadedConn is what charon has loaded of a connection.
type LoadedConn struct {
	LocalTS, RemoteTS []string
}

// SA is one IKE SA with its child SAs, as list-sas reports it.
type SA struct {
	Name     string
	State    string // IKE state, e.g. ESTABLISHED
	Remote   string
	Children []ChildSA
	// UniqueID is charon's ID of the IKE SA.
	UniqueID string
	// Established is how long ago it was established; Rekey and Reauth
	// how long until it is rekeyed or reauthenticated (0: not scheduled).
	Established, Rekey, Reauth time.Duration
	// Proposal is the negotiated IKE proposal, e.g.
	// AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519.
	Proposal string
}

// ChildSA is one child SA.
type ChildSA struct {
	Name                  string
	State                 string // e.g. INSTALLED
	BytesIn, BytesOut     uint64
	PacketsIn, PacketsOut uint64
	// Proposal is the negotiated ESP proposal, e.g. AES_GCM_16-128/CURVE_25519.
	Proposal          string
	LocalTS, RemoteTS []string
}

// installedSet returns the connections with an installed child SA.
func installedSet(sas []SA) map[string]bool {
	up := map[string]bool{}
	for _, sa := range sas {
		for _, ch := range sa.Children {
			if ch.State == "INSTALLED" {
				up[sa.Name] = true
			}
		}
	}
	return up
}

// Status returns the IKE SAs charon reports (portcullis-link status).
func Status(ctx context.Context, socket string) ([]SA, error) {
	v := NewVICI(socket)
	l, err := v.List(ctx)
	if cerr := v.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return l.SAs, nil
}
