package core

import (
	"context"
	"net/http"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/notify"
)

// The notification's admin routes (and the control socket's, which work
// while the web surface is down): its state, an override and its removal.
// Both paths are in the audit trail: the admin routes as every audited
// call, the control socket's commands by recordControl; the change of the
// state in force is recorded by the daemon (noticeChanged).

// errNoNotice answers when the core runs without its notification state
// (a Service built without a daemon, in tests).
var errNoNotice = &rpc.Error{Status: http.StatusServiceUnavailable, Code: "no_notification",
	Message: "the notification state is not available"}

func (s *Service) getNotification(c *rpc.Call, _ *api.NoBody) (*api.NotificationStatus, error) {
	return s.notificationStatus()
}

func (s *Service) overrideNotification(c *rpc.Call, req *api.NotificationOverride) (*api.NotificationStatus, error) {
	return s.setNoticeOverride(c.Ctx, req, "admin:"+c.Session.Username, peerHost(c.Peer))
}

func (s *Service) clearNotification(c *rpc.Call, _ *api.NoBody) (*api.NotificationStatus, error) {
	return s.clearNoticeOverride(c.Ctx, "admin:"+c.Session.Username, peerHost(c.Peer))
}

// setNoticeOverride puts an override in force (by: who, from: where).
func (s *Service) setNoticeOverride(ctx context.Context, req *api.NotificationOverride, by, from string) (*api.NotificationStatus, error) {
	if s.notice == nil {
		return nil, errNoNotice
	}
	o := &notify.Override{WWW: notify.State(req.States.WWW), Web: notify.State(req.States.Web), VPN: notify.State(req.States.VPN),
		Message: req.Message, By: by, At: s.now().UTC()}
	if err := s.notice.SetOverride(ctx, o); err != nil {
		return nil, rpc.BadRequest("", err.Error())
	}
	s.log.Warn("notification override set", "by", by, "from", from, "www", req.States.WWW, "web", req.States.Web, "vpn", req.States.VPN)
	return s.notificationStatus()
}

// clearNoticeOverride removes the override: the last verified notice (or
// all ok) is in force again.
func (s *Service) clearNoticeOverride(ctx context.Context, by, from string) (*api.NotificationStatus, error) {
	if s.notice == nil {
		return nil, errNoNotice
	}
	if err := s.notice.ClearOverride(ctx); err != nil {
		return nil, err
	}
	s.log.Warn("notification override cleared", "by", by, "from", from)
	return s.notificationStatus()
}

// notificationStatus is the poller's state in the API's terms.
func (s *Service) notificationStatus() (*api.NotificationStatus, error) {
	if s.notice == nil {
		return nil, errNoNotice
	}
	st := s.notice.Status()
	e := st.Effective()
	out := &api.NotificationStatus{
		Polling:   s.notice.Polling(),
		URL:       s.notice.URL(),
		Effective: states(e.WWW, e.Web, e.VPN),
		Message:   e.Message,
		Source:    string(e.Source),
		LastError: st.LastError,
	}
	if n := st.Notice; n != nil {
		out.Notice = &api.NotificationNotice{States: states(n.WWW, n.Web, n.VPN), Message: n.Message,
			Issued: n.Issued, Expires: n.Expires}
	}
	if o := st.Override; o != nil {
		out.Override = &api.NotificationOverrideRecord{States: states(o.WWW, o.Web, o.VPN), Message: o.Message,
			By: o.By, At: o.At}
	}
	if !st.LastPoll.IsZero() {
		t := st.LastPoll
		out.LastPoll = &t
	}
	if !st.LastAccepted.IsZero() {
		t := st.LastAccepted
		out.LastAccepted = &t
	}
	return out, nil
}

func states(www, web, vpn notify.State) api.NotificationStates {
	return api.NotificationStates{WWW: string(www), Web: string(web), VPN: string(vpn)}
}
