package vpn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/logging"
)

// DefaultUser is the account every worker runs as (deploy/sysusers.conf
// creates it under systemd; the core creates it when it is missing).
const DefaultUser = "portcullis-vpn"

// Account is the unprivileged user the workers run as.
type Account struct {
	Name     string
	UID, GID int
}

// ErrAccount is wrapped when the worker account is unusable.
var ErrAccount = errors.New("worker account")

// EnsureAccount returns the worker account, creating it (a system user with
// its own group, no home, no shell) when it is missing and the core runs
// as root. Root, uid 65534 and "nobody" are refused: a worker must run as
// an account nothing else uses.
func EnsureAccount(ctx context.Context, name string, log *slog.Logger) (Account, error) {
	log = logging.OrDiscard(log)
	u, err := user.Lookup(name)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) && os.Geteuid() == 0 {
		if err := createAccount(ctx, name); err != nil {
			return Account{}, err
		}
		log.Info("created the VPN worker account", "user", name)
		u, err = user.Lookup(name)
	}
	if err != nil {
		return Account{}, fmt.Errorf("%w %s: %w", ErrAccount, name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return Account{}, fmt.Errorf("%w %s: %w", ErrAccount, name, err)
	}
	if uid == 0 || gid == 0 || uid == 65534 || name == "nobody" {
		return Account{}, fmt.Errorf("%w %s: uid %d gid %d is root or nobody; workers need their own account", ErrAccount, name, uid, gid)
	}
	return Account{Name: name, UID: uid, GID: gid}, nil
}

func createAccount(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "useradd", "--system", "--user-group", "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment", "Portcullis VPN worker", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: useradd %s: %w: %s", ErrAccount, name, err, strings.TrimSpace(string(out)))
	}
	return nil
}
