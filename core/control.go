package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/gctune"
)

// The control socket (0600, root and the core's own user) answers the
// request counters and the process status; `portcullis counters` and
// `portcullis status` read it.

// writeReady writes one JSON line to w and closes it.
func writeReady(w io.WriteCloser, r api.Ready) error {
	b, err := json.Marshal(r)
	if err != nil {
		w.Close()
		return err
	}
	_, werr := w.Write(append(b, '\n'))
	return errors.Join(werr, w.Close())
}

// reconcileAtStart runs the start's firewall reconcile and keeps its report
// for the status (api.ControlStatus.StartReconcile), so a benchmark or an
// operator reads how long it took without parsing the log.
func (d *daemon) reconcileAtStart(ctx context.Context, guarded []dynfw.ProtoPort) error {
	if d.gate == nil {
		return nil
	}
	// The reconcile's garbage comes in one burst (each approval decoded,
	// every element encoded for netlink, the kernel's one batch): with the
	// collector's default pace the heap grew to twice what was live, and
	// with 100,000 approvals made most of the core's peak memory.
	// An operator's GOGC (the environment) is left as it is (gctune.Pin).
	defer gctune.Pin(reconcileGCPercent)()
	start, cpu0 := time.Now(), processCPU()
	added, removed, err := d.approver.Reconcile(ctx, guarded)
	d.startReconcile = &api.ReconcileReport{Seconds: time.Since(start).Seconds(), CPUSeconds: (processCPU() - cpu0).Seconds(),
		Added: added, Removed: removed}
	// With many live approvals the reconcile's garbage (each approval
	// decoded, every element encoded for netlink) is most of the heap the
	// core has ever had: hand it back now rather than keep it resident
	// until the runtime's scavenger gets to it.
	if added+removed > freeAfterReconcile {
		debug.FreeOSMemory()
	}
	return err
}

// processCPU is the process's CPU time so far, user and system (0 if the
// kernel does not say).
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// freeAfterReconcile is how many elements a start's reconcile changes
// before the core returns the garbage it made to the system at once.
const freeAfterReconcile = 10_000

// reconcileGCPercent is the collector's GOGC during the start's reconcile:
// the heap may grow by a quarter of what is live, not double.
const reconcileGCPercent = 25

// controlHandler serves the control socket: the request counters, the
// process status and the worker commands (servers), for root and the
// core's own user only.
func controlHandler(apiSrv *rpc.Server, status func() api.ControlStatus, servers, notices http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred := rpc.PeerCredFrom(r.Context())
		if cred == nil || (cred.UID != 0 && cred.UID != os.Geteuid()) {
			log.Warn("control socket: request refused", "peer_uid", cred)
			rpc.WriteError(w, rpc.ErrForbidden)
			return
		}
		switch {
		case r.Method == http.MethodGet && r.URL.Path == api.CounterPath:
			rpc.WriteJSON(w, http.StatusOK, apiSrv.Counters())
		case r.Method == http.MethodGet && r.URL.Path == api.StatusPath:
			rpc.WriteJSON(w, http.StatusOK, status())
		case servers != nil && strings.HasPrefix(r.URL.Path, api.ControlServerPath):
			servers.ServeHTTP(w, r)
		case notices != nil && strings.HasPrefix(r.URL.Path, api.ControlNotificationPath):
			notices.ServeHTTP(w, r)
		default:
			rpc.WriteError(w, &rpc.Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such control route"})
		}
	})
}

// Counters reads the request counters from a running core's control socket.
func Counters(ctx context.Context, runtimeDir string) (api.Counters, error) {
	var c api.Counters
	return c, controlGet(ctx, runtimeDir, api.CounterPath, &c)
}

// Status reads the process status from a running core's control socket.
func Status(ctx context.Context, runtimeDir string) (api.ControlStatus, error) {
	var st api.ControlStatus
	return st, controlGet(ctx, runtimeDir, api.StatusPath, &st)
}

// controlGet reads one JSON answer from the control socket.
func controlGet(ctx context.Context, runtimeDir, path string, v any) error {
	return controlDo(ctx, runtimeDir, http.MethodGet, path, 1<<16, v)
}

// controlDo sends one request to the control socket and reads its JSON
// answer (at most limit bytes).
func controlDo(ctx context.Context, runtimeDir, method, path string, limit int64, v any) error {
	return controlSend(ctx, runtimeDir, method, path, nil, limit, v)
}

// controlSend is controlDo with a JSON request body (nil: none).
func controlSend(ctx context.Context, runtimeDir, method, path string, body []byte, limit int64, v any) error {
	sock := filepath.Join(runtimeDir, ControlSocketName)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+api.InternalHost+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", sock, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return fmt.Errorf("control socket %s: %w", sock, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("control socket %s: %s: %s", sock, resp.Status, raw)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("control socket %s: %w", sock, err)
	}
	return nil
}

// ServeSocket serves h on a new unix socket at path (mode 0660), recording
// each connection's peer credentials as the core socket does. It is how
// benchmarks and tests outside this package run a core in-process; stop
// closes the server and waits for its goroutine.
func ServeSocket(path string, h http.Handler, log *slog.Logger) (stop func() error, err error) {
	ln, err := listenUnix(path, 0o660, -1)
	if err != nil {
		return nil, err
	}
	srv := rpc.HTTPServer(h, log)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	return func() error {
		err := srv.Close()
		<-done
		return err
	}, nil
}
