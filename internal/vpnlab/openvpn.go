package vpnlab

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/internal/netlab"
)

// Connected is what openvpn prints once the tunnel is up.
const Connected = "Initialization Sequence Completed"

// Clients starts real openvpn clients inside a namespace.
type Clients struct {
	T netlab.T
	// NS is the client namespace; Binary the openvpn binary.
	NS     *netlab.NS
	Binary string
	// Dir receives the credential files and bound profiles.
	Dir string
	n   int
}

// Connect starts openvpn with the profile and the OpenVPN username and
// password, from the address src ("": the namespace's default source
// address), with extra arguments; it is stopped when the test ends.
func (c *Clients) Connect(profile, user, pass, src string, extra ...string) *OpenVPN {
	c.T.Helper()
	c.n++
	auth := filepath.Join(c.Dir, fmt.Sprintf("auth%d", c.n))
	if err := os.WriteFile(auth, []byte(user+"\n"+pass+"\n"), 0o600); err != nil {
		c.T.Fatalf("%v", err)
	}
	config := profile
	var bind []string
	if src != "" {
		// From a chosen source address: a copy of the profile that binds.
		raw, err := os.ReadFile(profile)
		if err != nil {
			c.T.Fatalf("%v", err)
		}
		config = filepath.Join(c.Dir, fmt.Sprintf("bound%d.ovpn", c.n))
		if err := os.WriteFile(config, bytes.Replace(raw, []byte("\nnobind\n"), []byte("\n"), 1), 0o600); err != nil {
			c.T.Fatalf("%v", err)
		}
		bind = []string{"--local", src, "--lport", "0"}
	}
	args := append([]string{"--config", config, "--auth-user-pass", auth, "--verb", "3", "--connect-retry-max", "1"}, bind...)
	oc := &OpenVPN{changed: make(chan struct{}), done: make(chan struct{})}
	oc.cmd = c.NS.Command(c.Binary, append(args, extra...)...)
	pr, pw := io.Pipe()
	oc.cmd.Stdout, oc.cmd.Stderr = pw, pw
	oc.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := oc.cmd.Start(); err != nil {
		c.T.Fatalf("%v", err)
	}
	go oc.read(pr)
	go func() { _ = oc.cmd.Wait(); pw.Close() }()
	c.T.Cleanup(oc.Stop)
	return oc
}

// OpenVPN is a running openvpn client; every line it prints is kept with
// the time it was read.
type OpenVPN struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the output is read to its end

	mu      sync.Mutex
	lines   []Line
	changed chan struct{} // closed and replaced at every line
}

// Line is one line of output and when it was read.
type Line struct {
	At   time.Time
	Text string
}

func (oc *OpenVPN) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		now := time.Now()
		oc.mu.Lock()
		oc.lines = append(oc.lines, Line{now, sc.Text()})
		close(oc.changed)
		oc.changed = make(chan struct{})
		oc.mu.Unlock()
	}
	close(oc.done)
}

// Output is everything printed so far.
func (oc *OpenVPN) Output() string {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	var b strings.Builder
	for _, l := range oc.lines {
		b.WriteString(l.Text + "\n")
	}
	return b.String()
}

// find returns the first line holding one of the texts, and which text.
func (oc *OpenVPN) find(texts []string) (Line, string, chan struct{}) {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	for _, l := range oc.lines {
		for _, s := range texts {
			if strings.Contains(l.Text, s) {
				return l, s, nil
			}
		}
	}
	return Line{}, "", oc.changed
}

// WaitLine waits until a line holds one of the texts and returns the text
// and the line; it returns "" when the client exits or d passes first.
func (oc *OpenVPN) WaitLine(d time.Duration, texts ...string) (string, Line) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		l, s, changed := oc.find(texts)
		if s != "" {
			return s, l
		}
		select {
		case <-changed:
		case <-oc.done:
			l, s, _ := oc.find(texts)
			return s, l
		case <-timer.C:
			return "", Line{}
		}
	}
}

// WaitFor is WaitLine without the line.
func (oc *OpenVPN) WaitFor(d time.Duration, texts ...string) string {
	s, _ := oc.WaitLine(d, texts...)
	return s
}

// Exited reports whether the client has exited (and its output is read).
func (oc *OpenVPN) Exited() bool {
	select {
	case <-oc.done:
		return true
	default:
		return false
	}
}

// Terminate sends SIGTERM and returns at once.
func (oc *OpenVPN) Terminate() { _ = oc.cmd.Process.Signal(syscall.SIGTERM) }

// Stop ends the client: SIGTERM, SIGKILL after 5 s.
func (oc *OpenVPN) Stop() { oc.StopWithin(5 * time.Second) }

// StopWithin ends the client: SIGTERM, SIGKILL after d.
func (oc *OpenVPN) StopWithin(d time.Duration) {
	if oc.Exited() {
		return
	}
	oc.Terminate()
	select {
	case <-oc.done:
	case <-time.After(d):
		_ = oc.cmd.Process.Kill()
		<-oc.done
	}
}
