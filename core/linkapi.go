package core

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/api/linkproto"
	"github.com/portcullis-gw/portcullis/internal/replay"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/linkmgr"
)

// LinkWindow is the accepted clock difference of link requests.
const LinkWindow = 120 * time.Second

// linkRequest is a verified link API request.
type linkRequest struct {
	hdr     api.LinkHeaders
	link    *linkmgr.Link
	secret  []byte // the link's secret (PSKs)
	sealKey []byte
}

// verifyLink checks a link API request: known host, fresh timestamp, HMAC
// over host, time, nonce, method, path and the body's hash, unseen nonce.
func (s *Service) verifyLink(c *call) (*linkRequest, error) {
	hdr, err := api.ParseLinkHeaders(c.header)
	if err != nil {
		he := err.(*api.HeaderError)
		return nil, &apiError{Status: he.Status, Code: "link_header", Message: err.Error(), Field: he.Header}
	}
	unauthorized := &apiError{Status: http.StatusUnauthorized, Code: "link_auth", Message: "unknown host or bad signature"}
	var sec *linkHostSecret
	var l *linkmgr.Link
	var linkSecret []byte
	err = s.st.View(c.ctx, func(tx store.Tx) error {
		var err error
		if sec, err = store.GetJSON[linkHostSecret](tx, store.BucketSecrets, linkHostKey(hdr.Host)); err != nil {
			return err
		}
		if l, err = store.GetJSON[linkmgr.Link](tx, store.BucketLinks, sec.LinkID); err != nil {
			return err
		}
		raw, err := tx.Get(store.BucketSecrets, linkSecretKey(sec.LinkID))
		if err != nil {
			return err
		}
		linkSecret, err = base64.StdEncoding.DecodeString(string(raw))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		s.log.Warn("link request from an unknown host", "host_id", hdr.Host, "peer", c.peer)
		return nil, unauthorized
	} else if err != nil {
		return nil, err
	}
	if _, h := l.FindHost(hdr.Host); h == nil {
		s.log.Warn("link request from a host its link no longer has", "host_id", hdr.Host)
		return nil, unauthorized
	}
	macKey, sealKey := linkproto.Keys(sec.Secret)
	if !linkproto.Check(macKey, linkproto.Message(hdr, c.route.Method, c.route.Pattern, c.raw), hdr.Signature) {
		s.log.Warn("link request with a bad signature", "host_id", hdr.Host, "peer", c.peer)
		return nil, unauthorized
	}
	now := s.now()
	ts, err := replay.ParseUnix(hdr.Timestamp)
	if err == nil {
		err = replay.CheckClock(ts, now, LinkWindow)
	}
	if err != nil {
		return nil, &apiError{Status: http.StatusRequestTimeout, Code: "link_timestamp", Message: "Link-Timestamp: " + err.Error()}
	}
	err = s.st.Batch(c.ctx, func(tx store.Tx) error {
		return replay.Use(tx, now, now.Add(replay.TTL(LinkWindow)), replay.Key(replay.KindLink, hdr.Host, hdr.Nonce))
	})
	if errors.Is(err, replay.ErrReplay) {
		return nil, &apiError{Status: http.StatusConflict, Code: "replay", Message: "Link-Nonce was used before"}
	} else if err != nil {
		return nil, err
	}
	return &linkRequest{hdr: hdr, link: l, secret: linkSecret, sealKey: sealKey}, nil
}

// linkReport takes a host's report and answers with its sealed state.
func (s *Service) linkReport(c *call) (any, error) {
	lr, err := s.verifyLink(c)
	if err != nil {
		return nil, err
	}
	var peer netip.Addr
	if ap, err := netip.ParseAddrPort(c.peer); err == nil {
		peer = ap.Addr()
	}
	if _, err := s.links.mgr.Report(lr.link, lr.hdr.Host, peer, c.body.(*api.LinkReport), s.now()); err != nil {
		s.log.Warn("link report refused", "host_id", lr.hdr.Host, "peer", c.peer, "err", err)
		return nil, &apiError{Status: http.StatusConflict, Code: "host_in_use", Message: err.Error()}
	}
	plain, err := json.Marshal(s.links.mgr.State(lr.link, lr.secret, lr.hdr.Host))
	if err != nil {
		return nil, err
	}
	return linkproto.Seal(rand.Reader, lr.sealKey, lr.hdr.Nonce, plain)
}

// linkStop takes a host's graceful stop: its location fails over at once.
func (s *Service) linkStop(c *call) (any, error) {
	lr, err := s.verifyLink(c)
	if err != nil {
		return nil, err
	}
	s.links.mgr.Stop(lr.link, lr.hdr.Host, s.now())
	s.log.Info("link host stopped gracefully", "link", lr.link.Name, "host_id", lr.hdr.Host)
	return &api.OKResponse{OK: true}, nil
}
