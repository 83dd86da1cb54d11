package web

import (
	"fmt"
	"syscall"

	"github.com/portcullis-gw/portcullis/api"
)

// FitConnections makes room for maxConns client connections and a pool of
// poolSize connections to the core under RLIMIT_NOFILE: it raises the soft
// limit as far as needed (up to the hard limit, which the core raises
// before starting the front when it can) and returns how many client
// connections fit, maxConns or fewer.
func FitConnections(maxConns, poolSize int) (int, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return maxConns, fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	need := api.FrontFiles(maxConns, poolSize)
	if lim.Cur < need && lim.Cur < lim.Max {
		raised := syscall.Rlimit{Cur: min(need, lim.Max), Max: lim.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			return fitIn(maxConns, poolSize, lim.Cur), fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", raised.Cur, err)
		}
		lim = raised
	}
	return fitIn(maxConns, poolSize, lim.Cur), nil
}

// fitIn is how many of maxConns client connections fit in a limit of
// files descriptors (at least one).
func fitIn(maxConns, poolSize int, files uint64) int {
	other := api.FrontFiles(0, poolSize)
	if files <= other {
		return 1
	}
	return int(min(uint64(maxConns), files-other))
}
