package vpn

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Files of a worker's directory <base>/<server id>. The directory belongs
// to the core with the worker's own gid (ids.go), mode 0770: the worker can
// create its management socket there but cannot change the directory's
// mode; no other worker (another gid) can enter it. The base directory is 0700 and the core's: the worker
// reaches its own directory only through the descriptor it inherits, never
// by name, and never another worker's.
const (
	// CRLFileName is the server's CRL in a worker's directory.
	CRLFileName = "crl.pem"
	// MgmtSocketName is a worker's management socket in its directory.
	MgmtSocketName = "mgmt.sock"
)

// prepareBase makes the base directory (0700, the core's).
func prepareBase(base string) error {
	if err := os.MkdirAll(base, 0o700); err != nil {
		return fmt.Errorf("worker directory %s: %w", base, err)
	}
	if err := os.Chmod(base, 0o700); err != nil {
		return fmt.Errorf("worker directory %s: %w", base, err)
	}
	return nil
}

// prepareDir makes a worker's directory and removes a stale management
// socket from it.
func prepareDir(dir string, gid int) error {
	if err := os.Mkdir(dir, 0o770); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("worker directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("worker directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("worker directory %s is not a directory", dir)
	}
	// The parent is the core's alone, so dir is the one made above.
	if err := os.Chown(dir, os.Geteuid(), gid); err != nil {
		return fmt.Errorf("worker directory: %w", err)
	}
	if err := os.Chmod(dir, 0o770); err != nil {
		return fmt.Errorf("worker directory: %w", err)
	}
	if err := os.Remove(filepath.Join(dir, MgmtSocketName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("stale management socket: %w", err)
	}
	return nil
}

// writeCRL replaces the directory's CRL atomically: a new file, readable by
// the worker's group, renamed over the old one (OpenVPN reloads it when it
// changes). Ownership and mode are set on the open file, never by path:
// the worker can rename entries of its directory.
func writeCRL(dir string, gid int, pem []byte) error {
	f, err := os.CreateTemp(dir, ".crl-*")
	if err != nil {
		return fmt.Errorf("write CRL: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(pem)
	err = errors.Join(werr, f.Chown(os.Geteuid(), gid), f.Chmod(0o640), f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, CRLFileName))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write CRL: %w", err)
	}
	return nil
}
