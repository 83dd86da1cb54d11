package core

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// directory implements dynfw.Directory on the store.
type directory struct {
	st   store.Store
	keys *keyCache
	// users and servers keep the records an approval reads decoded
	// (recordCache: checked against the stored bytes on every read).
	users   *recordCache[userRecord]
	servers *recordCache[serverRecord]
}

// boxSecret is the part of serverSecrets an approval needs: decoding into
// it leaves the CA and server keys' text alone.
type boxSecret struct {
	BoxPrivateKey []byte `json:"box_private_key"`
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
		user, err := d.users.get(tx, store.BucketUsers, userKey(orgID, userID))
		if errors.Is(err, store.ErrNotFound) {
			return dynfw.ErrUnknownUser
		} else if err != nil {
			return err
		}
		srv, err := d.servers.get(tx, store.BucketServers, serverID)
		if errors.Is(err, store.ErrNotFound) {
			return dynfw.ErrUnknownServer
		} else if err != nil {
			return err
		}
		sec, err := store.GetJSON[boxSecret](tx, store.BucketSecrets, serverSecretKey(serverID))
		if err != nil {
			return fmt.Errorf("server %s secrets: %w", serverID, err)
		}
		sub.UserDisabled = user.Disabled
		sub.Attached = slices.Contains(srv.Organizations, orgID)
		sub.DynamicFirewall, sub.Protocol, sub.Port, sub.Hosts = srv.DynamicFirewall, srv.Protocol, srv.Port, slices.Clone(srv.Hosts)
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
