package core

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/internal/listenfds"
	"github.com/portcullis-gw/portcullis/internal/logging"
)

// An external front (web.external = true) is one systemd runs as a unit of
// its own (deploy/portcullis-web.socket and .service) instead of the core
// binding the public ports and starting the front. The core then hands the
// bootstrap out on its socket, at api.BootstrapPath, to a peer with the
// front's uid only (the socket is also 0660, group the front's), and from
// that moment serves only that peer's pid: the pid the supervisor would
// have held. A front started again (its unit restarted) fetches again and
// takes the pin over; so could another process of the front's account,
// which therefore must be the front's alone (web.user: never shared, see
// resolveFrontUser).

// externalFront serves the bootstrap and holds the pinned pid.
type externalFront struct {
	log  *slog.Logger
	uid  int
	boot []byte
	pid  atomic.Int64
}

func newExternalFront(log *slog.Logger, uid int, boot api.Bootstrap) (*externalFront, error) {
	raw, err := json.Marshal(boot)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if len(raw) > api.MaxBootstrapSize {
		return nil, fmt.Errorf("bootstrap of %d bytes is larger than %d", len(raw), api.MaxBootstrapSize)
	}
	return &externalFront{log: logging.OrDiscard(log), uid: uid, boot: raw}, nil
}

// currentPID is the pid that fetched the bootstrap last (0: none yet, and
// the core socket serves no one); rpc.Config.PeerPID reads it.
func (e *externalFront) currentPID() int { return int(e.pid.Load()) }

// handler serves api.BootstrapPath and hands every other request to next.
// It runs behind rpc.HTTPServer, which records the peer's credentials.
func (e *externalFront) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != api.BootstrapPath {
			next.ServeHTTP(w, r)
			return
		}
		cred := rpc.PeerCredFrom(r.Context())
		if cred == nil || cred.UID != e.uid {
			attrs := []any{"front_uid", e.uid}
			if cred != nil {
				attrs = append(attrs, "peer_uid", cred.UID, "peer_pid", cred.PID)
			}
			e.log.Warn("core socket: bootstrap refused: the peer is not the front's account", attrs...)
			rpc.WriteError(w, rpc.ErrForbidden)
			return
		}
		if r.Method != http.MethodGet {
			rpc.WriteError(w, &rpc.Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "method not allowed"})
			return
		}
		if old := e.pid.Swap(int64(cred.PID)); old != int64(cred.PID) {
			e.log.Info("external front bootstrapped: the core socket now serves its pid only", "pid", cred.PID,
				"uid", cred.UID, "previous_pid", old)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(e.boot)
	})
}

// refuseInheritedSockets: with web.external the public sockets belong to
// portcullis-web.socket; sockets passed to the core mean portcullis.socket
// is enabled too, and both would bind the same port.
func refuseInheritedSockets() error {
	lns, err := listenfds.ByName()
	if err != nil {
		return err
	}
	for _, ln := range lns {
		ln.Close()
	}
	if len(lns) > 0 {
		return errors.New("config: web.external: systemd passed the core listening sockets (portcullis.socket); " +
			"with web.external = true they belong to portcullis-web.socket: disable portcullis.socket")
	}
	return nil
}

// addrPort returns the port of a host:port address (0 when there is none).
func addrPort(addr string) int {
	if _, p, err := net.SplitHostPort(addr); err == nil {
		n, _ := strconv.Atoi(p)
		return n
	}
	return 0
}

// publicAddr is the front's HTTPS address: its listener's, or with
// web.external web.listen (the address portcullis-web.socket binds).
func (d *daemon) publicAddr() string {
	if d.httpsAddr != "" {
		return d.httpsAddr
	}
	return d.cfg.Web.Listen
}

// publicPorts are the front's HTTPS and redirect ports (0: none).
func (d *daemon) publicPorts() (https, redirect int) {
	if d.cfg.Web.External {
		return addrPort(d.cfg.Web.Listen), addrPort(d.cfg.Web.RedirectListen)
	}
	return listenerPort(d.httpsLn), listenerPort(d.httpLn)
}
