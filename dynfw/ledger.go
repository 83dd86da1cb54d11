package dynfw

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/portcullis-gw/portcullis/internal/replay"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// The three replay caches of an approval, kept by internal/replay.
const (
	nonceAuth  = replay.KindAuth  // Auth-Nonce header, per sync token
	nonceBox   = replay.KindBox   // box nonce, per sync token
	nonceInner = replay.KindInner // inner JSON nonce, per user
)

// Approval is one opened gate: the client addresses allowed to reach one
// server port until Expires. Its firewall token is the key.
type Approval struct {
	Token    string       `json:"token"`
	OrgID    string       `json:"org_id"`
	UserID   string       `json:"user_id"`
	ServerID string       `json:"server_id"`
	Protocol string       `json:"protocol"`
	Port     int          `json:"port"`
	Addrs    []netip.Addr `json:"addrs"`
	Created  time.Time    `json:"created"`
	Expires  time.Time    `json:"expires"`
	Used     bool         `json:"used"`
}

// Elements returns the firewall elements of the approval.
func (a *Approval) Elements() []Element {
	out := make([]Element, 0, len(a.Addrs))
	for _, ad := range a.Addrs {
		out = append(out, Element{Addr: ad, Proto: a.Protocol, Port: uint16(a.Port)})
	}
	return out
}

// record is what one approval writes in one transaction.
type record struct {
	AuthKey           string // the Auth-Nonce's replay.Key
	SyncToken, UserID string
	BoxNonce          string
	InnerNonce        string
	NonceTTL          time.Duration
	Approval          *Approval // nil for a deny (nonces are still recorded)
	Now               time.Time
	CheckInner        bool
}

// committed says what commit found of the nonces it checks.
type committed struct {
	// authReplayed: the Auth-Nonce was recorded meanwhile (by another
	// gateway: this one holds it while it checks); nothing was written.
	authReplayed bool
	// boxReplayed: the box nonce was seen before; only the Auth-Nonce was
	// written.
	boxReplayed bool
	// innerReplayed: the inner nonce was seen before; the box nonce was
	// recorded, the approval not (Pritunl answers a boxed allow=false).
	innerReplayed bool
}

// commit checks the Auth-Nonce, the box nonce and the inner nonce in order
// and stores them with the approval, all in one transaction. A nonce that
// is present but expired counts as unseen. A replayed nonce does not fail
// the transaction (which, in a group commit, would roll back every other
// approval in it): it is reported in committed, with nothing of this
// request written for an Auth-Nonce, the Auth-Nonce alone for a box nonce,
// and both but not the approval for an inner one (that turns the approval
// into a deny, as Pritunl's boxed allow=false).
func commit(ctx context.Context, st store.Store, r *record) (c committed, err error) {
	if r.AuthKey == "" {
		return c, errors.New("approval record without its Auth-Nonce")
	}
	exp := r.Now.Add(r.NonceTTL)
	err = st.Batch(ctx, func(tx store.Tx) error {
		c = committed{}
		fresh, err := replay.Claim(tx, r.Now, exp, r.AuthKey)
		if err != nil || !fresh {
			c.authReplayed = err == nil
			return err
		}
		fresh, err = replay.Claim(tx, r.Now, exp, replay.Key(nonceBox, r.SyncToken, r.BoxNonce))
		if err != nil || !fresh {
			c.boxReplayed = err == nil
			return err
		}
		if r.CheckInner {
			fresh, err := replay.Claim(tx, r.Now, exp, replay.Key(nonceInner, r.UserID, r.InnerNonce))
			if err != nil || !fresh {
				c.innerReplayed = err == nil
				return err
			}
		}
		if r.Approval != nil {
			return InsertApproval(tx, r.Approval, r.Now)
		}
		return nil
	})
	return c, err
}

// InsertApproval writes a new approval in tx, the write commit makes (and
// internal/benchfloor measures). With etcd the approval goes by itself when
// it expires (a lease); purge removes it otherwise.
func InsertApproval(tx store.Tx, a *Approval, now time.Time) error {
	return store.InsertTTL(tx, store.BucketApprovals, a.Token, a, a.Expires.Sub(now))
}

// liveApprovals returns the approvals that have not expired.
func liveApprovals(ctx context.Context, st store.Store, now time.Time) ([]Approval, error) {
	var out []Approval
	err := st.View(ctx, func(tx store.Tx) error {
		all, err := store.ScanJSON[Approval](tx, store.BucketApprovals, "")
		for _, a := range all {
			if a.Expires.After(now) {
				out = append(out, a)
			}
		}
		return err
	})
	return out, err
}

// liveApproval is the part of an Approval that its firewall elements need
// (what a reconcile decodes of each).
type liveApproval struct {
	Protocol string       `json:"protocol"`
	Port     int          `json:"port"`
	Addrs    []netip.Addr `json:"addrs"`
	Expires  time.Time    `json:"expires"`
}

// forEachLive calls fn for every approval that has not expired, decoded
// into one value that is reused (fn must keep nothing of it), in one read
// transaction: nothing is kept of the approvals that fn does not keep.
func forEachLive(ctx context.Context, st store.Store, now time.Time, fn func(*liveApproval)) error {
	return st.View(ctx, func(tx store.Tx) error {
		var ap liveApproval
		return tx.Scan(store.BucketApprovals, "", func(key string, raw []byte) error {
			if err := decodeLive(raw, &ap); err != nil {
				return fmt.Errorf("decode %s/%s: %w", store.BucketApprovals, prefix(key), err)
			}
			if ap.Expires.After(now) {
				fn(&ap)
			}
			return nil
		})
	})
}

// decodeLive fills ap (its Addrs reused) from a stored approval: read
// directly when its fields are as encoding/json writes an Approval (a
// reconcile reads 100,000 approvals: a full decode was ~3.3 µs each, most
// of the reconcile's CPU; see live_decode_test.go), else decoded in full.
func decodeLive(raw []byte, ap *liveApproval) error {
	if readLive(raw, ap) {
		return nil
	}
	*ap = liveApproval{Addrs: ap.Addrs[:0]}
	return json.Unmarshal(raw, ap)
}

// readLive is decodeLive's direct read; false: not as encoding/json
// writes it. A key pattern such as "port": cannot occur inside a string
// value, where encoding/json escapes every quote.
func readLive(raw []byte, ap *liveApproval) bool {
	ap.Addrs = ap.Addrs[:0]
	// A key given twice (not as encoding/json writes it, which would take
	// the last) goes the long way.
	for _, k := range liveKeys {
		if bytes.Count(raw, k) != 1 {
			return false
		}
	}
	switch v, ok := quoted(raw, `"protocol":"`); {
	case !ok:
		return false
	case string(v) == "udp":
		ap.Protocol = "udp"
	case string(v) == "tcp":
		ap.Protocol = "tcp"
	default:
		return false
	}
	i := bytes.Index(raw, []byte(`"port":`))
	if i < 0 {
		return false
	}
	digits := raw[i+len(`"port":`):]
	port, n := 0, 0
	for n < len(digits) && n < 6 && digits[n] >= '0' && digits[n] <= '9' {
		port, n = port*10+int(digits[n]-'0'), n+1
	}
	if n == 0 || n == 6 || n == len(digits) || (digits[n] != ',' && digits[n] != '}') {
		return false
	}
	ap.Port = port
	i = bytes.Index(raw, []byte(`"addrs":[`))
	if i < 0 && !bytes.Contains(raw, []byte(`"addrs":null`)) {
		return false
	}
	rest := []byte("]") // addrs null: none
	if i >= 0 {
		rest = raw[i+len(`"addrs":[`):]
	}
	for len(rest) > 0 && rest[0] != ']' {
		if rest[0] != '"' {
			return false
		}
		j := bytes.IndexByte(rest[1:], '"')
		if j < 0 {
			return false
		}
		var a netip.Addr
		if err := a.UnmarshalText(rest[1 : 1+j]); err != nil || !a.IsValid() {
			return false
		}
		ap.Addrs = append(ap.Addrs, a)
		rest = rest[2+j:]
		if len(rest) > 0 && rest[0] == ',' {
			rest = rest[1:]
		}
	}
	if len(rest) == 0 {
		return false
	}
	v, ok := quoted(raw, `"expires":"`)
	if !ok {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, string(v))
	if err != nil {
		return false
	}
	ap.Expires = t
	return true
}

// liveKeys are the keys readLive reads, each of which must occur once.
var liveKeys = [][]byte{[]byte(`"protocol":`), []byte(`"port":`), []byte(`"addrs":`), []byte(`"expires":`)}

// quoted returns the string value after key (which ends with its opening
// quote), if it has no escape.
func quoted(raw []byte, key string) ([]byte, bool) {
	i := bytes.Index(raw, []byte(key))
	if i < 0 {
		return nil, false
	}
	rest := raw[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		return nil, false
	}
	return rest[:j], true
}

// expiresField is how encoding/json writes an Approval's expiry: its
// key, then the RFC 3339 time in quotes (no character of it is escaped).
var expiresField = []byte(`"expires":"`)

// approvalExpires reads a stored approval's expiry without decoding the
// rest: the core counts the live approvals every 10 s and purges every
// minute; a full decode of a stored approval cost 4.2 µs, this 0.44 µs
// (0.42 s and 0.04 s of CPU for 100,000, on the 2-core bench machine). A
// record that does not have the field as encoding/json writes it is
// decoded in full.
func approvalExpires(raw []byte) (time.Time, error) {
	if i := bytes.Index(raw, expiresField); i >= 0 && bytes.Count(raw, []byte(`"expires":`)) == 1 {
		rest := raw[i+len(expiresField):]
		if j := bytes.IndexByte(rest, '"'); j > 0 {
			if t, err := time.Parse(time.RFC3339Nano, string(rest[:j])); err == nil {
				return t, nil
			}
		}
	}
	var a struct {
		Expires time.Time `json:"expires"`
	}
	err := json.Unmarshal(raw, &a)
	return a.Expires, err
}

// purge deletes expired approvals, and has the replay cache drop its
// expired nonces; it returns how many records went.
func purge(ctx context.Context, st store.Store, now time.Time) (int, error) {
	nonces, err := replay.Purge(ctx, st, now)
	if err != nil {
		return 0, err
	}
	// In transactions of bounded size (store.DeleteWhere): a purge never
	// conflicts with the approvals being made, and fits one etcd Txn. A
	// record that does not decode is kept, as before.
	n, err := store.DeleteWhere(ctx, st, store.BucketApprovals, "", func(_ string, v []byte) bool {
		exp, err := approvalExpires(v)
		return err == nil && !exp.After(now)
	})
	if err != nil {
		return nonces + n, fmt.Errorf("purge approvals: %w", err)
	}
	return nonces + n, nil
}
