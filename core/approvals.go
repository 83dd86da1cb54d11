package core

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// directory implements dynfw.Directory on the store.
type directory struct {
	st   store.Store
	keys *keyCache
}

// keyCache keeps parsed user public keys by their PEM text, so an approval
// does not parse and check a 4096-bit key every time. A new profile has a
// new PEM, so entries never go stale; the cache is emptied when it grows
// past its bound.
type keyCache struct {
	mu sync.Mutex
	m  map[string]*rsa.PublicKey
}

const keyCacheMax = 100_000

func (c *keyCache) get(p string) (*rsa.PublicKey, error) {
	c.mu.Lock()
	k, ok := c.m[p]
	c.mu.Unlock()
	if ok {
		return k, nil
	}
	k, err := parseRSAPublic(p)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= keyCacheMax {
		c.m = make(map[string]*rsa.PublicKey)
	}
	c.m[p] = k
	c.mu.Unlock()
	return k, nil
}

func (d directory) Subject(ctx context.Context, orgID, userID, serverID string) (*dynfw.Subject, error) {
	var sub dynfw.Subject
	err := d.st.View(ctx, func(tx store.Tx) error {
		if _, err := tx.Get(store.BucketOrgs, orgID); errors.Is(err, store.ErrNotFound) {
			return dynfw.ErrUnknownOrg
		} else if err != nil {
			return err
		}
		user, err := store.GetJSON[userRecord](tx, store.BucketUsers, userKey(orgID, userID))
		if errors.Is(err, store.ErrNotFound) {
			return dynfw.ErrUnknownUser
		} else if err != nil {
			return err
		}
		srv, err := store.GetJSON[serverRecord](tx, store.BucketServers, serverID)
		if errors.Is(err, store.ErrNotFound) {
			return dynfw.ErrUnknownServer
		} else if err != nil {
			return err
		}
		sec, err := store.GetJSON[serverSecrets](tx, store.BucketSecrets, serverSecretKey(serverID))
		if err != nil {
			return fmt.Errorf("server %s secrets: %w", serverID, err)
		}
		sub.UserDisabled = user.Disabled
		sub.Attached = slices.Contains(srv.Organizations, orgID)
		sub.DynamicFirewall, sub.Protocol, sub.Port, sub.Hosts = srv.DynamicFirewall, srv.Protocol, srv.Port, srv.Hosts
		copy(sub.BoxPrivate[:], sec.BoxPrivateKey)
		if p := user.Profiles[serverID]; p != nil {
			entry, err := store.GetJSON[syncEntry](tx, store.BucketSecrets, syncKey(p.SyncToken))
			if err != nil {
				return fmt.Errorf("user %s sync secret: %w", userID, err)
			}
			sub.SyncToken, sub.SyncSecret = p.SyncToken, entry.Secret
			if sub.UserKey, err = d.keys.get(p.PublicKeyPEM); err != nil {
				return fmt.Errorf("user %s public key: %w", userID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &sub, nil
}

func (d directory) ServerBoxKey(ctx context.Context, serverID string) (*[32]byte, error) {
	var key [32]byte
	err := d.st.View(ctx, func(tx store.Tx) error {
		sec, err := store.GetJSON[serverSecrets](tx, store.BucketSecrets, serverSecretKey(serverID))
		if errors.Is(err, store.ErrNotFound) {
			return dynfw.ErrUnknownServer
		} else if err != nil {
			return err
		}
		copy(key[:], sec.BoxPrivateKey)
		return nil
	})
	return &key, err
}

func parseRSAPublic(p string) (*rsa.PublicKey, error) {
	b, _ := pem.Decode([]byte(p))
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("not an RSA key")
	}
	return rk, nil
}

func (s *Service) approve(c *call) (any, error)     { return s.approval(c, false) }
func (s *Service) approveWait(c *call) (any, error) { return s.approval(c, true) }

func (s *Service) approval(c *call, wait bool) (any, error) {
	if s.approver == nil {
		return nil, &apiError{Status: 503, Code: "approval_unavailable", Message: "approvals are not configured"}
	}
	hdr, err := api.ParseApprovalHeaders(c.header)
	if err != nil {
		he := err.(*api.HeaderError)
		return nil, &apiError{Status: he.Status, Code: "auth_header", Message: err.Error(), Field: he.Header}
	}
	req := &dynfw.Request{Wait: wait, Path: c.route.BuildPath(c.params), OrgID: c.params["org_id"],
		UserID: c.params["user_id"], ServerID: c.params["server_id"], Headers: hdr, Body: c.body.(*api.ApprovalRequest)}
	if ap, err := netip.ParseAddrPort(c.peer); err == nil {
		req.Peer = ap.Addr().Unmap()
	}
	if f := c.header.Get(api.HeaderForwarded); f != "" {
		if req.Forwarded, err = api.ParseForwarded(f); err != nil {
			return nil, errBadRequest(api.HeaderForwarded, err.Error())
		}
	}
	out, err := s.approver.Approve(c.ctx, req)
	var ref *dynfw.Refusal
	if errors.As(err, &ref) {
		s.log.Info("approval refused", "status", ref.Status, "code", ref.Code, "org_id", req.OrgID,
			"user_id", req.UserID, "server_id", req.ServerID, "peer", req.Peer, "request_id", c.requestID)
		return nil, &apiError{Status: ref.Status, Code: ref.Code, Message: ref.Message}
	}
	if err != nil {
		return nil, err
	}
	return out.Response, nil
}

// guardedPorts lists (protocol, port) of every server with the dynamic
// firewall on.
func (s *Service) guardedPorts(ctx context.Context) ([]dynfw.ProtoPort, error) {
	var out []dynfw.ProtoPort
	err := s.st.View(ctx, func(tx store.Tx) error {
		servers, err := store.ScanJSON[serverRecord](tx, store.BucketServers, "")
		for _, srv := range servers {
			if srv.DynamicFirewall {
				out = append(out, dynfw.ProtoPort{Proto: srv.Protocol, Port: uint16(srv.Port)})
			}
		}
		return err
	})
	return out, err
}

// syncGuarded brings the guarded set in line with the servers after a
// server change.
func (s *Service) syncGuarded(ctx context.Context) error {
	if s.approver == nil {
		return nil
	}
	pp, err := s.guardedPorts(ctx)
	if err != nil {
		return err
	}
	if err := s.approver.SetGuarded(pp); err != nil {
		s.log.Error("guarded ports not updated", "err", err)
		return &apiError{Status: 500, Code: "firewall", Message: "saved, but the firewall's guarded ports could not be updated"}
	}
	return nil
}
