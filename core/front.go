package core

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"syscall"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/internal/listenfds"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/sysuser"
)

// frontIdentity is who the front runs as.
type frontIdentity struct {
	name     string
	uid, gid int
	// cred is nil when the front runs as the core's own user.
	cred *syscall.Credential
}

// DefaultFrontUser is the account the front runs as when the core is root
// and web.user is not set (created at start when missing).
const DefaultFrontUser = "portcullis-web"

// resolveFrontUser returns who the front runs as: the core's own user when
// the core is not root (it cannot switch), else web.user (default
// portcullis-web), created when missing. nobody, root and the VPN workers'
// account are refused: every process sharing the front's uid could signal
// it and, in the moment before the front makes itself non-dumpable, read
// its memory (the TLS key, the internal token).
func resolveFrontUser(ctx context.Context, cfg *Checked, log *slog.Logger) (*frontIdentity, error) {
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
		name = DefaultFrontUser
	}
	if name == vpn.DefaultUser {
		return nil, fmt.Errorf("config: web.user: %q is the VPN workers' account; the front needs an account of its own (%s)", name, DefaultFrontUser)
	}
	a, err := sysuser.Ensure(ctx, name, "Portcullis web front", log)
	if errors.Is(err, sysuser.ErrShared) {
		return nil, fmt.Errorf("config: web.user: %q is shared with other processes (root or nobody): the front needs an account of its own, such as %s, which the core creates when it is missing: %w",
			name, DefaultFrontUser, err)
	} else if err != nil {
		return nil, fmt.Errorf("config: web.user: %w", err)
	}
	return &frontIdentity{name: a.Name, uid: a.UID, gid: a.GID,
		cred: &syscall.Credential{Uid: uint32(a.UID), Gid: uint32(a.GID), Groups: []uint32{}}}, nil
}

// makeDataDir creates the data directory, mode 0700, and its missing
// parents, 0755.
func makeDataDir(dir string) error {
	if err := mkdirParents(dir); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// mkdirParents creates the missing parents of dir, each mode 0755 whatever
// the umask: the front must search every directory above the runtime
// directory to reach its socket, and the data directory's parents are
// often the same (./var of make run). Directories that exist are left as
// they are (prepareRuntimeDir checks that the front gets through them).
func mkdirParents(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	var missing []string
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, p)
		if p == filepath.Dir(p) {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		err := os.Mkdir(missing[i], 0o755)
		if errors.Is(err, fs.ErrExist) {
			continue // made meanwhile by someone else: theirs
		} else if err != nil {
			return err
		}
		if err := os.Chmod(missing[i], 0o755); err != nil {
			return err
		}
	}
	return nil
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
	if err := mkdirParents(dir); err != nil {
		return fmt.Errorf("config: runtime_dir: %w", err)
	}
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

// frontListeners returns the front's listening sockets: those systemd
// passed (by name), else web.listen and web.redirect_listen bound here.
func frontListeners(cfg *Checked) (httpsLn, httpLn net.Listener, err error) {
	inherited, err := listenfds.ByName()
	if err != nil {
		return nil, nil, err
	}
	if inherited != nil {
		if inherited[api.ListenerHTTPS] == nil {
			return nil, nil, fmt.Errorf("systemd passed sockets but none named %q", api.ListenerHTTPS)
		}
		for name, ln := range inherited {
			if !listening(ln) {
				return nil, nil, fmt.Errorf("the socket systemd passed as %q %w", name, errNotListening)
			}
		}
		return inherited[api.ListenerHTTPS], inherited[api.ListenerHTTP], nil
	}
	if httpsLn, err = net.Listen("tcp", cfg.Web.Listen); err != nil {
		return nil, nil, fmt.Errorf("config: web.listen: %w", err)
	}
	if cfg.Web.RedirectListen != "" {
		if httpLn, err = net.Listen("tcp", cfg.Web.RedirectListen); err != nil {
			httpsLn.Close()
			return nil, nil, fmt.Errorf("config: web.redirect_listen: %w", err)
		}
	}
	return httpsLn, httpLn, nil
}

// buildFrontSpec is how the supervisor starts the front: its executable,
// user and bootstrap, and its copies of the listeners.
func buildFrontSpec(cfg *Checked, binary, coreSock string, httpsLn, httpLn net.Listener, token, certPEM, keyPEM []byte, front *frontIdentity) (frontSpec, error) {
	spec := frontSpec{
		Binary:     binary,
		Args:       []string{"--core-socket", coreSock},
		Credential: front.cred,
		Bootstrap:  frontBootstrap(cfg, token, certPEM, keyPEM, addrPort(httpsLn.Addr().String())),
	}
	for _, l := range []struct {
		ln   net.Listener
		name string
	}{{httpsLn, api.ListenerHTTPS}, {httpLn, api.ListenerHTTP}} {
		if l.ln == nil {
			continue
		}
		tl, ok := l.ln.(*net.TCPListener)
		if !ok {
			return spec, fmt.Errorf("%s listener is %T, not TCP", l.name, l.ln)
		}
		f, err := tl.File()
		if err != nil {
			return spec, fmt.Errorf("%s listener: %w", l.name, err)
		}
		spec.Listeners = append(spec.Listeners, f)
		spec.Names = append(spec.Names, l.name)
	}
	return spec, nil
}

// frontBootstrap is what the front gets from the core: through the pipe
// the supervisor passes, or on the core socket (web.external).
func frontBootstrap(cfg *Checked, token, certPEM, keyPEM []byte, httpsPort int) api.Bootstrap {
	return api.Bootstrap{Token: hex.EncodeToString(token), TLSCertPEM: string(certPEM), TLSKeyPEM: string(keyPEM),
		HTTPSPort: httpsPort, ForwardedHeader: cfg.Approval.ForwardedHeader, LogLevel: cfg.LogLevel,
		LogFormat: cfg.LogFormat, MaxConnections: cfg.Web.MaxConnections, GOMAXPROCS: cfg.Web.GOMAXPROCS}
}
