package core

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// Socket file names in the runtime directory.
const (
	CoreSocketName    = "core.sock"
	ControlSocketName = "control.sock"
)

// listenUnix creates a unix socket at path with the given mode and group,
// replacing a stale socket file but never another kind of file.
func listenUnix(path string, mode os.FileMode, gid int) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket; refusing to replace it", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use: is another core running?", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale %s: %w", path, err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("chown %s: %w", path, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return ln, nil
}

// ErrUnreachable says a user cannot reach a path through its directories.
var ErrUnreachable = errors.New("not reachable")

// reachableBy checks that uid/gid can search every directory from the root
// down to dir, as the kernel will when the front connects to its socket.
func reachableBy(dir string, uid, gid int) error {
	if uid == 0 {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("directory %s: no owner information (%T)", p, fi.Sys())
		}
		perm := fi.Mode().Perm()
		var search bool
		switch {
		case int(st.Uid) == uid:
			search = perm&0o100 != 0
		case int(st.Gid) == gid:
			search = perm&0o010 != 0
		default:
			search = perm&0o001 != 0
		}
		if !search {
			return fmt.Errorf("directory %s (mode %04o, owner %d:%d) cannot be searched by uid %d: %w",
				p, perm, st.Uid, st.Gid, uid, ErrUnreachable)
		}
		if p == "/" || p == filepath.Dir(p) {
			return nil
		}
	}
}
