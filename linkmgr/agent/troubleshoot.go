package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/google/nftables"
	"github.com/strongswan/govici/vici"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/api"
)

// peersFile, in the state directory, holds the peers of the connections
// the agent carried in its last round (ReadPeers), for portcullis-link
// check and connect.
const peersFile = "peers.json"

// PeerInfo is what portcullis-link check needs of one connection: its
// peer's address, the subnets routed to it and the host-check port.
type PeerInfo struct {
	Name          string   `json:"name"`
	RemoteAddress string   `json:"remote_address"`
	RemoteSubnets []string `json:"remote_subnets"`
	CheckPort     int      `json:"check_port"`
}

// savePeers writes the peers file when it changed.
func (a *Agent) savePeers(st *api.LinkState) {
	if a.cfg.StateDir == "" {
		return
	}
	out := []PeerInfo{}
	for _, name := range sortedKeys(a.want) {
		p := a.want[name]
		out = append(out, PeerInfo{Name: name, RemoteAddress: p.RemoteAddress, RemoteSubnets: p.RemoteSubnets, CheckPort: st.CheckPort})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil || string(b) == a.savedPeers {
		return
	}
	if err := writeFileAtomic(filepath.Join(a.cfg.StateDir, peersFile), string(b)+"\n", 0o600); err != nil {
		a.log.Warn("save the peers", "err", err)
		return
	}
	a.savedPeers = string(b)
}

// ReadPeers returns the peers of the connections the agent running with
// the state directory carried in its last round (none when it never ran).
func ReadPeers(stateDir string) ([]PeerInfo, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, peersFile))
	if errors.Is(err, os.ErrNotExist) {
		return []PeerInfo{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read peers: %w", err)
	}
	var out []PeerInfo
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("read peers %s: %w", peersFile, err)
	}
	return out, nil
}

// ConnectionsOf sums charon's IKE SAs per connection name (state,
// counters, proposals, selectors; no reason), sorted by name: the live
// side of portcullis-link status.
func ConnectionsOf(sas []SA) []api.LinkConnection {
	byName := map[string][]SA{}
	for _, sa := range sas {
		byName[sa.Name] = append(byName[sa.Name], sa)
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]api.LinkConnection, 0, len(names))
	for _, n := range names {
		c, _, _ := connectionOf(n, byName[n])
		out = append(out, c)
	}
	return out
}

// InitiateWait initiates the connection name and waits up to timeout for
// charon's answer: nil once its child SA is up, charon's error when
// establishing it failed (portcullis-link connect). ctx must outlast
// timeout.
func (v *VICI) InitiateWait(ctx context.Context, name string, timeout time.Duration) error {
	return v.command(ctx, "initiate", func() (*vici.Message, error) { return initiateWaitMessage(name, timeout) })
}

// TerminateWait terminates the connection name (its IKE SA and children)
// and waits up to timeout for charon's answer; no SA to terminate is not
// an error.
func (v *VICI) TerminateWait(ctx context.Context, name string, timeout time.Duration) error {
	err := v.command(ctx, "terminate", func() (*vici.Message, error) { return terminateWaitMessage(name, timeout) })
	var ce *CommandError
	if errors.As(err, &ce) && ce.Msg == errmsgNoSAs {
		return nil
	}
	return err
}

func initiateWaitMessage(name string, timeout time.Duration) (*vici.Message, error) {
	return newMsg().str("child", name).str("ike", name).str("timeout", strconv.FormatInt(timeout.Milliseconds(), 10)).done()
}

func terminateWaitMessage(name string, timeout time.Duration) (*vici.Message, error) {
	return newMsg().str("ike", name).str("force", "yes").str("timeout", strconv.FormatInt(timeout.Milliseconds(), 10)).done()
}

// TunnelSupport probes whether the kernel can create XFRM interfaces and
// VTIs by creating a test device of each kind and deleting it at once:
// nil when it can, an error wrapping ErrKernelFeature naming the missing
// option when it cannot, another error when the probe itself failed.
func TunnelSupport() (xfrm, vti error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE) // route netlink only: no XFRM or netfilter socket
	if err != nil {
		return err, err
	}
	defer h.Delete()
	probe := func(l netlink.Link, create func() error) error {
		if err := create(); err != nil {
			return err
		}
		return h.LinkDel(l)
	}
	r := &NetlinkRoutes{h: h}
	xi := &netlink.Xfrmi{LinkAttrs: netlink.LinkAttrs{Name: "pclprobe-xfrm"}, Ifid: 0xfffe}
	xfrm = probe(xi, func() error { return r.CreateXFRM(xi.Name, xi.Ifid) })
	lo, re := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	vt := &netlink.Vti{LinkAttrs: netlink.LinkAttrs{Name: "pclprobe-vti"}}
	vti = probe(vt, func() error { return r.CreateVTI(vt.Name, lo, re, 0xfffe) })
	return xfrm, vti
}

// FirewallHosts reads the hosts table inet portcullis_link accepts IKE and
// host checks from (read-only); present is false when the table does not
// exist.
func FirewallHosts() (hosts map[netip.Addr]bool, present bool, err error) {
	c, err := nftables.New()
	if err != nil {
		return nil, false, err
	}
	defer c.CloseLasting()
	t, err := c.ListTableOfFamily(FirewallTable, nftables.TableFamilyINet)
	if err != nil {
		return nil, false, nil
	}
	hosts = map[netip.Addr]bool{}
	for _, name := range []string{"hosts4", "hosts6"} {
		s, err := c.GetSetByName(t, name)
		if err != nil {
			return nil, true, fmt.Errorf("table inet %s: set %s: %w", FirewallTable, name, err)
		}
		els, err := c.GetSetElements(s)
		if err != nil {
			return nil, true, fmt.Errorf("table inet %s: set %s: %w", FirewallTable, name, err)
		}
		for _, e := range els {
			if a, ok := netip.AddrFromSlice(e.Key); ok {
				hosts[a] = true
			}
		}
	}
	return hosts, true, nil
}

// DropChain is a base chain on the input hook whose policy drops.
type DropChain struct{ Family, Table, Chain string }

// InputDropChains lists the base chains on the input hook (families inet,
// ip and ip6) whose policy is drop, other than portcullis_link's (read-only).
func InputDropChains() ([]DropChain, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	defer c.CloseLasting()
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list nftables chains: %w", err)
	}
	fam := map[nftables.TableFamily]string{nftables.TableFamilyINet: "inet", nftables.TableFamilyIPv4: "ip", nftables.TableFamilyIPv6: "ip6"}
	var out []DropChain
	for _, ch := range chains {
		f, ok := fam[ch.Table.Family]
		if !ok || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookInput || ch.Policy == nil || *ch.Policy != nftables.ChainPolicyDrop {
			continue
		}
		if ch.Table.Name == FirewallTable && ch.Table.Family == nftables.TableFamilyINet {
			continue
		}
		out = append(out, DropChain{Family: f, Table: ch.Table.Name, Chain: ch.Name})
	}
	return out, nil
}
