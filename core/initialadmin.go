package core

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/core/audit"
)

// InitialAdminFile is the file in the data directory the initial admin's
// password is written to when the core runs under systemd (mode 0600, the
// core's user); it is removed when that password is changed.
const InitialAdminFile = "initial-admin-password"

// ensureAdmin creates the first admin on the first run, once everything
// that can fail has not, and reveals its password once, never to the log:
// on the terminal, or under systemd (where stdout is the journal) in a
// root-only file in the data directory whose path alone is logged. The
// password must be changed at the first login.
func (d *daemon) ensureAdmin(ctx context.Context) error {
	file := ""
	if underSystemd() {
		file = filepath.Join(d.cfg.DataDir, InitialAdminFile)
	}
	pw, created, err := d.adm.EnsureInitialAdmin(ctx, func(pw string) error {
		if file != "" {
			return writeFileAtomic(file, fmt.Appendf(nil, "# The first Portcullis admin. Log in and change the password (required);\n# the file goes when it is changed.\nusername=%s\npassword=%s\n",
				admin.InitialUsername, pw), 0o600)
		}
		if d.rio.Out != nil {
			fmt.Fprintf(d.rio.Out, "initial admin: username=%s password=%s (it must be changed at the first login)\n", admin.InitialUsername, pw)
		}
		return nil
	})
	if err != nil || !created {
		return err
	}
	// The password's argon2id hash took 64 MiB, garbage now: returned at
	// once, not held until the runtime's scavenger gets to it (once in a
	// gateway's life).
	debug.FreeOSMemory()
	d.initial = &api.AdminCredentials{Username: admin.InitialUsername, Password: pw}
	d.svc.record(ctx, auditEntry{Actor: audit.ActorSystem, Action: "admin.create", Target: "username=" + admin.InitialUsername,
		Detail: "the initial admin (password to change at the first login)"})
	if file != "" {
		d.initialFile = file
		d.log.Warn("initial admin created: its password is in a file only root can read; log in and change it (required)",
			"username", admin.InitialUsername, "file", file)
	}
	return nil
}

// underSystemd reports whether the core runs as a systemd service, whose
// stdout is the journal: INVOCATION_ID is set for every unit's processes,
// NOTIFY_SOCKET for Type=notify ones.
func underSystemd() bool {
	return os.Getenv("INVOCATION_ID") != "" || os.Getenv("NOTIFY_SOCKET") != ""
}
