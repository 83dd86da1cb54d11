// Package sdtest is a fake service manager for tests: a unix datagram
// socket speaking the sd_notify protocol that records every message, in
// order, with the sender's pid (SCM_CREDENTIALS, as systemd checks
// NotifyAccess=main).
//
//	s := sdtest.Listen(t)
//	s.Setenv(t, 2*time.Second)          // NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID for this process
//	// or cmd.Env = append(cmd.Env, s.Env(2*time.Second)...) for a child
//	ready, err := s.Wait(sdtest.Ready, 10*time.Second)
package sdtest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The kinds of message (the variable a message sets).
const (
	Ready    = "READY"
	Stopping = "STOPPING"
	Status   = "STATUS"
	Watchdog = "WATCHDOG"
)

// Message is one datagram received.
type Message struct {
	// Seq is the message's place in the order of arrival, from 1.
	Seq int
	At  time.Time
	// PID is the sender's pid as the kernel reports it (0: unknown).
	PID int
	// Raw is the datagram; Vars its assignments (READY → "1").
	Raw  string
	Vars map[string]string
}

// Has reports whether the message sets kind.
func (m Message) Has(kind string) bool { _, ok := m.Vars[kind]; return ok }

func (m Message) String() string {
	return fmt.Sprintf("#%d pid %d %q", m.Seq, m.PID, m.Raw)
}

// Socket is the fake service manager's notification socket.
type Socket struct {
	// Path is the socket's path (NOTIFY_SOCKET).
	Path string

	conn *net.UnixConn
	done chan struct{}

	mu      sync.Mutex
	msgs    []Message
	arrived chan struct{} // closed and replaced at each message
}

// Listen opens the socket in a temporary directory (t.TempDir(), or a
// shorter one when that path is too long for a unix socket) and records
// until the test ends.
func Listen(t testing.TB) *Socket {
	t.Helper()
	dir := t.TempDir()
	if len(dir) > 90 {
		var err error
		if dir, err = os.MkdirTemp("", "sdtest"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("sdtest: listen: %v", err)
	}
	if err := passCred(conn); err != nil {
		conn.Close()
		t.Fatalf("sdtest: SO_PASSCRED: %v", err)
	}
	s := &Socket{Path: path, conn: conn, done: make(chan struct{}), arrived: make(chan struct{})}
	go s.read()
	t.Cleanup(func() {
		conn.Close()
		<-s.done
	})
	return s
}

func passCred(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1)
	}); err != nil {
		return err
	}
	return serr
}

func (s *Socket) read() {
	defer close(s.done)
	buf := make([]byte, 64<<10)
	oob := make([]byte, syscall.CmsgSpace(syscall.SizeofUcred))
	for {
		n, oobn, _, _, err := s.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return // closed at the test's end (net.ErrClosed), or broken
		}
		m := Message{At: time.Now(), PID: senderPID(oob[:oobn]), Raw: string(buf[:n]), Vars: map[string]string{}}
		for _, line := range strings.Split(m.Raw, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				m.Vars[k] = v
			}
		}
		s.mu.Lock()
		m.Seq = len(s.msgs) + 1
		s.msgs = append(s.msgs, m)
		close(s.arrived)
		s.arrived = make(chan struct{})
		s.mu.Unlock()
	}
}

func senderPID(oob []byte) int {
	cmsgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, c := range cmsgs {
		if cred, err := syscall.ParseUnixCredentials(&c); err == nil {
			return int(cred.Pid)
		}
	}
	return 0
}

// Env is the environment that points a child process at the socket, with
// a watchdog of wd (0: none). The child is the watched process: no
// WATCHDOG_PID, as go-systemd then accepts any pid.
func (s *Socket) Env(wd time.Duration) []string {
	env := []string{"NOTIFY_SOCKET=" + s.Path}
	if wd > 0 {
		env = append(env, "WATCHDOG_USEC="+strconv.FormatInt(wd.Microseconds(), 10))
	}
	return env
}

// Setenv points this process at the socket for the rest of the test
// (t.Setenv: not in parallel tests), with a watchdog of wd (0: none)
// watching this process.
func (s *Socket) Setenv(t testing.TB, wd time.Duration) {
	t.Helper()
	t.Setenv("NOTIFY_SOCKET", s.Path)
	if wd > 0 {
		t.Setenv("WATCHDOG_USEC", strconv.FormatInt(wd.Microseconds(), 10))
		t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	} else {
		t.Setenv("WATCHDOG_USEC", "")
		t.Setenv("WATCHDOG_PID", "")
	}
}

// Messages returns every message received so far, in order.
func (s *Socket) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Count returns how many messages set kind so far.
func (s *Socket) Count(kind string) int {
	n := 0
	for _, m := range s.Messages() {
		if m.Has(kind) {
			n++
		}
	}
	return n
}

// Last returns the latest message setting kind.
func (s *Socket) Last(kind string) (Message, bool) {
	msgs := s.Messages()
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Has(kind) {
			return msgs[i], true
		}
	}
	return Message{}, false
}

// Wait returns the first message setting kind, waiting up to timeout for
// one to arrive.
func (s *Socket) Wait(kind string, timeout time.Duration) (Message, error) {
	return s.WaitAfter(kind, 0, timeout)
}

// WaitAfter returns the first message setting kind whose Seq is above seq
// (the next one after a message the test already has), waiting up to
// timeout for one to arrive.
func (s *Socket) WaitAfter(kind string, seq int, timeout time.Duration) (Message, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		for _, m := range s.msgs[min(seq, len(s.msgs)):] {
			if m.Has(kind) {
				s.mu.Unlock()
				return m, nil
			}
		}
		arrived := s.arrived
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-deadline.C:
			return Message{}, fmt.Errorf("sdtest: no %s message after #%d within %v; received: %v", kind, seq, timeout, s.Messages())
		}
	}
}
