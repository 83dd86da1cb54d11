package core

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/dynfw"
)

// NAT of the tunnel networks (servers with "nat": true): one masquerade
// rule per such server in the gateway's table (dynfw.NAT), brought in line
// with the store at start and after every server change. The core never
// changes host sysctls: it warns when IP forwarding is off.

// ipForwardSysctl is net.ipv4.ip_forward.
const ipForwardSysctl = "/proc/sys/net/ipv4/ip_forward"

// natTimeout bounds one NAT reconcile (a listing and at most one batch).
const natTimeout = 10 * time.Second

// natRules lists the NAT rule of every server this gateway runs
// (placement.go) with NAT on.
func (s *Service) natRules(ctx context.Context) ([]dynfw.NATRule, error) {
	servers, err := s.ownServers(ctx)
	if err != nil {
		return nil, err
	}
	var out []dynfw.NATRule
	for _, srv := range servers {
		if !srv.NAT {
			continue
		}
		network, err := netip.ParsePrefix(srv.Network)
		if err != nil {
			return nil, fmt.Errorf("server %s: network %q: %w", srv.ID, srv.Network, err)
		}
		out = append(out, dynfw.NATRule{ServerID: srv.ID, Network: network, Device: vpn.DeviceName(srv.ID)})
	}
	return out, nil
}

// reconcileNAT makes the kernel's NAT rules match the servers (nothing
// without a firewall). Reconciles run one at a time, each reading the
// store under the lock: of two concurrent server changes, the later
// reconcile reads both, so an older view never lands last.
func (s *Service) reconcileNAT(ctx context.Context) error {
	if s.nat == nil {
		return nil
	}
	s.natMu.Lock()
	defer s.natMu.Unlock()
	want, err := s.natRules(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, natTimeout)
	defer cancel()
	_, _, err = s.nat.SyncNAT(ctx, want)
	return err
}

// startNAT reconciles the NAT rules when the core starts, and says so when
// servers want NAT that a disabled firewall cannot give them.
func (s *Service) startNAT(ctx context.Context) error {
	if s.nat == nil {
		want, err := s.natRules(ctx)
		if err != nil {
			return err
		}
		if len(want) > 0 {
			s.log.Warn("servers have NAT on, but the firewall is disabled (firewall.enabled = false): their tunnel networks are not masqueraded",
				"servers", len(want))
		}
		return nil
	}
	return s.reconcileNAT(ctx)
}

// warnIfNotForwarding logs a warning when IP forwarding is off as a NAT
// server starts: its clients' traffic then goes nowhere past the gateway.
// The core does not turn it on (it is the host's setting, not the
// gateway's): the administrator does (docs/vpn.md).
func (s *Service) warnIfNotForwarding(serverID string) {
	path := s.ipForward
	if path == "" {
		path = ipForwardSysctl
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		s.log.Warn("cannot read net.ipv4.ip_forward for a NAT server; NAT needs it to be 1",
			"server_id", serverID, "sysctl", "net.ipv4.ip_forward", "err", err)
		return
	}
	if strings.TrimSpace(string(raw)) == "0" {
		s.log.Warn("net.ipv4.ip_forward is 0: this NAT server's clients reach nothing beyond the gateway until it is 1; "+
			"portcullis does not change host sysctls: set net.ipv4.ip_forward = 1 in /etc/sysctl.d/ (sysctl --system)",
			"server_id", serverID, "sysctl", "net.ipv4.ip_forward")
	}
}
