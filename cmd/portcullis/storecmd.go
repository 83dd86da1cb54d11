package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/internal/cli"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// storeCommands are `portcullis store migrate|backup`: a single gateway's
// bbolt store copied into an etcd cluster, and an etcd cluster's state
// copied into a new bbolt file.
func (a *app) storeCommands() map[string]groupCommand {
	return map[string]groupCommand{
		"migrate": {"copy a bbolt store into etcd and verify it (the core must be stopped)", a.storeMigrate},
		"backup":  {"copy the etcd store into a new bbolt file and verify it", a.storeBackup},
	}
}

// etcdFlags are the flags that reach the cluster.
type etcdFlags struct {
	cert, key, ca, prefix *string
	timeout               *time.Duration
}

func addEtcdFlags(fs *flag.FlagSet) *etcdFlags {
	return &etcdFlags{
		cert:    fs.String("cert", "", "etcd client certificate `file` (with --key and --ca; required unless every endpoint is loopback)"),
		key:     fs.String("key", "", "etcd client key `file`"),
		ca:      fs.String("ca", "", "`file` of the CA the etcd members' certificates are checked against"),
		prefix:  fs.String("prefix", "/portcullis/", "the `prefix` of the gateways' keys in etcd"),
		timeout: fs.Duration("timeout", 10*time.Second, "bound on each etcd request"),
	}
}

func (f *etcdFlags) config(endpoints string) store.EtcdConfig {
	var eps []string
	for _, ep := range strings.Split(endpoints, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	return store.EtcdConfig{Endpoints: eps, CertFile: *f.cert, KeyFile: *f.key, CAFile: *f.ca, Prefix: *f.prefix,
		DialTimeout: *f.timeout, RequestTimeout: *f.timeout}
}

// storeLocation splits "bolt:PATH" or "etcd:ENDPOINTS" and checks the kind.
func storeLocation(flagName, value, kind string) (string, error) {
	k, rest, ok := strings.Cut(value, ":")
	if !ok || k != kind || rest == "" {
		return "", cli.Usagef("--%s %q: want %s:%s", flagName, value, kind, map[string]string{"bolt": "PATH", "etcd": "ENDPOINTS"}[kind])
	}
	return rest, nil
}

// progress prints a line every 1000 records and at the end.
func (a *app) progress() func(bucket string, done, total int) {
	last := 0
	return func(bucket string, done, total int) {
		if done-last >= 1000 || done == total {
			fmt.Fprintf(a.stderr, "copied %d/%d records (now in %s)\n", done, total, bucket)
			last = done
		}
	}
}

func (a *app) printCounts(counts []store.KeysIn) {
	total := 0
	for _, c := range counts {
		fmt.Fprintf(a.stdout, "%-14s %d\n", c.Bucket, c.Keys)
		total += c.Keys
	}
	fmt.Fprintf(a.stdout, "%-14s %d\n", "total", total)
}

func (a *app) storeMigrate(args []string) error {
	fs := cli.NewFlagSet("portcullis", "store migrate", "--from bolt:PATH --to etcd:ENDPOINTS [flags] --yes",
		"Copy every bucket of a gateway's bbolt store into an etcd cluster, then read the cluster back and verify it\n"+
			"key by key, and print the records per bucket. The core must be stopped (it holds the file's lock); the\n"+
			"file is opened read-only and never changed, so it must be at this build's schema version.\n"+
			"A destination prefix that already holds keys is refused unless --force, which DELETES every key under the\n"+
			"prefix first: the whole state of the gateways that use it (users, secrets, approvals, links, audit).\n"+
			"--force is refused while the prefix shows gateways using it: a link-election key (a gateway running now)\n"+
			"or records still held by an etcd lease (nonces, approvals, profile links written by a gateway serving\n"+
			"within their lifetime); stop every gateway of the prefix first, and add --force-live to delete anyway.\n"+
			"Records copied keep no etcd lease: their owners' pruning removes them when they expire.")
	from := fs.String("from", "", "the bbolt store: bolt:`PATH` (e.g. bolt:/var/lib/portcullis/portcullis.db)")
	to := fs.String("to", "", "the etcd cluster: etcd:`ENDPOINTS` (comma-separated client URLs)")
	ef := addEtcdFlags(fs)
	force := fs.Bool("force", false, "DELETE every key already under the destination prefix (the state of its gateways), then copy")
	forceLive := fs.Bool("force-live", false, "with --force: delete even when the prefix shows gateways using it (election keys, leased records)")
	yes := cli.Yes(fs)
	if err := cli.ParseNoArgs(fs, args, a.stdout, a.stderr); err != nil {
		return err
	}
	path, err := storeLocation("from", *from, "bolt")
	if err != nil {
		return err
	}
	endpoints, err := storeLocation("to", *to, "etcd")
	if err != nil {
		return err
	}
	if *forceLive && !*force {
		return cli.Usagef("--force-live goes with --force")
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("--from %s: %w", path, err)
	}
	cfg := ef.config(endpoints)
	if !*yes {
		what := fmt.Sprintf("copies %s into etcd %s under %q", path, endpoints, cfg.Prefix)
		if *force {
			what = fmt.Sprintf("DELETES every key under %q in etcd %s (the state of the gateways using that prefix), then %s",
				cfg.Prefix, endpoints, what)
		}
		return cli.Confirm(false, "store migrate", what)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	src, err := store.OpenBoltReadOnly(path, 2*time.Second)
	switch {
	case errors.Is(err, store.ErrLocked):
		return fmt.Errorf("%w: stop the core first", err)
	case errors.Is(err, store.ErrOldSchema):
		return fmt.Errorf("--from: %w; migrate never changes its source", err)
	case err != nil:
		return err
	}
	defer src.Close()
	use, err := store.InspectEtcdPrefix(ctx, cfg)
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	if use.Keys > 0 {
		if !*force {
			return fmt.Errorf("the etcd prefix %q already holds %d keys: refusing to copy over them (--force deletes them first)", cfg.Prefix, use.Keys)
		}
		if use.Live() && !*forceLive {
			return fmt.Errorf("the etcd prefix %q shows gateways using it: %d link-election keys (running gateways), "+
				"%d records held by an unexpired lease (e.g. %s): refusing to delete its %d keys; stop every gateway of the "+
				"prefix, and add --force-live to delete anyway", cfg.Prefix, use.Elections, use.Leased, use.Example, use.Keys)
		}
		deleted, err := store.DeleteEtcdPrefix(ctx, cfg)
		if err != nil {
			return fmt.Errorf("destination: %w", err)
		}
		fmt.Fprintf(a.stderr, "deleted %d keys under %q (--force)\n", deleted, cfg.Prefix)
	}
	snap, err := store.ReadSnapshot(ctx, src)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	dst, err := store.OpenEtcd(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer dst.Close()
	if err := snap.Write(ctx, dst, a.progress()); err != nil {
		return fmt.Errorf("copy into etcd (the copy is incomplete: run again with --force): %w", err)
	}
	counts, err := snap.Verify(ctx, dst)
	if err != nil {
		return err
	}
	a.printCounts(counts)
	fmt.Fprintf(a.stdout, "migrated %s into etcd %s (prefix %q): verified key by key\n", path, endpoints, cfg.Prefix)
	return nil
}

// backupBeforeLink, when set (tests), runs after the backup's temporary
// file is written, verified and synced, before it takes the target's name;
// an error it returns fails the backup there.
var backupBeforeLink func(tmp string) error

func (a *app) storeBackup(args []string) error {
	fs := cli.NewFlagSet("portcullis", "store backup", "--from etcd:ENDPOINTS --to bolt:PATH [flags]",
		"Copy the gateways' state from an etcd cluster (one consistent snapshot) into a new bbolt file, verify the file\n"+
			"key by key and print the records per bucket. An existing file is refused. The copy is written to a temporary\n"+
			"file in the same directory, synced, and only then given the target's name: a failed or killed backup never\n"+
			"leaves a partial file there. The file can be served by a single gateway, or copied back with 'store migrate'.")
	from := fs.String("from", "", "the etcd cluster: etcd:`ENDPOINTS` (comma-separated client URLs)")
	to := fs.String("to", "", "the new bbolt file: bolt:`PATH`")
	ef := addEtcdFlags(fs)
	if err := cli.ParseNoArgs(fs, args, a.stdout, a.stderr); err != nil {
		return err
	}
	endpoints, err := storeLocation("from", *from, "etcd")
	if err != nil {
		return err
	}
	path, err := storeLocation("to", *to, "bolt")
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("--to %s: the file exists: refusing to overwrite it", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--to %s: %w", path, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg := ef.config(endpoints)
	src, err := store.OpenEtcd(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer src.Close()
	snap, err := store.ReadSnapshot(ctx, src)
	if err != nil {
		return fmt.Errorf("read etcd: %w", err)
	}
	// The copy goes to a new file beside the target, which takes the
	// target's name only once written, verified and synced: a crash never
	// leaves a partial file under the target's name.
	tmpf, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*") // O_EXCL, 0600
	if err != nil {
		return fmt.Errorf("--to %s: %w", path, err)
	}
	tmp := tmpf.Name()
	_ = tmpf.Close()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp)
		}
	}()
	dst, err := store.OpenBolt(tmp, 2*time.Second)
	if err != nil {
		return err
	}
	open := true
	defer func() {
		if open {
			_ = dst.Close()
		}
	}()
	if err := snap.Write(ctx, dst, a.progress()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	counts, err := snap.Verify(ctx, dst)
	if err != nil {
		return err
	}
	open = false
	if err := dst.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if backupBeforeLink != nil {
		if err := backupBeforeLink(tmp); err != nil {
			return err
		}
	}
	if err := publishNew(tmp, path); err != nil {
		return fmt.Errorf("--to %s: %w", path, err)
	}
	ok = true
	a.printCounts(counts)
	fmt.Fprintf(a.stdout, "backed up etcd %s (prefix %q) into %s: verified key by key\n", endpoints, cfg.Prefix, path)
	return nil
}

// syncFile flushes path's contents to disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// publishNew gives the finished file tmp the name path, which must not
// exist (a hard link: it fails rather than replace a file that appeared
// meanwhile; a rename after a check where links are not supported), drops
// the name tmp and syncs the directory, so the new name survives a crash.
func publishNew(tmp, path string) error {
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("the file exists: refusing to overwrite it")
		}
		if _, serr := os.Lstat(path); serr == nil {
			return fmt.Errorf("the file exists: refusing to overwrite it")
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	} else if err := os.Remove(tmp); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
