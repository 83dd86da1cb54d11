package web

import "strconv"

// Procs returns the front's GOMAXPROCS and where it comes from, given the
// core's web.gomaxprocs (configured, 0 when unset), what Go would use
// (goDefault: the CPUs, or the cgroup's CPU quota) and whether GOMAXPROCS
// is in the front's environment, which wins as Go documents it.
//
// The front's default is half of goDefault, at least one. The front faces
// the network and shares the host with the core, whose RSA-4096 verifies
// are most of an approval's CPU: so a flood of TLS handshakes takes at most
// half of the CPUs from it. And with fewer threads than CPUs the front
// parks and wakes fewer of them for each request: under benchapprove on 2
// CPUs its CPU per approval fell by a sixth (README, issue 14).
func Procs(configured, goDefault int, inEnv bool) (n int, from string) {
	switch {
	case inEnv:
		return goDefault, "GOMAXPROCS in the environment"
	case configured > 0:
		return configured, "web.gomaxprocs"
	default:
		return max(1, goDefault/2), "half of the " + strconv.Itoa(goDefault) + " CPUs Go would use"
	}
}
