package vpn

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// launchSpec is one start of an openvpn process.
type launchSpec struct {
	Binary  string
	Config  []byte
	Dir     string // the worker's directory, handed over as fd 4
	Account Account
	Log     *slog.Logger // gets the process's output, one record per line
}

// process is a running worker process.
type process struct {
	pid  int
	proc *os.Process
	// done is closed once the process exited and its output was read;
	// err is its exit status then.
	done chan struct{}
	err  error

	mu   sync.Mutex
	tail []string // the last lines of its output
}

// exitError says how the process ended, with its last output lines.
func (p *process) exitError() error {
	p.mu.Lock()
	tail := strings.Join(p.tail, " | ")
	p.mu.Unlock()
	err := p.err
	if err == nil {
		err = errors.New("exited")
	}
	if tail == "" {
		return fmt.Errorf("openvpn: %w", err)
	}
	return fmt.Errorf("openvpn: %w (last output: %s)", err, tail)
}

// maxConfig bounds a configuration (it must fit the pipe it travels in).
const maxConfig = 1 << 20

// launch starts openvpn already as the worker account: no capabilities
// (setuid from root clears them), an empty bounding set where the core may
// shrink it, no_new_privs (nothing it executes can gain any), no
// supplementary groups, its own process group, SIGTERM when the core dies.
// The configuration, with the server's key, reaches it through a pipe
// (fd 3, read as /dev/fd/3) and never touches a file; its directory is fd 4.
//
// no_new_privs and the bounding set are per thread and inherited by a
// child, so the process is started from a goroutine locked to its own
// thread, which sets both and is never handed back to the runtime: the
// thread waits for the process and then ends with the goroutine. (It
// living as long as the process is also what makes the parent-death signal
// fire only when the core itself dies.)
func launch(ls launchSpec) (*process, error) {
	if len(ls.Config) > maxConfig {
		return nil, fmt.Errorf("configuration of %d bytes is too large", len(ls.Config))
	}
	cfgR, err := configPipe(ls.Config)
	if err != nil {
		return nil, err
	}
	defer cfgR.Close()
	// The worker opens /dev/fd/3 anew, which checks the pipe's owner: a
	// pipe is its creator's, mode 0600. Handing it over keeps it private
	// to the worker (and root).
	if err := cfgR.Chown(ls.Account.UID, ls.Account.GID); err != nil {
		return nil, fmt.Errorf("configuration pipe: %w", err)
	}
	dir, err := os.OpenFile(ls.Dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open worker directory: %w", err)
	}
	defer dir.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("output pipe: %w", err)
	}
	defer outW.Close()

	p := &process{done: make(chan struct{})}
	started := make(chan error, 1)
	logsDone := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		defer close(p.done)
		if err := restrictThread(); err != nil {
			outR.Close()
			close(logsDone)
			started <- err
			return
		}
		cmd := exec.Command(ls.Binary, "--config", fmt.Sprintf("/dev/fd/%d", configFD))
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		cmd.Dir = "/"
		cmd.Stdout, cmd.Stderr = outW, outW
		cmd.ExtraFiles = []*os.File{cfgR, dir} // fd 3, fd 4
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGTERM,
		}
		if ls.Account.UID != os.Geteuid() {
			cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(ls.Account.UID), Gid: uint32(ls.Account.GID), Groups: []uint32{}}
		}
		if err := cmd.Start(); err != nil {
			outR.Close()
			close(logsDone)
			started <- fmt.Errorf("start %s: %w", ls.Binary, err)
			return
		}
		p.pid, p.proc = cmd.Process.Pid, cmd.Process
		go func() { defer close(logsDone); p.forwardLines(outR, ls.Log) }()
		started <- nil
		p.err = cmd.Wait()
		<-logsDone
	}()
	if err := <-started; err != nil {
		<-p.done
		return nil, err
	}
	return p, nil
}

// configPipe returns the read end of a pipe that already holds config, its
// write end closed.
func configPipe(config []byte) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("configuration pipe: %w", err)
	}
	if len(config) > 60<<10 {
		if _, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, len(config)+4096); err != nil {
			r.Close()
			w.Close()
			return nil, fmt.Errorf("configuration pipe of %d bytes: %w", len(config), err)
		}
	}
	_, werr := w.Write(config)
	if err := errors.Join(werr, w.Close()); err != nil {
		r.Close()
		return nil, fmt.Errorf("configuration pipe: %w", err)
	}
	return r, nil
}

// restrictThread sets no_new_privs on the calling thread and empties its
// capability bounding set. Emptying needs CAP_SETPCAP; a core without it
// (a unit with a bounding set of its own) keeps the set it was given,
// which no_new_privs already keeps out of the worker's reach.
func restrictThread() error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EPERM) {
			return nil
		}
		if err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

// forwardLines logs every line of r until it ends, and keeps the last
// three.
func (p *process) forwardLines(r *os.File, log *slog.Logger) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), MaxLine)
	for sc.Scan() {
		log.Info("openvpn: " + sc.Text())
		p.mu.Lock()
		p.tail = append(p.tail, sc.Text())
		if len(p.tail) > 3 {
			p.tail = p.tail[1:]
		}
		p.mu.Unlock()
	}
	if err := sc.Err(); err != nil {
		log.Warn("openvpn output unreadable", "err", err)
	}
}

// signal sends sig to the process.
func (p *process) signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.proc.Signal(sig)
	}
}
