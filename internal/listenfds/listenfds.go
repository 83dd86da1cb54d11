// Package listenfds reads listening sockets passed with the LISTEN_FDS
// protocol (systemd socket activation, or the core handing sockets to the
// front), one per name.
package listenfds

import (
	"fmt"
	"net"
	"os"

	"github.com/coreos/go-systemd/v22/activation"
)

// ByName returns the passed listeners keyed by their LISTEN_FDNAMES name, or
// nil when none were passed. It clears the LISTEN_* variables so children
// do not inherit them. Each name must carry exactly one socket.
func ByName() (map[string]net.Listener, error) {
	if os.Getenv("LISTEN_FDS") == "" {
		return nil, nil
	}
	byName, err := activation.ListenersWithNames()
	if err != nil {
		return nil, fmt.Errorf("inherited listeners: %w", err)
	}
	out := make(map[string]net.Listener, len(byName))
	for name, lns := range byName {
		if len(lns) != 1 {
			return nil, fmt.Errorf("inherited listeners: %d sockets named %q, want 1", len(lns), name)
		}
		out[name] = lns[0]
	}
	return out, nil
}
