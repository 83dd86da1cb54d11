package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/audit"
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
		if errors.Is(err, notify.ErrInvalid) {
			return nil, rpc.BadRequest("", err.Error())
		}
		return nil, err
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
	if msg := s.noticeApplyErr.Load(); msg != nil {
		out.ApplyError = *msg
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

// noticeControl serves api.ControlNotificationPath on the control socket
// (root on the host): the state (GET), a poll now (POST /poll), an
// override (PUT /override, a JSON api.NotificationOverride) and its
// removal (DELETE /override). Each change is in the audit trail (actor
// control) and every answer is the state after it.
func (s *Service) noticeControl() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub := strings.TrimPrefix(r.URL.Path, api.ControlNotificationPath)
		by := "control"
		if cred := rpc.PeerCredFrom(r.Context()); cred != nil {
			by += " uid=" + strconv.Itoa(cred.UID)
		}
		ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
		defer cancel()
		var (
			out    *api.NotificationStatus
			err    error
			action string
		)
		switch {
		case r.Method == http.MethodGet && sub == "":
			out, err = s.notificationStatus()
		case r.Method == http.MethodPost && sub == "/poll":
			if s.notice == nil {
				err = errNoNotice
				break
			}
			action = "notification.poll"
			if perr := s.notice.PollNow(ctx); perr != nil {
				// The state is answered with the refusal in last_error;
				// a poll that could not run at all is the error.
				if errors.Is(perr, notify.ErrNoServer) {
					err = &rpc.Error{Status: http.StatusConflict, Code: "no_notification_server",
						Message: "no notification server configured (notify.url)"}
					break
				}
			}
			out, err = s.notificationStatus()
		case r.Method == http.MethodPut && sub == "/override":
			action = "notification.override"
			var req api.NotificationOverride
			body, rerr := io.ReadAll(io.LimitReader(r.Body, 4<<10+1))
			switch {
			case rerr != nil || len(body) > 4<<10:
				err = rpc.BadRequest("", "the override must be a JSON object of at most 4 KiB")
			default:
				if derr := api.DecodeStrict(body, &req); derr != nil {
					err = rpc.BadRequest("", derr.Error())
				} else if verr := api.Validate(&req); verr != nil {
					err = rpc.BadRequest("", verr.Error())
				} else {
					out, err = s.setNoticeOverride(ctx, &req, by, "control socket")
				}
			}
		case r.Method == http.MethodDelete && sub == "/override":
			action = "notification.clear"
			out, err = s.clearNoticeOverride(ctx, by, "control socket")
		default:
			err = &rpc.Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such control route"}
		}
		if action != "" {
			s.record(ctx, auditEntry{Actor: audit.ActorControl, Remote: by, Action: action, Err: err})
		}
		if err != nil {
			rpc.WriteError(w, rpc.AsError(err))
			return
		}
		rpc.WriteJSON(w, http.StatusOK, out)
	})
}

// NotificationCommand runs a notification command on a running core's
// control socket: "status", "poll", "override" (body: the override) or
// "clear-override"; it returns the state after it.
func NotificationCommand(ctx context.Context, runtimeDir, command string, override *api.NotificationOverride) (*api.NotificationStatus, error) {
	method, path := http.MethodGet, api.ControlNotificationPath
	var body []byte
	switch command {
	case "status":
	case "poll":
		method, path = http.MethodPost, path+"/poll"
	case "override":
		b, err := json.Marshal(override)
		if err != nil {
			return nil, err
		}
		method, path, body = http.MethodPut, path+"/override", b
	case "clear-override":
		method, path = http.MethodDelete, path+"/override"
	default:
		return nil, fmt.Errorf("unknown notification command %q", command)
	}
	var out api.NotificationStatus
	if err := controlSend(ctx, runtimeDir, method, path, body, 1<<16, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
