package links

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"slices"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/api/linkproto"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/internal/replay"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/linkmgr"
)

// agentRequest is a verified link API request.
type agentRequest struct {
	hdr     api.LinkHeaders
	link    *linkmgr.Link
	secret  []byte // the link's secret (PSKs)
	sealKey []byte
}

var errLinkAuth = &rpc.Error{Status: http.StatusUnauthorized, Code: "link_auth", Message: "unknown host or bad signature"}

// verify checks a link API request: known host, fresh timestamp, HMAC over
// host, time, nonce, method, path and the body's hash, unseen nonce.
func (s *Service) verify(c *rpc.Call) (*agentRequest, error) {
	hdr, err := api.ParseLinkHeaders(c.Header)
	if err != nil {
		return nil, rpc.HeaderError("link_header", err)
	}
	var sec *hostSecret
	var l *linkmgr.Link
	var linkSecret []byte
	err = s.st.View(c.Ctx, func(tx store.Tx) error {
		var err error
		if sec, err = store.GetJSON[hostSecret](tx, store.BucketLinkSecrets, hostSecretKey(hdr.Host)); err != nil {
			return err
		}
		if l, err = store.GetJSON[linkmgr.Link](tx, store.BucketLinks, sec.LinkID); err != nil {
			return err
		}
		raw, err := tx.Get(store.BucketLinkSecrets, linkSecretKey(sec.LinkID))
		if err != nil {
			return err
		}
		linkSecret, err = base64.StdEncoding.DecodeString(string(raw))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		s.log.Warn("link request from an unknown host", "host_id", hdr.Host, "peer", c.Peer)
		return nil, errLinkAuth
	} else if err != nil {
		return nil, err
	}
	if loc, h := l.FindHost(hdr.Host); h == nil {
		s.log.Warn("link request from a host its link no longer has", "host_id", hdr.Host)
		return nil, errLinkAuth
	} else if loc.Router {
		s.log.Warn("link request as the host of a router location, which runs no agent", "host_id", hdr.Host)
		return nil, errLinkAuth
	}
	macKey, sealKey := linkproto.Keys(sec.Secret)
	if !linkproto.Check(macKey, linkproto.Message(hdr, c.Route.Method, c.Route.Pattern, c.Raw), hdr.Signature) {
		s.log.Warn("link request with a bad signature", "host_id", hdr.Host, "peer", c.Peer)
		return nil, errLinkAuth
	}
	now := s.now()
	ts, err := replay.ParseUnix(hdr.Timestamp)
	if err == nil {
		err = replay.CheckClock(ts, now, linkproto.Window)
	}
	if err != nil {
		return nil, &rpc.Error{Status: http.StatusRequestTimeout, Code: "link_timestamp", Message: "Link-Timestamp: " + err.Error()}
	}
	err = s.st.Batch(c.Ctx, func(tx store.Tx) error {
		return replay.Use(tx, now, now.Add(replay.TTL(linkproto.Window)), replay.Key(replay.KindLink, hdr.Host, hdr.Nonce))
	})
	if errors.Is(err, replay.ErrReplay) {
		return nil, &rpc.Error{Status: http.StatusConflict, Code: "replay", Message: "Link-Nonce was used before"}
	} else if err != nil {
		return nil, err
	}
	return &agentRequest{hdr: hdr, link: l, secret: linkSecret, sealKey: sealKey}, nil
}

// report takes a host's report and answers with its sealed state.
func (s *Service) report(c *rpc.Call, rep *api.LinkReport) (*api.LinkSealed, error) {
	ar, err := s.verify(c)
	if err != nil {
		return nil, err
	}
	source, err := s.source(c)
	if err != nil {
		return nil, err
	}
	now := s.now()
	_, err = s.mgr.Report(ar.link, ar.hdr.Host, source, rep, now)
	if errors.Is(err, linkmgr.ErrAddress) {
		s.log.Warn("link report refused: bad address", "host_id", ar.hdr.Host, "peer", c.Peer, "source", source, "err", err)
		return nil, &rpc.Error{Status: http.StatusBadRequest, Code: "link_address", Message: err.Error()}
	} else if err != nil {
		s.log.Warn("link report refused", "host_id", ar.hdr.Host, "peer", c.Peer, "err", err)
		return nil, &rpc.Error{Status: http.StatusConflict, Code: "host_in_use", Message: err.Error()}
	}
	// In a cluster the report lands in the shared store (cluster.go): the
	// agent sees a failure (503 without quorum) and reports again.
	if err := s.share(c.Ctx, ar.link, liveRecord{HostID: ar.hdr.Host, Address: source.String(), At: now, Report: rep}); err != nil {
		return nil, err
	}
	plain, err := json.Marshal(s.mgr.State(ar.link, ar.secret, ar.hdr.Host))
	if err != nil {
		return nil, err
	}
	return linkproto.Seal(rand.Reader, ar.sealKey, ar.hdr.Nonce, plain)
}

// source is the address a report came from: the peer the front saw or,
// when that peer is a trusted proxy that forwards an address, the last
// address it forwards (the one it saw).
func (s *Service) source(c *rpc.Call) (netip.Addr, error) {
	var peer netip.Addr
	if ap, err := netip.ParseAddrPort(c.Peer); err == nil {
		peer = ap.Addr().Unmap()
	}
	f := c.Header.Get(api.HeaderForwarded)
	if f == "" || !peer.IsValid() || !slices.ContainsFunc(s.trusted, func(p netip.Prefix) bool { return p.Contains(peer) }) {
		return peer, nil
	}
	fwd, err := api.ParseForwarded(f)
	if err != nil {
		return netip.Addr{}, rpc.BadRequest(api.HeaderForwarded, err.Error())
	}
	if len(fwd) == 0 {
		return peer, nil
	}
	return fwd[len(fwd)-1].Unmap(), nil
}

// stop takes a host's graceful stop: its location fails over at once.
func (s *Service) stop(c *rpc.Call, _ *api.NoBody) (*api.OKResponse, error) {
	ar, err := s.verify(c)
	if err != nil {
		return nil, err
	}
	now := s.now()
	s.mgr.Stop(ar.link, ar.hdr.Host, now)
	if err := s.share(c.Ctx, ar.link, liveRecord{HostID: ar.hdr.Host, At: now, Stopped: true}); err != nil {
		return nil, err
	}
	s.log.Info("link host stopped gracefully", "link", ar.link.Name, "host_id", ar.hdr.Host)
	return &api.OKResponse{OK: true}, nil
}
