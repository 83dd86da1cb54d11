package vpn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/portcullis-gw/portcullis/internal/sysuser"
)

// DefaultUser is the workers' base account (deploy/sysusers.conf creates it
// under systemd; the core creates it when it is missing). No worker runs
// as it: each runs under a uid and gid of its own (ids.go), a range that
// must not hold the account's.
const DefaultUser = "portcullis-vpn"

// Account is an unprivileged uid and gid: the base account, or a worker's.
type Account = sysuser.Account

// ErrAccount is wrapped when the worker account is unusable.
var ErrAccount = errors.New("worker account")

// EnsureAccount returns the worker account, creating it (a system user with
// its own group, no home, no shell) when it is missing and the core runs
// as root. Root, uid 65534 and "nobody" are refused: a worker must run as
// an account nothing else uses.
func EnsureAccount(ctx context.Context, name string, log *slog.Logger) (Account, error) {
	a, err := sysuser.Ensure(ctx, name, "Portcullis VPN worker", log)
	if err != nil {
		return Account{}, fmt.Errorf("%w: %w", ErrAccount, err)
	}
	return a, nil
}
