package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/timerslack"
)

// childEnv names the hidden mode of a re-executed benchfront: "proxy" (the
// baseline reverse proxy), "relay" (the front's floor: TLS and a byte
// relay) or "front-profile" (web.Handler in process under the CPU
// profiler). It is not a flag, so -h does not list it.
const childEnv = "PORTCULLIS_BENCHFRONT_CHILD"

// profileEnv carries the CPU profile's path to a "front-profile" child.
const profileEnv = "PORTCULLIS_BENCHFRONT_PROFILE"

// process is a target process: the real portcullis-web or a re-executed
// benchfront.
type process struct {
	cmd  *exec.Cmd
	done chan error
}

// buildFront compiles cmd/portcullis-web into dir with the go command ($GO,
// else go from PATH) and returns the binary's path.
func buildFront(ctx context.Context, dir string) (string, error) {
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	out := filepath.Join(dir, "portcullis-web")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, "github.com/portcullis-gw/portcullis/cmd/portcullis-web")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build portcullis-web: %w", err)
	}
	return out, nil
}

// startTarget starts binary with args as the core starts the front
// (core/supervisor.go): the HTTPS listener is descriptor 3 (LISTEN_FDS,
// named "https", accepted because this process is the parent named by
// PORTCULLIS_LISTEN_PARENT), the bootstrap pipe descriptor 4
// (PORTCULLIS_BOOTSTRAP_FD). Secrets travel in the pipe only. extraEnv is
// added to the child's small environment. A slack above 0 is the child's
// timer slack (timerslack.Start), as its systemd unit would set it.
func startTarget(binary string, args []string, ln *net.TCPListener, boot *api.Bootstrap, slack time.Duration, extraEnv ...string) (*process, error) {
	payload, err := json.Marshal(boot)
	if err != nil {
		return nil, fmt.Errorf("encode bootstrap: %w", err)
	}
	lf, err := ln.File()
	if err != nil {
		return nil, fmt.Errorf("listener descriptor: %w", err)
	}
	defer lf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("bootstrap pipe: %w", err)
	}
	defer r.Close()
	// The bootstrap (a few kilobytes) fits the pipe's buffer: written
	// before the child starts.
	_, werr := w.Write(payload)
	if err := errors.Join(werr, w.Close()); err != nil {
		return nil, fmt.Errorf("write bootstrap: %w", err)
	}
	cmd := exec.Command(binary, args...)
	cmd.ExtraFiles = []*os.File{lf, r}
	cmd.Env = append([]string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"LISTEN_FDS=1",
		"LISTEN_FDNAMES=" + api.ListenerHTTPS,
		api.EnvListenParent + "=" + strconv.Itoa(os.Getpid()),
		api.EnvBootstrapFD + "=4",
	}, extraEnv...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if slack > 0 {
		err = timerslack.Start(cmd, slack)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(binary), err)
	}
	p := &process{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	return p, nil
}

// stop ends the process with SIGTERM (SIGKILL after 10 s) and returns its
// exit error, nil for a clean exit.
func (p *process) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		return err
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.New("killed after 10 s")
	}
}

// exited reports the exit of a process that should still run.
func (p *process) exited() error {
	select {
	case err := <-p.done:
		p.done <- err
		return fmt.Errorf("%s exited: %v", filepath.Base(p.cmd.Path), err)
	default:
		return nil
	}
}
