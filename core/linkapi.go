package core

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/store"
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
	macKey, sealKey := api.LinkKeys(sec.Secret)
	if !api.CheckLink(macKey, api.LinkMessage(hdr, c.route.Method, c.route.Pattern, c.raw), hdr.Signature) {
		s.log.Warn("link request with a bad signature", "host_id", hdr.Host, "peer", c.peer)
		return nil, unauthorized
	}
	ts, _ := strconv.ParseInt(hdr.Timestamp, 10, 64)
	now := s.now()
	if d := now.Sub(time.Unix(ts, 0)); d > LinkWindow || d < -LinkWindow {
		return nil, &apiError{Status: http.StatusRequestTimeout, Code: "link_timestamp",
			Message: fmt.Sprintf("Link-Timestamp is %s from the gateway's clock (window ±%s)", d.Round(time.Second), LinkWindow)}
	}
	key := "link/" + hdr.Host + "/" + hdr.Nonce
	err = s.st.Batch(c.ctx, func(tx store.Tx) error {
		if raw, err := tx.Get(store.BucketNonces, key); err == nil && !store.Expired(raw, now) {
			return errLinkReplay
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return tx.Put(store.BucketNonces, key, store.ExpiryValue(now.Add(2*LinkWindow)))
	})
	if errors.Is(err, errLinkReplay) {
		return nil, &apiError{Status: http.StatusConflict, Code: "replay", Message: "Link-Nonce was used before"}
	} else if err != nil {
		return nil, err
	}
	return &linkRequest{hdr: hdr, link: l, secret: linkSecret, sealKey: sealKey}, nil
}

var errLinkReplay = errors.New("link nonce replayed")

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
	return api.SealLinkState(rand.Reader, lr.sealKey, lr.hdr.Nonce, plain)
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
