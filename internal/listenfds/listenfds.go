// Package listenfds reads listening sockets passed with the LISTEN_FDS
// protocol (systemd socket activation, or the core handing sockets to the
// front), one per name.
package listenfds

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/coreos/go-systemd/v22/activation"
)

// ByName returns the passed listeners keyed by their LISTEN_FDNAMES name, or
// nil when none were passed. It clears the LISTEN_* variables so children
// do not inherit them. Each name must carry exactly one socket.
func ByName() (map[string]net.Listener, error) {
	if !passed() {
		return nil, nil
	}
	return byName()
}

// FromParent is ByName for sockets a parent process passed. The parent
// cannot know its child's PID before starting it, so it cannot set
// LISTEN_PID; it sets parentEnv to its own PID instead, and the sockets are
// accepted (when LISTEN_PID is absent) only if this process's parent has
// that PID, which keeps the guarantee LISTEN_PID gives: the descriptors
// were meant for this process, not a grandchild. parentEnv is cleared.
func FromParent(parentEnv string) (map[string]net.Listener, error) {
	if !passed() {
		return nil, nil
	}
	if os.Getenv("LISTEN_PID") == "" {
		if parent := os.Getenv(parentEnv); parent != "" && parent == strconv.Itoa(os.Getppid()) {
			os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
		}
	}
	os.Unsetenv(parentEnv)
	return byName()
}

// passed reports whether any sockets were passed.
func passed() bool { return os.Getenv("LISTEN_FDS") != "" }

func byName() (map[string]net.Listener, error) {
	named, err := activation.ListenersWithNames()
	if err != nil {
		return nil, fmt.Errorf("inherited listeners: %w", err)
	}
	out := make(map[string]net.Listener, len(named))
	for name, lns := range named {
		if len(lns) != 1 {
			return nil, fmt.Errorf("inherited listeners: %d sockets named %q, want 1", len(lns), name)
		}
		out[name] = lns[0]
	}
	return out, nil
}
