package dynfw

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/api/approval"
)

// Fuzz levels: how much of a request FuzzApprove makes valid, so that the
// fuzzer reaches every check.
const (
	fuzzRaw    = iota // every header and body field as fuzzed
	fuzzHMAC          // as fuzzed, with a valid Auth-Signature over them
	fuzzSealed        // the fuzzed inner bytes sealed, RSA-signed and HMAC-signed as the client does
	fuzzLevels
)

// refusalStatuses are the statuses Approve may refuse with
// (docs/approval.md).
var refusalStatuses = map[int]bool{400: true, 401: true, 403: true, 404: true, 405: true, 408: true, 409: true,
	410: true, 411: true, 412: true, 414: true, 415: true, 431: true, 503: true}

// FuzzApprove (issue 9, item 6) drives the whole approval verification,
// Approver.Approve, with fuzzed headers, body, inner document, peer and
// forwarded addresses over a fixture (fake directory, real store, recording
// gate). Whatever the input: no panic; an error is always a *Refusal with a
// documented status; an answer is a sealed response the client opens, that
// agrees with the outcome; a grant opens one IPv4 and one IPv6 address at
// most, none of them a reported special-purpose one, within the per-user
// cap.
func FuzzApprove(f *testing.F) {
	fx := newFixture(f)
	ts := strconv.FormatInt(fx.now.Unix(), 10)
	inner := func(mut func(*api.InnerRequest)) []byte {
		in := fx.inner()
		if mut != nil {
			mut(in)
		}
		b, _ := json.Marshal(in)
		return b
	}
	valid := fx.request(reqOpts{})
	for _, level := range []uint8{fuzzRaw, fuzzHMAC, fuzzSealed} {
		f.Add(level, ts, valid.Headers.Nonce, valid.Headers.Signature, valid.Body.Data, valid.Body.Nonce,
			valid.Body.PublicKey, valid.Body.Signature, "", inner(nil), "192.0.2.10", "")
	}
	f.Add(uint8(fuzzSealed|8), ts, "", "", "", "", "", "", "", inner(func(in *api.InnerRequest) {
		in.PublicAddress, in.PublicAddress6 = "81.2.69.160", "2a00:1450:4001::9"
	}), "81.2.69.142", "")
	f.Add(uint8(fuzzSealed|8|16), ts, "", "", "", "", "", "", "", inner(func(in *api.InnerRequest) {
		in.PublicAddress6 = "2001:db8::1"
	}), "10.0.0.5", "203.0.113.1, 81.2.69.20")
	f.Add(uint8(fuzzSealed|4), "1759999000", "", "", "", "", "", "", "x", []byte(`{"nonce":"a","timestamp":1}`), "::1", "")
	f.Add(uint8(fuzzHMAC), "", "", "", "!!", "", "AAAA", "", "", []byte(nil), "", "")

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := func() time.Time { return fx.now }
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32")}
	approvers := [2]*Approver{
		NewApprover(Config{TrustedProxies: proxies, MaxApprovalsPerMinute: 600, Now: now}, fx.dir, fx.st, fx.gate, quiet),
		NewApprover(Config{ReportedAddresses: true, TrustedProxies: proxies, MaxApprovalsPerMinute: 600, Now: now}, fx.dir, fx.st, fx.gate, quiet),
	}
	path := "/key/ovpn/" + orgID + "/" + userID + "/" + serverID
	var seq atomic.Uint64
	f.Fuzz(func(t *testing.T, mode uint8, timestamp, authNonce, hmacSig, data, boxNonce, pubKey, rsaSig, devSig string,
		innerJSON []byte, peer, forwarded string) {
		level := mode % 4
		if level >= fuzzLevels {
			level = fuzzSealed
		}
		a := approvers[mode>>3&1]
		// Each input on its own: fresh per-user limits (the fixture's
		// clock stands still, so they would soon deny everything) and an
		// empty gate record.
		a.limits = newUserLimits(0, 600, nil)
		a.limits.loaded = true
		fx.gate.mu.Lock()
		fx.gate.allowed = nil
		fx.gate.mu.Unlock()
		r := &Request{Wait: mode&4 != 0, Path: path, OrgID: orgID, UserID: userID, ServerID: serverID,
			Headers: api.ApprovalHeaders{Token: fx.dir.sub.SyncToken, Timestamp: timestamp, Nonce: authNonce, Signature: hmacSig},
			Body:    &api.ApprovalRequest{Data: data, Nonce: boxNonce, PublicKey: pubKey, Signature: rsaSig, DeviceSignature: devSig}}
		if p, err := netip.ParseAddr(strings.TrimSpace(peer)); err == nil {
			r.Peer = p
		}
		if mode&16 != 0 {
			r.Peer = netip.MustParseAddr("10.0.0.5")
		}
		if fw, err := api.ParseForwarded(forwarded); err == nil && forwarded != "" {
			r.Forwarded = fw
		}
		var clientPriv *[32]byte
		switch level {
		case fuzzHMAC:
			r.Headers.Signature = approval.HMACSign(fx.dir.sub.SyncSecret, approval.RequestHMACMessage(r.Headers, "POST", r.Path, r.Body))
		case fuzzSealed:
			if authNonce == "" || strings.Trim(authNonce, "0123456789") == "" {
				// A fresh one each time, so that a request gets past the
				// Auth-Nonce cache.
				authNonce = fmt.Sprintf("fz%030d", seq.Add(1))
			}
			s, err := approval.SealRequest(approval.SealParams{Path: path, SyncToken: fx.dir.sub.SyncToken, SyncSecret: fx.dir.sub.SyncSecret,
				ServerBoxPublic: fx.dir.boxPub, UserKey: userKey, Inner: innerJSON, Timestamp: timestamp, AuthNonce: authNonce, Rand: rand.Reader})
			if err != nil {
				t.Fatal(err)
			}
			r.Headers, r.Body, clientPriv = s.Headers, &s.Body, &s.ClientPriv
		}
		out, err := a.Approve(context.Background(), r)
		if err != nil {
			var ref *Refusal
			if !errors.As(err, &ref) {
				t.Fatalf("untyped error: %v", err)
			}
			if !refusalStatuses[ref.Status] || ref.Code == "" || ref.Message == "" {
				t.Fatalf("refusal %+v", ref)
			}
			return
		}
		if out == nil || out.Response == nil {
			t.Fatal("no error and no response")
		}
		if clientPriv != nil {
			plain, err := approval.OpenResponse(out.Response, fx.dir.sub.SyncSecret, &fx.dir.boxPub, clientPriv)
			if err != nil {
				t.Fatalf("the client cannot open the answer: %v", err)
			}
			var resp api.InnerResponse
			if err := api.DecodeStrict(plain, &resp); err != nil {
				t.Fatalf("answer %s: %v", plain, err)
			}
			if resp.Allow != out.Allowed || (resp.Allow && (resp.Token == nil || len(*resp.Token) != 32)) ||
				(!resp.Allow && (resp.Reason == nil || *resp.Reason == "")) {
				t.Fatalf("answer %s for outcome %+v", plain, out)
			}
		}
		if !out.Allowed {
			return
		}
		var n4, n6 int
		for _, ad := range out.Approval.Addrs {
			if ad.Is4() {
				n4++
			} else {
				n6++
			}
			if ad != r.Peer.Unmap() && (len(r.Forwarded) == 0 || ad != r.Forwarded[len(r.Forwarded)-1].Unmap()) {
				if _, _, special := specialPurpose(ad); special {
					t.Fatalf("reported special-purpose address %s opened", ad)
				}
			}
		}
		if n4 > 1 || n6 > 1 || n4+n6 == 0 {
			t.Fatalf("approval opens %v", out.Approval.Addrs)
		}
		if len(out.Approval.Elements()) > DefaultMaxUserElements {
			t.Fatalf("approval opens %d elements", len(out.Approval.Elements()))
		}
	})
}
