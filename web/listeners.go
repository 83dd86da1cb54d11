package web

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/listenfds"
)

// InheritedListeners returns the listeners passed with the LISTEN_FDS
// protocol, by name ("https", "http"). It returns nil when none were passed.
//
// systemd sets LISTEN_PID to the receiving process. The core cannot know
// its child's PID before starting it, so it sets PORTCULLIS_LISTEN_PARENT
// to its own PID instead; the descriptors are then accepted only when this
// process's parent is that PID, which keeps the guarantee LISTEN_PID gives
// (the descriptors were meant for this process, not a grandchild).
func InheritedListeners() (map[string]net.Listener, error) {
	if os.Getenv("LISTEN_FDS") == "" {
		return nil, nil
	}
	if os.Getenv("LISTEN_PID") == "" {
		if parent := os.Getenv(api.EnvListenParent); parent != "" && parent == strconv.Itoa(os.Getppid()) {
			os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
		}
	}
	os.Unsetenv(api.EnvListenParent)
	lns, err := listenfds.ByName()
	if err != nil {
		return nil, err
	}
	if len(lns) > 0 && lns[api.ListenerHTTPS] == nil {
		return nil, fmt.Errorf("inherited listeners: none named %q", api.ListenerHTTPS)
	}
	return lns, nil
}
