package core

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"

	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/ascii"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// directory implements dynfw.Directory on the store.
type directory struct {
	st store.Store
	// users and servers keep what an approval needs of each record
	// (recordCache: checked against the stored bytes on every read).
	users   *recordCache[*approvalUser]
	servers *recordCache[*approvalServer]
}

// Cache bounds: entries of about 1 KiB (a user's parsed RSA-4096 key); a
// server's entry holds its record's bytes (about 4 KiB with its
// certificates), compared instead of hashed on every approval.
const (
	userCacheMax   = 20_000
	serverCacheMax = 1_000
)

func newDirectory(st store.Store) directory {
	return directory{st: st,
		users:   newRecordCache(userCacheMax, projectUser),
		servers: newRecordCacheKeeping(serverCacheMax, projectServer)}
}

// approvalUser is what an approval needs of a user record.
type approvalUser struct {
	disabled bool
	profiles map[string]approvalProfile // by server ID
}

type approvalProfile struct {
	syncToken string
	key       *rsa.PublicKey
	keyErr    error // the stored key does not parse
}

func projectUser(raw []byte) (*approvalUser, error) {
	var u struct {
		Disabled bool `json:"disabled"`
		Profiles map[string]*struct {
			PublicKeyPEM string `json:"public_key"`
			SyncToken    string `json:"sync_token"`
		} `json:"profiles"`
	}
	if err := json.Unmarshal(raw, &u); err != nil {
		return nil, err
	}
	out := &approvalUser{disabled: u.Disabled, profiles: make(map[string]approvalProfile, len(u.Profiles))}
	for id, p := range u.Profiles {
		if p == nil {
			continue
		}
		k, err := parseRSAPublic(p.PublicKeyPEM)
		out.profiles[id] = approvalProfile{syncToken: p.SyncToken, key: k, keyErr: err}
	}
	return out, nil
}

// readSyncSecret returns the secret of a stored syncEntry record, read as
// readBoxSecret reads the box key (json.Unmarshal of the small record was
// 0.7 % of the core's CPU in the approval benchmark).
func readSyncSecret(raw []byte) (string, error) {
	if v, ok := flatField(raw, "secret"); ok {
		return string(v), nil
	}
	var e syncEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return "", err
	}
	return e.Secret, nil
}

// approvalServer is what an approval needs of a server record.
type approvalServer struct {
	orgs            []string
	dynamicFirewall bool
	protocol        string
	port            int
	hosts           []string
}

func projectServer(raw []byte) (*approvalServer, error) {
	var s serverRecord
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return &approvalServer{orgs: s.Organizations, dynamicFirewall: s.DynamicFirewall, protocol: s.Protocol,
		port: s.Port, hosts: s.Hosts}, nil
}

// boxSecret is the part of serverSecrets an approval needs: decoding into
// it leaves the CA and server keys' text alone.
type boxSecret struct {
	BoxPrivateKey []byte `json:"box_private_key"`
}

// flatField returns the value of the string field key (lower-case ASCII)
// of a stored record when the record is laid out as encoding/json writes
// the core's flat records: one object of ASCII text with no object inside,
// no \u escape anywhere (a key could be spelled with one), the field
// written "key":"value" after '{' or ',' and followed by ',' or '}', no
// escape in the value, and no other key equal to key in any case
// (encoding/json matches keys regardless of case, and the last wins). A
// key pattern cannot occur inside a string value, where encoding/json
// escapes every quote. Callers decode the record in full otherwise. Only
// the field is read: a record damaged elsewhere but laid out so is not
// noticed here (FuzzReadSecrets).
func flatField(raw []byte, key string) ([]byte, bool) {
	n := len(raw)
	if n < 2 || raw[0] != '{' || raw[n-1] != '}' || bytes.IndexByte(raw[1:], '{') >= 0 || bytes.Contains(raw, []byte(`\u`)) {
		return nil, false
	}
	if !isASCII(raw) {
		return nil, false
	}
	field := `"` + key + `":"`
	i := bytes.Index(raw, []byte(field))
	if i < 1 || (raw[i-1] != '{' && raw[i-1] != ',') {
		return nil, false
	}
	// Every quoted key-long token that folds to key: only the one found.
	for j := bytes.IndexByte(raw, '"'); j >= 0 && j+len(key)+1 < n; {
		if j != i && raw[j+len(key)+1] == '"' && bytes.EqualFold(raw[j+1:j+1+len(key)], []byte(key)) {
			return nil, false
		}
		next := bytes.IndexByte(raw[j+1:], '"')
		if next < 0 {
			break
		}
		j += 1 + next
	}
	rest := raw[i+len(field):]
	k := bytes.IndexByte(rest, '"')
	if k < 0 || k+1 >= len(rest) || bytes.IndexByte(rest[:k], '\\') >= 0 || (rest[k+1] != ',' && rest[k+1] != '}') {
		return nil, false
	}
	return rest[:k], true
}

// isASCII reports whether every byte of b is below utf8.RuneSelf, eight
// bytes at a time (the server secrets record is about 5 KiB: byte by byte
// this was most of flatField's time).
func isASCII(b []byte) bool { return ascii.Prefix(b) == len(b) }

// readBoxSecret puts the box key of a stored serverSecrets record in out.
// The record (about 5 KiB: the CA and server keys' text) is not decoded
// when the key is there as encoding/json writes it (flatField): an
// approval read it whole each time (json.Unmarshal over every byte, 1 % of
// the core's CPU in the approval benchmark). Any other layout is decoded
// in full. As before, a key of another length is copied as far as it goes.
func readBoxSecret(raw []byte, out *[32]byte) error {
	if v, ok := flatField(raw, "box_private_key"); ok && len(v) == base64.StdEncoding.EncodedLen(32) {
		var buf [33]byte // a 32-byte key's base64 (44 characters) decodes to 32
		n, err := base64.StdEncoding.Decode(buf[:], v)
		if err == nil && n == 32 {
			copy(out[:], buf[:n])
		}
		clear(buf[:]) // also what a failed decode left
		if err == nil && n == 32 {
			return nil
		}
	}
	var sec boxSecret
	if err := json.Unmarshal(raw, &sec); err != nil {
		return err
	}
	copy(out[:], sec.BoxPrivateKey)
	clear(sec.BoxPrivateKey)
	return nil
}

func (d directory) Subject(ctx context.Context, orgID, userID, serverID string) (*dynfw.Subject, error) {
	var sub dynfw.Subject
	err := d.st.View(ctx, func(tx store.Tx) error {
		// The organization need only exist: its record is not copied.
		if err := store.Peek(tx, store.BucketOrgs, orgID, func([]byte) error { return nil }); errors.Is(err, store.ErrNotFound) {
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
		if err := store.Peek(tx, store.BucketSecrets, serverSecretKey(serverID), func(raw []byte) error {
			return readBoxSecret(raw, &sub.BoxPrivate)
		}); err != nil {
			return fmt.Errorf("server %s secrets: %w", serverID, err)
		}
		sub.UserDisabled = user.disabled
		sub.Attached = slices.Contains(srv.orgs, orgID)
		sub.DynamicFirewall, sub.Protocol, sub.Port, sub.Hosts = srv.dynamicFirewall, srv.protocol, srv.port, slices.Clone(srv.hosts)
		if p, ok := user.profiles[serverID]; ok {
			if p.keyErr != nil {
				return fmt.Errorf("user %s public key: %w", userID, p.keyErr)
			}
			var secret string
			if err := store.Peek(tx, store.BucketSecrets, syncKey(p.syncToken), func(raw []byte) (err error) {
				secret, err = readSyncSecret(raw)
				return err
			}); err != nil {
				return fmt.Errorf("user %s sync secret: %w", userID, err)
			}
			sub.SyncToken, sub.SyncSecret, sub.UserKey = p.syncToken, secret, p.key
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
