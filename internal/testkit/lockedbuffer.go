package testkit

import (
	"bytes"
	"strings"
	"sync"
)

// LockedBuffer is an io.Writer safe for concurrent use: a log handler or a
// process writes into it while the test reads it. The zero value is an
// empty buffer that keeps everything.
type LockedBuffer struct {
	// Limit, when above zero, bounds the buffer: a write that finds more
	// than Limit bytes held first drops all but the last Limit/4 (the tail
	// of a long-running process's log).
	Limit int

	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Limit > 0 && l.b.Len() > l.Limit {
		tail := bytes.Clone(l.b.Bytes()[l.b.Len()-l.Limit/4:])
		l.b.Reset()
		l.b.Write(tail)
	}
	return l.b.Write(p)
}

// String returns what was written (what is kept of it, with a Limit).
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Lines returns what was written as lines, without the surrounding
// blank space.
func (l *LockedBuffer) Lines() []string {
	return strings.Split(strings.TrimSpace(l.String()), "\n")
}
