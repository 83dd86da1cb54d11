package web

import (
	"fmt"
	"net"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/listenfds"
)

// InheritedListeners returns the listeners passed with the LISTEN_FDS
// protocol, by name ("https", "http"). It returns nil when none were
// passed.
//
// The core cannot know its child's PID before starting it, so it sets
// api.EnvListenParent to its own PID in place of LISTEN_PID;
// listenfds.FromParent accepts the descriptors only when this process's
// parent is that PID.
func InheritedListeners() (map[string]net.Listener, error) {
	lns, err := listenfds.FromParent(api.EnvListenParent)
	if err != nil {
		return nil, err
	}
	if len(lns) > 0 && lns[api.ListenerHTTPS] == nil {
		return nil, fmt.Errorf("inherited listeners: none named %q", api.ListenerHTTPS)
	}
	return lns, nil
}
