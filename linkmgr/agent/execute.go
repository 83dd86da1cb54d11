package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// executor carries out planned steps against charon, the firewall and the
// routes, and keeps the record of what really happened.
type executor struct {
	charon   Charon
	firewall Firewall // nil: the agent has no firewall
	routes   Routes   // nil: the agent installs no routes
	stateDir string   // where the routes file goes
	log      *slog.Logger
	now      func() time.Time
	// routesErr is the last failure of the routes step: a route conflict
	// lasts until an operator resolves it, and is logged once, not every
	// round.
	routesErr string
}

// run carries out the steps in order and updates have to what happened.
// A step that fails is logged and its error kept; the later load and
// unload steps of the same connection, which build on it, are skipped, and
// since have records only what succeeded the next round plans them again.
// run returns every error, joined.
func (e *executor) run(ctx context.Context, steps []step, have *actual) error {
	var errs []error
	failed := map[string]bool{}
	for _, s := range steps {
		if s.Name != "" && failed[s.Name] {
			e.log.Debug("step skipped after an earlier failure", "step", s.String())
			continue
		}
		err := e.do(ctx, s, have)
		if s.Op == opRoutes && err == nil && e.routesErr != "" {
			e.log.Info("routes installed", "prefixes", len(s.Prefixes))
			e.routesErr = ""
		}
		if err == nil {
			continue
		}
		if s.Op == opLoadShared || s.Op == opLoadConn {
			setLoadFailed(have, s.Name, s.FP)
		}
		err = fmt.Errorf("%s: %w", s, err)
		errs = append(errs, err)
		level, what := failure(s.Op)
		if s.Op == opRoutes {
			if err.Error() == e.routesErr {
				level = slog.LevelDebug
			}
			e.routesErr = err.Error()
		}
		e.log.Log(ctx, level, what, "name", s.Name, "err", err)
		if s.Op.blocks() {
			failed[s.Name] = true
		}
	}
	return errors.Join(errs...)
}

// blocks says whether a failure stops the connection's later steps: a
// connection whose key did not load is not loaded, one that did not unload
// keeps its key. An initiate that fails is retried by the keep-alive, and a
// failed terminate does not stop the unload.
func (o op) blocks() bool {
	switch o {
	case opLoadShared, opLoadConn, opUnloadConn, opUnloadShared:
		return true
	}
	return false
}

// failures say how a failed step is logged.
var failures = map[op]struct {
	level slog.Level
	what  string
}{
	opLoadShared:   {slog.LevelError, "load connection"},
	opLoadConn:     {slog.LevelError, "load connection"},
	opInitiate:     {slog.LevelWarn, "initiate"},
	opReinitiate:   {slog.LevelWarn, "re-initiate"},
	opTerminate:    {slog.LevelWarn, "terminate"},
	opUnloadConn:   {slog.LevelError, "unload connection"},
	opUnloadShared: {slog.LevelError, "unload connection"},
	opFirewall:     {slog.LevelError, "firewall"},
	opRoutesFile:   {slog.LevelError, "write routes file"},
	opRoutes:       {slog.LevelWarn, "routes"},
}

func failure(o op) (slog.Level, string) {
	if f, ok := failures[o]; ok {
		return f.level, f.what
	}
	return slog.LevelError, o.String()
}

// do carries out one step and records its success in have.
func (e *executor) do(ctx context.Context, s step, have *actual) error {
	switch s.Op {
	case opLoadShared:
		if err := e.charon.LoadShared(ctx, s.Conn); err != nil {
			return err
		}
		e.update(have, s.Name, func(r *record) { r.Shared = s.FP })
	case opLoadConn:
		if err := e.charon.LoadConn(ctx, s.Conn); err != nil {
			return err
		}
		e.update(have, s.Name, func(r *record) { r.Conn, r.At = s.FP, e.now() })
		setLoadFailed(have, s.Name, "")
		e.log.Info("connection loaded", "name", s.Name, "remote", s.Conn.Peer.RemoteAddress)
	case opInitiate:
		return e.charon.Initiate(ctx, s.Name)
	case opReinitiate:
		have.LastKeepAlive = e.now()
		return e.charon.Initiate(ctx, s.Name)
	case opKeep:
		e.log.Debug("keeping the old connection until its replacement is up", "name", s.Name)
	case opTerminate:
		return e.charon.Terminate(ctx, s.Name)
	case opUnloadConn:
		if err := e.charon.UnloadConn(ctx, s.Name); err != nil {
			return err
		}
		e.update(have, s.Name, func(r *record) { r.Conn = "" })
		e.log.Info("connection unloaded", "name", s.Name)
	case opUnloadShared:
		if err := e.charon.UnloadShared(ctx, s.Name); err != nil {
			return err
		}
		e.update(have, s.Name, func(r *record) { r.Shared = "" })
	case opFirewall:
		if e.firewall == nil {
			return errors.New("no firewall")
		}
		if err := e.firewall.Set(ctx, s.Hosts, s.CheckPort); err != nil {
			return err
		}
		have.FirewallKey = s.Key
		e.log.Info("firewall updated", "hosts", len(s.Hosts), "check_port", s.CheckPort)
	case opRoutesFile:
		if err := writeFileAtomic(filepath.Join(e.stateDir, routesFile), s.Text, 0o644); err != nil {
			return err
		}
		have.RoutesFile = s.Text
	case opRoutes:
		if e.routes == nil {
			return errors.New("no routes")
		}
		if err := e.routes.Sync(ctx, s.Prefixes); err != nil {
			return err
		}
		have.Routed = s.Prefixes
	default:
		return fmt.Errorf("unknown step %v", s.Op)
	}
	return nil
}

// update changes a connection's record, and forgets it once nothing of it
// is loaded.
func (e *executor) update(have *actual, name string, f func(*record)) {
	if have.Loaded == nil {
		have.Loaded = map[string]record{}
	}
	r := have.Loaded[name]
	f(&r)
	if r.Shared == "" && r.Conn == "" {
		delete(have.Loaded, name)
		return
	}
	have.Loaded[name] = r
}

// setLoadFailed remembers the fingerprint whose load failed ("": forget).
func setLoadFailed(have *actual, name, fp string) {
	if fp == "" {
		delete(have.LoadFailed, name)
		return
	}
	if have.LoadFailed == nil {
		have.LoadFailed = map[string]string{}
	}
	have.LoadFailed[name] = fp
}

// writeFileAtomic writes through a temporary file and a rename.
func writeFileAtomic(path, text string, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), mode); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}
