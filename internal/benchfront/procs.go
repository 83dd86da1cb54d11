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
	"strings"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// clkTck is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// sysconf(_SC_CLK_TCK), 100 on every Linux architecture (the kernel
// converts its internal HZ to it for user space).
const clkTck = 100

// childEnv names the hidden mode of a re-executed benchfront: "proxy" (the
// baseline reverse proxy) or "front-profile" (web.Handler in process under
// the CPU profiler). It is not a flag, so -h does not list it.
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
// added to the child's small environment.
func startTarget(binary string, args []string, ln *net.TCPListener, boot *api.Bootstrap, extraEnv ...string) (*process, error) {
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
	if err := cmd.Start(); err != nil {
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

// cpuTicks returns utime + stime of the whole process (all its threads)
// from /proc/<pid>/stat, in clock ticks (1/clkTck s).
func cpuTicks(pid int) (int64, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read stat: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields after its closing parenthesis start with field 3.
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	// utime and stime are fields 14 and 15, so 11 and 12 after field 2.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return u + s, nil
}
