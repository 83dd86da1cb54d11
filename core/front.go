package core

import (
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"github.com/portcullis-gw/portcullis/internal/logging"
)

// frontIdentity is who the front runs as.
type frontIdentity struct {
	name     string
	uid, gid int
	// cred is nil when the front runs as the core's own user.
	cred *syscall.Credential
}

func resolveFrontUser(cfg *Checked, log *slog.Logger) (*frontIdentity, error) {
	if os.Geteuid() != 0 {
		if cfg.Web.User != "" {
			if u, err := user.Current(); err != nil || u.Username != cfg.Web.User {
				log.Warn("web.user ignored: the core is not root and cannot switch users; the front runs as the core's user",
					"web.user", cfg.Web.User)
			}
		}
		return &frontIdentity{name: "(core's user)", uid: os.Getuid(), gid: os.Getgid()}, nil
	}
	name := cfg.Web.User
	if name == "" {
		name = "nobody"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("config: web.user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid == 0 {
		return nil, fmt.Errorf("config: web.user: %q is root; the front must run unprivileged", name)
	}
	return &frontIdentity{name: name, uid: uid, gid: gid,
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}, nil
}

// raiseFileLimit lets the front, which inherits the core's RLIMIT_NOFILE,
// have need descriptors: when the hard limit is lower, the core raises its
// own soft and hard limits to need (root with CAP_SYS_RESOURCE, or under
// systemd LimitNOFILE= in the unit). When it cannot, it says so; the front
// then holds as many connections as its limit allows and says so too.
func raiseFileLimit(need uint64, log *slog.Logger) {
	log = logging.OrDiscard(log)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("cannot read RLIMIT_NOFILE", "err", err)
		return
	}
	// Go's runtime raises a process's soft limit to one below its hard
	// limit: the front gets need when the hard limit exceeds it.
	if lim.Max > need {
		return
	}
	want := syscall.Rlimit{Cur: need + 1, Max: need + 1}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		log.Warn("cannot raise RLIMIT_NOFILE for the front's web.max_connections; raise the hard limit (LimitNOFILE=)",
			"need", need, "hard_limit", lim.Max, "err", err)
		return
	}
	log.Info("RLIMIT_NOFILE raised for the front's web.max_connections", "limit", want.Max, "was", lim.Max)
}

func prepareRuntimeDir(dir string, front *frontIdentity) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("config: runtime_dir: %w", err)
	}
	if front.cred != nil {
		if err := os.Chown(dir, 0, front.gid); err != nil {
			return fmt.Errorf("config: runtime_dir: %w", err)
		}
		if err := os.Chmod(dir, 0o750); err != nil {
			return fmt.Errorf("config: runtime_dir: %w", err)
		}
	} else if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("config: runtime_dir: %w", err)
	}
	if err := reachableBy(dir, front.uid, front.gid); err != nil {
		return fmt.Errorf("config: runtime_dir: the front (user %s) could not reach its socket: %w", front.name, err)
	}
	return nil
}
