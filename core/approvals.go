package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/store"
)

func (s *Service) approve(c *rpc.Call, req *api.ApprovalRequest) (*api.ApprovalResponse, error) {
	return s.approval(c, req, false)
}

func (s *Service) approveWait(c *rpc.Call, req *api.ApprovalRequest) (*api.ApprovalResponse, error) {
	return s.approval(c, req, true)
}

// approval hands a client's signed, sealed request to the approver, which
// opens the server's port for the client on success.
func (s *Service) approval(c *rpc.Call, body *api.ApprovalRequest, wait bool) (*api.ApprovalResponse, error) {
	if s.approver == nil {
		return nil, &rpc.Error{Status: http.StatusServiceUnavailable, Code: "approval_unavailable", Message: "approvals are not configured"}
	}
	hdr, err := api.ParseApprovalHeaders(c.Header)
	if err != nil {
		return nil, rpc.HeaderError("auth_header", err)
	}
	req := &dynfw.Request{Wait: wait, Path: c.Route.BuildPath(c.Params), OrgID: c.Params["org_id"],
		UserID: c.Params["user_id"], ServerID: c.Params["server_id"], Headers: hdr, Body: body}
	if ap, err := netip.ParseAddrPort(c.Peer); err == nil {
		req.Peer = ap.Addr().Unmap()
	}
	if f := c.Header.Get(api.HeaderForwarded); f != "" {
		if req.Forwarded, err = api.ParseForwarded(f); err != nil {
			return nil, rpc.BadRequest(api.HeaderForwarded, err.Error())
		}
	}
	out, err := s.approver.Approve(c.Ctx, req)
	var ref *dynfw.Refusal
	if errors.As(err, &ref) {
		// Attrs, not key-value pairs boxed into any: under a flood of
		// replayed or forged requests this line is the common answer.
		s.log.LogAttrs(context.Background(), slog.LevelInfo, "approval refused", slog.Int("status", ref.Status),
			slog.String("code", ref.Code), slog.String("org_id", req.OrgID), slog.String("user_id", req.UserID),
			slog.String("server_id", req.ServerID), slog.Any("peer", req.Peer), slog.String("request_id", c.RequestID))
		return nil, &rpc.Error{Status: ref.Status, Code: ref.Code, Message: ref.Message}
	}
	if err != nil {
		return nil, err
	}
	return out.Response, nil
}

// guardedPorts lists (protocol, port) of every server this gateway runs
// (placement.go) with the dynamic firewall on, but never one of the gateway's own ports (nor TCP 22 unless
// allowed): a server stored before those were refused is left unguarded,
// loudly, rather than locking everyone out of the gateway.
func (s *Service) guardedPorts(ctx context.Context) ([]dynfw.ProtoPort, error) {
	servers, err := s.ownServers(ctx)
	if err != nil {
		return nil, err
	}
	var out []dynfw.ProtoPort
	for i, srv := range servers {
		if !srv.DynamicFirewall {
			continue
		}
		if why := s.portConflict(&servers[i]); why != "" {
			s.log.Error("server's port left unguarded: change the server's port", "server_id", srv.ID,
				"protocol", srv.Protocol, "port", srv.Port, "why", why)
			continue
		}
		out = append(out, dynfw.ProtoPort{Proto: srv.Protocol, Port: uint16(srv.Port)})
	}
	return out, nil
}

// listApprovals answers approval.list: the live approvals with their user's
// and server's names and the seconds they have left, never their tokens.
func (s *Service) listApprovals(c *rpc.Call, _ *api.NoBody) (*api.ApprovalList, error) {
	out := &api.ApprovalList{Approvals: []api.ApprovalInfo{}}
	if s.approver == nil {
		return out, nil
	}
	live, now, err := s.approver.Live(c.Ctx)
	if err != nil {
		return nil, err
	}
	err = s.st.View(c.Ctx, func(tx store.Tx) error {
		for _, ap := range live {
			info := api.ApprovalInfo{OrgID: ap.OrgID, UserID: ap.UserID, ServerID: ap.ServerID, Protocol: ap.Protocol,
				Port: ap.Port, Addresses: make([]string, 0, len(ap.Addrs)), CreatedAt: ap.Created, ExpiresAt: ap.Expires,
				SecondsLeft: int((ap.Expires.Sub(now) + time.Second - 1) / time.Second), Used: ap.Used}
			for _, ad := range ap.Addrs {
				info.Addresses = append(info.Addresses, ad.String())
			}
			if u, err := store.GetJSON[userRecord](tx, store.BucketUsers, userKey(ap.OrgID, ap.UserID)); err == nil {
				info.UserName = u.Name
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if srv, err := store.GetJSON[serverRecord](tx, store.BucketServers, ap.ServerID); err == nil {
				info.ServerName = srv.Name
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			out.Approvals = append(out.Approvals, info)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("approval names: %w", err)
	}
	return out, nil
}
