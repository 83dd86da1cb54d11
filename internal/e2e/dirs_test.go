package e2e

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// TestServeCreatesItsDirectories: portcullis serve run directly (not through
// make run, which made ./var first) with the relative data_dir and
// runtime_dir of deploy/dev.toml creates ./var and both directories with
// the modes it then requires, and starts: as root the front, another user,
// must search ./var to reach its socket in ./var/run.
func TestServeCreatesItsDirectories(t *testing.T) {
	root := testenv.Have(t, testenv.IsRoot(), "root: the front runs as another user, which must search ./var", "")
	g := startGatewayWith(t, gwOpts{RelativeDirs: true, Extra: "[firewall]\nenabled = false\n"})
	c := g.Client()
	c.Login(g.AdminPW)
	c.Must("GET", "/status", nil, nil)

	uid, gid := os.Getuid(), os.Getgid()
	runGID, runMode := gid, os.FileMode(0o700)
	if root {
		u, err := user.Lookup(frontUser)
		if err != nil {
			t.Fatal(err)
		}
		runGID, _ = strconv.Atoi(u.Gid)
		runMode = 0o750
	}
	for _, d := range []struct {
		path     string
		mode     os.FileMode
		uid, gid int
	}{
		{filepath.Join(g.Dir, "var"), 0o755, uid, gid},
		{g.DataDir, 0o700, uid, gid},
		{g.RuntimeDir, runMode, uid, runGID},
	} {
		fi, err := os.Stat(d.path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != d.mode || int(st.Uid) != d.uid || int(st.Gid) != d.gid {
			t.Errorf("%s: mode %04o owner %d:%d, want %04o %d:%d", d.path, fi.Mode().Perm(), st.Uid, st.Gid, d.mode, d.uid, d.gid)
		}
	}
}
