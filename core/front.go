package core

import (
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"syscall"
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
