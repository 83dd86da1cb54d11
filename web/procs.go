package web

import "strconv"

// ProcsFromEnv is Procs's answer when GOMAXPROCS in the front's
// environment decides.
const ProcsFromEnv = "GOMAXPROCS in the environment"

// Procs returns the front's GOMAXPROCS and where it comes from, given the
// core's web.gomaxprocs (configured, 0 when unset), what Go uses now
// (goDefault: its default, from the CPUs or the cgroup's CPU quota, unless
// the environment set it) and the front's GOMAXPROCS environment variable
// (env, "" when unset). A positive number there wins, as it does for Go;
// anything else Go ignores, and so does Procs. set says whether the caller
// must call runtime.GOMAXPROCS(n): not when the environment decided.
//
// The front's default is half of goDefault, at least one. The front faces
// the network and shares the host with the core, whose RSA-4096 verifies
// are most of an approval's CPU: so a flood of TLS handshakes runs the
// front's Go code on at most half of the CPUs. And with fewer threads than
// CPUs the front parks and wakes fewer of them for each request: under
// benchapprove on 2 CPUs its CPU per approval fell by about an eighth
// (README, issue 14). The value is computed once, when the front starts.
func Procs(configured, goDefault int, env string) (n int, from string, set bool) {
	if envProcs(env) {
		return goDefault, ProcsFromEnv, false
	}
	if configured > 0 {
		return configured, "web.gomaxprocs", true
	}
	return max(1, goDefault/2), "half of the " + strconv.Itoa(goDefault) + " CPUs Go would use", true
}

// envProcs reports whether Go takes v, GOMAXPROCS's value, as its
// GOMAXPROCS: as the runtime parses it (Go 1.26, runtime/proc.go), a
// positive 32-bit decimal number.
func envProcs(v string) bool {
	n, err := strconv.ParseInt(v, 10, 32)
	return err == nil && n > 0
}
