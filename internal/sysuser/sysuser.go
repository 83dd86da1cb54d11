// Package sysuser finds, and when the caller is root creates, the system
// accounts the core runs its children as: the front's (portcullis-web) and
// the VPN workers' (portcullis-vpn). Each is a system user with a group of
// its own, no home and no shell; deploy/sysusers.conf makes them under
// systemd, Ensure everywhere else. Root, nobody and uid/gid 65534 are
// refused: an account shared with other services would share its processes
// too (and so what /proc shows of them).
package sysuser

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/logging"
)

// Account is an unprivileged system account.
type Account struct {
	Name     string
	UID, GID int
}

// ErrShared is wrapped when the account is root or nobody.
var ErrShared = errors.New("is root or nobody, shared with other processes; use an account of its own")

// Ensure returns the account name, creating it when it is missing and the
// process is root; comment is its GECOS field ("Portcullis web front").
func Ensure(ctx context.Context, name, comment string, log *slog.Logger) (Account, error) {
	log = logging.OrDiscard(log)
	if name == "" {
		return Account{}, errors.New("no account name")
	}
	if name == "root" || name == "nobody" {
		return Account{}, fmt.Errorf("%s %w", name, ErrShared)
	}
	u, err := user.Lookup(name)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) && os.Geteuid() == 0 {
		if err := create(ctx, name, comment); err != nil {
			// Made meanwhile by another process (two starts at once)?
			if _, lerr := user.Lookup(name); lerr != nil {
				return Account{}, err
			}
		} else {
			log.Info("created a system account", "user", name, "for", comment)
		}
		u, err = user.Lookup(name)
	}
	if err != nil {
		return Account{}, fmt.Errorf("account %s: %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return Account{}, fmt.Errorf("account %s: %w", name, err)
	}
	if uid == 0 || gid == 0 || uid == 65534 || gid == 65534 {
		return Account{}, fmt.Errorf("account %s (uid %d gid %d) %w", name, uid, gid, ErrShared)
	}
	return Account{Name: name, UID: uid, GID: gid}, nil
}

func create(ctx context.Context, name, comment string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "useradd", "--system", "--user-group", "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment", comment, name).CombinedOutput()
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, exec.ErrNotFound) {
		// Under the SELinux policy (docs/selinux.md) the core may not run
		// useradd: the accounts come from sysusers.d at install time. (The
		// refusal shows as "not found": exec.LookPath's access(X_OK) is
		// refused before any execve.)
		return fmt.Errorf("create account %s: useradd: %w (create the account before starting: systemd-sysusers with deploy/sysusers.conf, or useradd --system %s)", name, err, name)
	}
	if err != nil {
		return fmt.Errorf("create account %s: useradd: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}
