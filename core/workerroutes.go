package core

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// The worker routes: start, stop, restart, status and connected clients of
// a server's OpenVPN worker, as admin routes and on the control socket
// (`portcullis server …`, root only, no admin session).

// workerTimeout bounds one worker command (a start waits for the process).
const workerTimeout = 60 * time.Second

var errNoWorkers = &rpc.Error{Status: http.StatusServiceUnavailable, Code: "vpn_unavailable",
	Message: "VPN workers are not running: the core must run as root to make their tun devices"}

func (s *Service) startServer(c *rpc.Call, _ *api.NoBody) (*api.ServerStatus, error) {
	return s.workerStart(c.Ctx, c.Params["server_id"], c.Session.Username)
}

func (s *Service) stopServer(c *rpc.Call, _ *api.NoBody) (*api.ServerStatus, error) {
	return s.workerStop(c.Ctx, c.Params["server_id"], c.Session.Username)
}

func (s *Service) restartServer(c *rpc.Call, _ *api.NoBody) (*api.ServerStatus, error) {
	return s.workerRestart(c.Ctx, c.Params["server_id"], c.Session.Username)
}

func (s *Service) serverStatus(c *rpc.Call, _ *api.NoBody) (*api.ServerStatus, error) {
	return s.workerStatus(c.Ctx, c.Params["server_id"])
}

func (s *Service) serverClients(c *rpc.Call, _ *api.NoBody) (*api.VPNClientList, error) {
	return s.workerClients(c.Ctx, c.Params["server_id"])
}

// vpnDisabled refuses a worker start while the workers are suspended (a
// notification or an admin override disabled the VPN): 503, nothing
// changed.
func (s *Service) vpnDisabled() error {
	if why := s.workers.Suspended(); why != nil {
		return &rpc.Error{Status: http.StatusServiceUnavailable, Code: "vpn_disabled",
			Message: "the VPN is disabled (" + why.Error() + "); no worker starts until it is enabled again"}
	}
	return nil
}

// setStarted stores the server's started flag.
func (s *Service) setStarted(ctx context.Context, id string, started bool) (*serverRecord, error) {
	return s.servers.Edit(ctx, s.st, id, func(_ store.Tx, rec *serverRecord) error {
		rec.Started = started
		return nil
	})
}

// workerStart marks the server started and starts its worker.
func (s *Service) workerStart(ctx context.Context, id, by string) (*api.ServerStatus, error) {
	if s.workers == nil {
		return nil, errNoWorkers
	}
	if err := s.vpnDisabled(); err != nil {
		return nil, err
	}
	rec, err := s.setStarted(ctx, id, true)
	if err != nil {
		return nil, err
	}
	s.log.Info("server started", "server_id", id, "by", by)
	if !s.place.runs(rec) {
		// Its own gateways start it when they see the change (clusterwatch.go).
		return s.workerStatus(ctx, id)
	}
	if rec.NAT {
		s.warnIfNotForwarding(id)
	}
	ctx, cancel := context.WithTimeout(ctx, workerTimeout)
	defer cancel()
	if err := s.workers.Start(ctx, id); err != nil {
		if errors.Is(err, vpn.ErrSuspended) {
			// Suspended since the check: marked started, it starts when
			// the VPN is enabled again.
			return nil, &rpc.Error{Status: http.StatusServiceUnavailable, Code: "vpn_disabled",
				Message: err.Error() + "; the server starts when the VPN is enabled again"}
		}
		s.log.Error("vpn worker did not start; retrying with back-off", "server_id", id, "err", err)
		return nil, &rpc.Error{Status: http.StatusBadGateway, Code: "worker_failed",
			Message: "the server is marked started, but its worker did not start (retrying): " + err.Error()}
	}
	return s.workerStatus(ctx, id)
}

// workerStop marks the server stopped and stops its worker.
func (s *Service) workerStop(ctx context.Context, id, by string) (*api.ServerStatus, error) {
	if _, err := s.setStarted(ctx, id, false); err != nil {
		return nil, err
	}
	s.log.Info("server stopped", "server_id", id, "by", by)
	if s.workers != nil {
		ctx, cancel := context.WithTimeout(ctx, workerTimeout)
		defer cancel()
		if err := s.workers.Stop(ctx, id); err != nil {
			return nil, err
		}
	}
	return s.workerStatus(ctx, id)
}

// workerRestart restarts a started server's worker.
func (s *Service) workerRestart(ctx context.Context, id, by string) (*api.ServerStatus, error) {
	if s.workers == nil {
		return nil, errNoWorkers
	}
	if err := s.vpnDisabled(); err != nil {
		return nil, err
	}
	st, err := s.workerStatus(ctx, id)
	if err != nil {
		return nil, err
	}
	if !st.Started {
		return nil, rpc.Conflict("the server is not started")
	}
	s.log.Info("server restarted", "server_id", id, "by", by)
	ctx, cancel := context.WithTimeout(ctx, workerTimeout)
	defer cancel()
	if err := s.workers.Restart(ctx, id); err != nil {
		return nil, &rpc.Error{Status: http.StatusBadGateway, Code: "worker_failed",
			Message: "the worker did not start again (retrying): " + err.Error()}
	}
	return s.workerStatus(ctx, id)
}

// workerStatus is the server's started flag and its worker's state.
func (s *Service) workerStatus(ctx context.Context, id string) (*api.ServerStatus, error) {
	var rec *serverRecord
	err := s.st.View(ctx, func(tx store.Tx) (err error) {
		rec, err = s.servers.Load(tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := &api.ServerStatus{ServerID: id, Started: rec.Started, Device: vpn.DeviceName(id)}
	if s.workers != nil {
		st, _ := s.workers.Status(id)
		out.Running, out.PID, out.Starts, out.LastError = st.Running, st.PID, st.Starts, st.LastError
		if st.Running {
			since := st.Since
			out.Since = &since
		}
	}
	return out, nil
}

// workerClients lists the server's connected clients.
func (s *Service) workerClients(ctx context.Context, id string) (*api.VPNClientList, error) {
	if _, err := s.workerStatus(ctx, id); err != nil {
		return nil, err
	}
	if s.workers == nil {
		return nil, errNoWorkers
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	clients, err := s.workers.Clients(ctx, id)
	if errors.Is(err, vpn.ErrNotRunning) || errors.Is(err, vpn.ErrMgmtClosed) {
		return nil, rpc.Conflict("the server's worker is not running")
	}
	if err != nil {
		return nil, err
	}
	out := &api.VPNClientList{Clients: make([]api.VPNClient, 0, len(clients))}
	for _, c := range clients {
		v := api.VPNClient{UserID: c.UserID, OrgID: c.OrgID, RealAddress: c.RealAddress,
			BytesIn: c.BytesIn, BytesOut: c.BytesOut, ConnectedSince: c.Since}
		if v.UserID == "" {
			v.UserID = c.CommonName
		}
		if c.Virtual.IsValid() {
			v.VirtualAddress = c.Virtual.String()
		}
		out.Clients = append(out.Clients, v)
	}
	return out, nil
}

// workerControl serves the worker commands on the control socket, whose
// handler has already refused every peer but root and the core's own user:
//
//	POST /control/server/<id>/start|stop|restart
//	GET  /control/server/<id>/status|clients
func (s *Service) workerControl(log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, action, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, api.ControlServerPath), "/")
		if !api.IsObjectID(id) {
			rpc.WriteError(w, rpc.AsError(rpc.BadRequest("server_id", "the server ID must be 24 lowercase hex characters")))
			return
		}
		const by = "control socket"
		var (
			v   any
			err error
		)
		switch {
		case r.Method == http.MethodPost && action == "start":
			v, err = s.workerStart(r.Context(), id, by)
		case r.Method == http.MethodPost && action == "stop":
			v, err = s.workerStop(r.Context(), id, by)
		case r.Method == http.MethodPost && action == "restart":
			v, err = s.workerRestart(r.Context(), id, by)
		case r.Method == http.MethodGet && action == "status":
			v, err = s.workerStatus(r.Context(), id)
		case r.Method == http.MethodGet && action == "clients":
			v, err = s.workerClients(r.Context(), id)
		default:
			err = &rpc.Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such control route"}
		}
		if r.Method == http.MethodPost && (action == "start" || action == "stop" || action == "restart") {
			s.recordControl(r, "server."+action, id, err)
		}
		if err != nil {
			e := rpc.AsError(err)
			if e.Status == http.StatusInternalServerError {
				log.Error("control socket: server command failed", "server_id", id, "action", action, "err", err)
			}
			rpc.WriteError(w, e)
			return
		}
		rpc.WriteJSON(w, http.StatusOK, v)
	})
}

// ServerCommand runs a worker command (start, stop, restart, status,
// clients) on a running core's control socket and returns its JSON answer.
func ServerCommand(ctx context.Context, runtimeDir, serverID, action string) (json.RawMessage, error) {
	method := http.MethodPost
	if action == "status" || action == "clients" {
		method = http.MethodGet
	}
	var out json.RawMessage
	err := controlDo(ctx, runtimeDir, method, api.ControlServerPath+serverID+"/"+action, 16<<20, &out)
	return out, err
}
