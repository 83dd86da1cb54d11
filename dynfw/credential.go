package dynfw

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/api/approval"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// Credential errors, checked with errors.Is by the OpenVPN worker. None of
// them carries the token or the credential.
var (
	ErrCredential   = errors.New("bad firewall credential")
	ErrTokenUnknown = errors.New("firewall token unknown")
	ErrTokenExpired = errors.New("firewall token expired")
	ErrTokenUsed    = errors.New("firewall token already used")
	ErrTokenOwner   = errors.New("firewall token belongs to another user or server")
	ErrTokenAddress = errors.New("firewall token was not approved for this address")
)

// tokenLen is the length of a firewall token (32 alphanumerics).
const tokenLen = 32

// Credential is what an OpenVPN worker hands over for one client connect.
type Credential struct {
	// ServerID is the server the client connects to.
	ServerID string
	// UserID is the user the client certificate names (its CN).
	UserID string
	// Username and Password are the OpenVPN credential: the ephemeral
	// public key and "$f$" + the boxed firewall token.
	Username, Password string
	// Addr is the client's real address (OpenVPN's untrusted_ip).
	Addr netip.Addr
}

// UseCredential decides one connect by its "$f$" credential and uses the
// token up: the token decrypts with the server's box key, is known,
// unexpired and unused, was issued to c.UserID for c.ServerID, and its
// approval opened c.Addr. On success the approval is marked used (a second
// connect with the same token is refused) and returned. A refused
// credential does not use the token up.
func (a *Approver) UseCredential(ctx context.Context, c Credential) (*Approval, error) {
	ap, err := a.useCredential(ctx, c)
	if err != nil {
		a.log.Warn("firewall credential refused", "server_id", c.ServerID, "user_id", c.UserID,
			"addr", c.Addr.String(), "err", err)
		return nil, err
	}
	a.log.Info("firewall credential used", "server_id", c.ServerID, "user_id", c.UserID, "addr", c.Addr.String())
	return ap, nil
}

func (a *Approver) useCredential(ctx context.Context, c Credential) (*Approval, error) {
	if !c.Addr.IsValid() {
		return nil, fmt.Errorf("%w: no client address", ErrTokenAddress)
	}
	addr := c.Addr.Unmap().WithZone("")
	key, err := a.dir.ServerBoxKey(ctx, c.ServerID)
	if err != nil {
		return nil, fmt.Errorf("server box key: %w", err)
	}
	token, err := openToken(c.Username, c.Password, key)
	if err != nil {
		return nil, err
	}
	var ap *Approval
	err = a.st.Update(ctx, func(tx store.Tx) error {
		var err error
		ap, err = store.GetJSON[Approval](tx, store.BucketApprovals, token)
		if errors.Is(err, store.ErrNotFound) {
			return ErrTokenUnknown
		} else if err != nil {
			return fmt.Errorf("read approval: %w", err)
		}
		switch {
		case !a.cfg.Now().Before(ap.Expires):
			return ErrTokenExpired
		case ap.Used:
			return ErrTokenUsed
		case ap.UserID != c.UserID:
			return fmt.Errorf("%w: issued to another user", ErrTokenOwner)
		case ap.ServerID != c.ServerID:
			return fmt.Errorf("%w: issued for another server", ErrTokenOwner)
		case !slices.Contains(ap.Addrs, addr):
			return ErrTokenAddress
		}
		ap.Used = true
		// Rewritten with its remaining lifetime: a plain put would drop
		// the etcd lease and keep the spent approval past its expiry.
		return store.PutJSONTTL(tx, store.BucketApprovals, token, ap, ap.Expires.Sub(a.cfg.Now()))
	})
	if err != nil {
		return nil, err
	}
	return ap, nil
}

// openToken recovers the firewall token from a "$f$" credential. An SSO
// credential carries "<firewall token>:<sso token>"; only the first part
// is the key of an approval, and it must look like one before the store is
// asked.
func openToken(username, password string, key *[32]byte) (string, error) {
	plain, err := approval.OpenCredential(username, password, key)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrCredential, err)
	}
	token, _, _ := strings.Cut(plain, ":")
	if !isToken(token) {
		return "", fmt.Errorf("%w: the token is not %d alphanumerics", ErrCredential, tokenLen)
	}
	return token, nil
}

func isToken(s string) bool {
	if len(s) != tokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}
