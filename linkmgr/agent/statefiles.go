package agent

import (
	"path/filepath"
	"strings"
)

// routesFile, in the state directory, lists the remote subnets, sorted,
// one per line, for IPsec routers that need static routes.
const routesFile = "routes"

// saveLoaded writes the names of the connections the agent has loaded
// (anything of them: a key whose connection failed to load counts) to the
// loaded file, when they changed, so that `portcullis-link remove` can
// unload them after a crash.
func (a *Agent) saveLoaded() error {
	if a.cfg.StateDir == "" {
		return nil
	}
	text := strings.Join(sortedKeys(a.have.Loaded), "\n") + "\n"
	if text == a.savedLoaded {
		return nil
	}
	if err := writeFileAtomic(filepath.Join(a.cfg.StateDir, loadedFile), text, 0o600); err != nil {
		a.log.Error("save the list of loaded connections", "err", err)
		return err
	}
	a.savedLoaded = text
	return nil
}
