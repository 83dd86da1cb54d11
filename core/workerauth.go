package core

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"math/big"
	"net/netip"
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/api/approval"
	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// credentialChecker uses a "$f$" OpenVPN credential: the firewall token it
// carries must be valid, unused, issued to that user for that server, and
// its approval must have opened addr. It is marked used.
type credentialChecker interface {
	UseCredential(ctx context.Context, serverID, commonName, username, password string, addr netip.Addr) (*dynfw.Approval, error)
}

// userRevoker takes away what the firewall still holds for a user (its
// live approvals, their allow elements).
type userRevoker interface {
	RevokeUser(ctx context.Context, userID string) error
}

// orgRevoker is a userRevoker that also takes away, in one go, what the
// firewall holds for an organization's users (the approver: one scan of
// the approvals rather than one per user). revokeOrgFirewall falls back to
// RevokeUser per user for a userRevoker without it.
type orgRevoker interface {
	RevokeOrg(ctx context.Context, orgID string) error
}

// approverCredentials is the one adapter between the workers and
// dynfw.Approver's credential check.
type approverCredentials struct{ a *dynfw.Approver }

func (c approverCredentials) UseCredential(ctx context.Context, serverID, commonName, username, password string, addr netip.Addr) (*dynfw.Approval, error) {
	return c.a.UseCredential(ctx, dynfw.Credential{ServerID: serverID, UserID: commonName,
		Username: username, Password: password, Addr: addr})
}

// approverRevoker adapts dynfw.Approver to userRevoker.
type approverRevoker struct{ a *dynfw.Approver }

func (r approverRevoker) RevokeUser(ctx context.Context, userID string) error {
	_, err := r.a.RevokeUser(ctx, userID)
	return err
}

func (r approverRevoker) RevokeOrg(ctx context.Context, orgID string) error {
	_, err := r.a.RevokeOrg(ctx, orgID)
	return err
}

// noRevoker stands in when the core runs without approvals.
type noRevoker struct{}

func (noRevoker) RevokeUser(context.Context, string) error { return nil }
func (noRevoker) RevokeOrg(context.Context, string) error  { return nil }

// workerAuth is the core's vpn.Decider: every connect and re-authentication
// of every worker is decided here.
type workerAuth struct {
	st    store.Store
	creds credentialChecker // nil: approvals are off, dynamic-firewall servers admit nobody
	log   *slog.Logger
}

func newWorkerAuth(st store.Store, creds credentialChecker, log *slog.Logger) *workerAuth {
	return &workerAuth{st: st, creds: creds, log: logging.OrDiscard(log)}
}

// Decide admits a client when its certificate names (CN, O) an existing,
// enabled user of an organization attached to the server, its serial is
// the one the user holds for that server, and, on a dynamic-firewall
// server, its password is a "$f$" credential whose firewall token is valid,
// unused, bound to that user and server, and whose approval opened the
// client's address. A re-authentication is decided the same way, except
// that the credential must carry the very token its connect used (which is
// used by then).
func (a *workerAuth) Decide(ctx context.Context, r *vpn.AuthRequest) vpn.Decision {
	var (
		user *userRecord
		srv  *serverRecord
		box  [32]byte
	)
	err := a.st.View(ctx, func(tx store.Tx) error {
		var err error
		if srv, err = store.GetJSON[serverRecord](tx, store.BucketServers, r.ServerID); err != nil {
			return err
		}
		if user, err = store.GetJSON[userRecord](tx, store.BucketUsers, userKey(r.Org, r.CommonName)); errors.Is(err, store.ErrNotFound) {
			user = nil
		} else if err != nil {
			return err
		}
		if srv.DynamicFirewall && r.Reauth {
			sec, err := store.GetJSON[serverSecrets](tx, store.BucketSecrets, serverSecretKey(r.ServerID))
			if err != nil {
				return err
			}
			copy(box[:], sec.BoxPrivateKey)
		}
		return nil
	})
	if err != nil {
		a.log.Error("vpn decision: store", "server_id", r.ServerID, "err", err)
		return vpn.Deny("the core could not read the user or server")
	}
	if why := standing(user, srv, r.Org, r.Serial); why != "" {
		return vpn.Deny("%s", why)
	}
	if r.Serial == nil {
		return vpn.Deny("%s", reasonNotCurrent)
	}
	allow := vpn.Decision{Allow: true, UserID: user.ID, OrgID: user.OrgID}
	if !srv.DynamicFirewall {
		return allow
	}
	if !strings.HasPrefix(r.Password, "$f$") {
		return vpn.Deny("dynamic firewall: the password is not a firewall credential")
	}
	if r.Reauth && r.Grant != nil {
		token, err := approval.OpenCredential(r.Username, r.Password, &box)
		token, _, _ = strings.Cut(token, ":")
		if err != nil || subtle.ConstantTimeCompare(grantOf(token), r.Grant) != 1 {
			return vpn.Deny("re-authentication with another firewall credential than the connect's")
		}
		allow.Grant = r.Grant
		return allow
	}
	if a.creds == nil {
		return vpn.Deny("dynamic firewall: approvals are not configured")
	}
	ap, err := a.creds.UseCredential(ctx, r.ServerID, r.CommonName, r.Username, r.Password, r.Addr)
	if err != nil {
		return vpn.Deny("%s", credentialReason(err, a.log, r))
	}
	if ap.OrgID != r.Org {
		return vpn.Deny("the firewall token was issued to another organization")
	}
	allow.Grant = grantOf(ap.Token)
	return allow
}

// reasonNotCurrent is why a certificate other than the user's current one
// for the server is refused.
const reasonNotCurrent = "the certificate is not the user's current one for this server (superseded or revoked)"

// standing says why the store no longer lets a user of orgID be connected
// to srv with the certificate of serial, or "" when it does: the user
// exists (nil: not in orgID), its organization is attached to the server,
// it is enabled and holds a certificate for the server with that serial
// (a nil serial is not checked: the session's is not known). Decide and
// the pass that ends revoked sessions (sessionsweep.go) both use it.
func standing(user *userRecord, srv *serverRecord, orgID string, serial *big.Int) string {
	switch {
	case user == nil:
		return "the certificate names no user of its organization"
	case !slices.Contains(srv.Organizations, orgID):
		return "the user's organization is not attached to this server"
	case user.Disabled:
		return "the user is disabled"
	}
	p := user.Profiles[srv.ID]
	if p == nil {
		return "the user holds no certificate for this server"
	}
	if serial == nil {
		return ""
	}
	if cur, ok := new(big.Int).SetString(p.CertSerial, 16); !ok || cur.Cmp(serial) != 0 {
		return reasonNotCurrent
	}
	return ""
}

// grantOf is what a session keeps of its firewall token: a hash, so the
// token is not held in memory for the session's life.
func grantOf(token string) []byte {
	h := sha256.Sum256([]byte("portcullis vpn grant\x00" + token))
	return h[:]
}

// credentialReason words a refused credential; an unexpected error is
// logged (it never holds the password) and worded generically.
func credentialReason(err error, log *slog.Logger, r *vpn.AuthRequest) string {
	for _, k := range []struct {
		err    error
		reason string
	}{
		{dynfw.ErrTokenUsed, "the firewall token was used before"},
		{dynfw.ErrTokenExpired, "the firewall token expired"},
		{dynfw.ErrTokenUnknown, "the firewall token is unknown"},
		{dynfw.ErrTokenOwner, "the firewall token was issued to another user or server"},
		{dynfw.ErrCredential, "the firewall credential does not open"},
		{dynfw.ErrTokenAddress, "the firewall token's approval did not open the client's address"},
	} {
		if errors.Is(err, k.err) {
			return k.reason
		}
	}
	log.Error("vpn decision: credential check", "req", r, "err", err)
	return "the firewall credential could not be checked"
}
