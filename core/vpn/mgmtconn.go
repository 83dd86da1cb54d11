package vpn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// mgmtConn is the core's connection to one worker's management socket. One
// goroutine (read) reads every line: notifications go to Events, answer
// lines to the command waiting for them. Commands are sent one at a time
// and each waits for its answer until its context ends; a command that
// times out closes the connection, since a late answer could otherwise be
// taken for the next command's.
type mgmtConn struct {
	c      net.Conn
	events chan *Event
	// replies carries answer lines to the command in flight.
	replies chan string

	cmdMu sync.Mutex // one command at a time

	closeOnce sync.Once
	closed    chan struct{}
	readDone  chan struct{}
	err       error // why reading stopped (valid after readDone)
}

// ErrMgmtClosed is returned by commands on a closed connection.
var ErrMgmtClosed = errors.New("management connection closed")

// dialMgmt connects to the management socket, retrying until ctx ends
// (OpenVPN creates the socket a moment after it starts).
func dialMgmt(ctx context.Context, path string) (*mgmtConn, error) {
	var d net.Dialer
	for wait := 20 * time.Millisecond; ; wait = min(wait*2, 500*time.Millisecond) {
		c, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			return newMgmtConn(c), nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("management socket %s: %w", path, err)
		case <-time.After(wait):
		}
	}
}

func newMgmtConn(c net.Conn) *mgmtConn {
	m := &mgmtConn{c: c, events: make(chan *Event, 64), replies: make(chan string, 64),
		closed: make(chan struct{}), readDone: make(chan struct{})}
	go m.read()
	return m
}

// read runs until the connection ends; Events is closed after it.
func (m *mgmtConn) read() {
	defer close(m.readDone)
	defer close(m.events)
	br := bufio.NewReaderSize(m.c, 16<<10)
	var p Parser
	for {
		line, err := readLine(br)
		if err != nil {
			m.err = err
			m.Close()
			return
		}
		ev, reply, err := p.Feed(line)
		switch {
		case err != nil:
			m.err = err
			m.Close()
			return
		case reply:
			select {
			case m.replies <- line:
			case <-m.closed:
				return
			}
		case ev != nil:
			select {
			case m.events <- ev:
			case <-m.closed:
				return
			}
		}
	}
}

// readLine reads one line without its "\r\n"; longer than MaxLine is an
// error.
func readLine(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) && b.Len() > 0 {
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
		if b.Len()+len(chunk) > MaxLine {
			return "", fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, MaxLine)
		}
		b.Write(chunk)
		if !isPrefix {
			return strings.TrimRight(b.String(), "\r"), nil
		}
	}
}

// Events delivers notifications; it is closed when the connection ends.
func (m *mgmtConn) Events() <-chan *Event { return m.events }

// Close ends the connection; the reader stops.
func (m *mgmtConn) Close() {
	m.closeOnce.Do(func() {
		close(m.closed)
		m.c.Close()
	})
}

// Wait waits for the reader to stop and returns why it stopped.
func (m *mgmtConn) Wait() error {
	<-m.readDone
	return m.err
}

// Command sends one command and returns its answer: the text after
// "SUCCESS: " of a one-line answer, or the lines before END of a multi-line
// one. An "ERROR: …" answer is an error.
func (m *mgmtConn) Command(ctx context.Context, cmd string, multi bool) ([]string, error) {
	if strings.ContainsAny(cmd, "\r\n") {
		return nil, errors.New("management command with a line break")
	}
	m.cmdMu.Lock()
	defer m.cmdMu.Unlock()
	select {
	case <-m.closed:
		return nil, ErrMgmtClosed
	default:
	}
	// A reply line with no command waiting is stale: drop it.
	for len(m.replies) > 0 {
		<-m.replies
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(10 * time.Second)
	}
	_ = m.c.SetWriteDeadline(dl)
	if _, err := io.WriteString(m.c, cmd+"\n"); err != nil {
		m.Close()
		return nil, fmt.Errorf("management %q: %w", verb(cmd), err)
	}
	timer := time.NewTimer(time.Until(dl))
	defer timer.Stop()
	var out []string
	for {
		select {
		case line := <-m.replies:
			done, failed := replyDone(line, multi)
			if failed {
				return nil, fmt.Errorf("management %q: %s", verb(cmd), line)
			}
			if done {
				if !multi {
					return []string{strings.TrimSpace(strings.TrimPrefix(line, "SUCCESS:"))}, nil
				}
				return out, nil
			}
			if multi {
				out = append(out, line)
				if len(out) > 100_000 {
					m.Close()
					return nil, fmt.Errorf("management %q: answer too long", verb(cmd))
				}
			}
		case <-m.closed:
			return nil, fmt.Errorf("management %q: %w", verb(cmd), ErrMgmtClosed)
		case <-ctx.Done():
			m.Close()
			return nil, fmt.Errorf("management %q: %w", verb(cmd), ctx.Err())
		case <-timer.C:
			m.Close()
			return nil, fmt.Errorf("management %q: no answer by the deadline", verb(cmd))
		}
	}
}

// verb is a command's first word (commands are logged by it alone).
func verb(cmd string) string {
	v, _, _ := strings.Cut(cmd, " ")
	return v
}
