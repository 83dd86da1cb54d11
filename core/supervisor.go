package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/logging"
)

// frontSpec is how to start the front.
type frontSpec struct {
	Binary string
	Args   []string
	// Listeners are the sockets handed over, in order, with their names.
	Listeners []*os.File
	Names     []string
	Bootstrap api.Bootstrap
	// Credential, when set, is the unprivileged user the front runs as.
	Credential *syscall.Credential
}

// supervisor starts the front, restarts it with back-off when it dies and
// stops it when its context ends.
type supervisor struct {
	log  *slog.Logger
	spec frontSpec
	// StopGrace is how long the front gets to exit after SIGTERM.
	StopGrace time.Duration
	// started is signalled (non-blocking) after each successful start.
	started chan int
	// pid is the running front's process ID (0: none); starts counts them.
	pid, starts atomic.Int64
	// starting is held (write) while a front is started and its pid not
	// yet stored; currentPID waits for it, so that the core socket never
	// refuses the new front's first request for a pid it does not know yet.
	starting sync.RWMutex
	// ctl takes hold and release requests (hold, release) to the run loop.
	ctl chan holdRequest
}

// holdRequest asks the run loop to stop the front and start none (hold),
// or to start it again with a new spec (release).
type holdRequest struct {
	hold bool
	spec frontSpec
	done chan struct{}
}

// hold stops the front and keeps it stopped until release. It returns once
// the front has exited (or ctx ended, or the supervisor is not running).
func (s *supervisor) hold(ctx context.Context) error {
	return s.request(ctx, holdRequest{hold: true, done: make(chan struct{})})
}

// release starts the front again, with spec (its listeners are new).
func (s *supervisor) release(ctx context.Context, spec frontSpec) error {
	return s.request(ctx, holdRequest{spec: spec, done: make(chan struct{})})
}

func (s *supervisor) request(ctx context.Context, r holdRequest) error {
	select {
	case s.ctl <- r:
	case <-ctx.Done():
		return fmt.Errorf("front supervisor: %w", ctx.Err())
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("front supervisor: %w", ctx.Err())
	}
}

// currentPID returns the running front's process ID (0 while none runs),
// waiting for a start under way to record it. The core socket serves only
// that process.
func (s *supervisor) currentPID() int {
	s.starting.RLock()
	defer s.starting.RUnlock()
	return int(s.pid.Load())
}

// frontPID returns the running front's process ID (0 while none runs) and
// how many times it was started.
func (s *supervisor) frontPID() (pid, starts int) { return int(s.pid.Load()), int(s.starts.Load()) }

func newSupervisor(log *slog.Logger, spec frontSpec) *supervisor {
	log = logging.OrDiscard(log)
	return &supervisor{log: log, spec: spec, StopGrace: 10 * time.Second, started: make(chan int, 1),
		ctl: make(chan holdRequest)}
}

// run blocks until ctx ends; the front is stopped before it returns. While
// held (from the start with held, then hold) it starts no front.
func (s *supervisor) run(ctx context.Context, held bool) {
	backoff := 500 * time.Millisecond
	// apply takes a hold or release request.
	apply := func(r holdRequest) {
		held = r.hold
		if !r.hold {
			s.spec = r.spec
			backoff = 500 * time.Millisecond
			s.log.Info("front released: starting it again")
		} else {
			s.log.Warn("front held: stopped until released")
		}
		close(r.done)
	}
	for ctx.Err() == nil {
		if held {
			select {
			case <-ctx.Done():
				return
			case r := <-s.ctl:
				apply(r)
			}
			continue
		}
		began := time.Now()
		s.starting.Lock()
		cmd, err := s.start()
		if err == nil {
			s.pid.Store(int64(cmd.Process.Pid))
		}
		s.starting.Unlock()
		if err != nil {
			s.log.Error("cannot start the front", "binary", s.spec.Binary, "err", err)
		} else {
			s.starts.Add(1)
			select {
			case s.started <- cmd.Process.Pid:
			default:
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-ctx.Done():
				s.stop(cmd, done)
				s.pid.Store(0)
				return
			case r := <-s.ctl:
				// Held, or released with new listeners: this front goes.
				s.stop(cmd, done)
				s.pid.Store(0)
				apply(r)
				continue
			case err := <-done:
				s.pid.Store(0)
				s.log.Warn("front exited; restarting", "pid", cmd.Process.Pid, "err", err, "after", backoff)
			}
		}
		if time.Since(began) > time.Minute {
			backoff = 500 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case r := <-s.ctl:
			apply(r)
			continue
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// start launches one front process. The listeners become descriptors 3..,
// the bootstrap pipe the next one; the environment holds only what the
// front needs (never the core's own).
func (s *supervisor) start() (*exec.Cmd, error) {
	payload, err := json.Marshal(s.spec.Bootstrap)
	if err != nil {
		return nil, err
	}
	if len(payload) > 60<<10 {
		return nil, fmt.Errorf("bootstrap of %d bytes does not fit a pipe buffer", len(payload))
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("bootstrap pipe: %w", err)
	}
	defer r.Close()
	_, werr := w.Write(payload)
	cerr := w.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return nil, fmt.Errorf("write bootstrap: %w", err)
	}
	cmd := exec.Command(s.spec.Binary, s.spec.Args...)
	cmd.ExtraFiles = append(append([]*os.File{}, s.spec.Listeners...), r)
	cmd.Env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"LISTEN_FDS=" + strconv.Itoa(len(s.spec.Listeners)),
		"LISTEN_FDNAMES=" + strings.Join(s.spec.Names, ":"),
		api.EnvListenParent + "=" + strconv.Itoa(os.Getpid()),
		api.EnvBootstrapFD + "=" + strconv.Itoa(3+len(s.spec.Listeners)),
	}
	// The front writes to the core's standard error: under systemd that is
	// the journal's stream, and with JOURNAL_STREAM the front logs to
	// journald with structured fields too (logging.Auto).
	if js := os.Getenv("JOURNAL_STREAM"); js != "" {
		cmd.Env = append(cmd.Env, "JOURNAL_STREAM="+js)
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: a terminal's Ctrl-C reaches the core only,
		// which then stops the front in order.
		Setpgid:    true,
		Pdeathsig:  syscall.SIGTERM,
		Credential: s.spec.Credential,
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	uid := os.Getuid()
	if s.spec.Credential != nil {
		uid = int(s.spec.Credential.Uid)
	}
	s.log.Info("front started", "pid", cmd.Process.Pid, "uid", uid)
	return cmd, nil
}

func (s *supervisor) stop(cmd *exec.Cmd, done <-chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		s.log.Info("front stopped", "pid", cmd.Process.Pid)
	case <-time.After(s.StopGrace):
		_ = cmd.Process.Kill()
		<-done
		s.log.Warn("front killed after the stop grace period", "pid", cmd.Process.Pid)
	}
}
