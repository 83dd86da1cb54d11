package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
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
			"key by key, and print the records per bucket. The core must be stopped (it holds the file's lock).\n"+
			"A destination prefix that already holds keys is refused unless --force, which deletes them first.\n"+
			"Records copied keep no etcd lease: their owners' pruning removes them when they expire.")
	from := fs.String("from", "", "the bbolt store: bolt:`PATH` (e.g. bolt:/var/lib/portcullis/portcullis.db)")
	to := fs.String("to", "", "the etcd cluster: etcd:`ENDPOINTS` (comma-separated client URLs)")
	ef := addEtcdFlags(fs)
	force := fs.Bool("force", false, "delete the keys already under the destination prefix, then copy")
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
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("--from %s: %w", path, err)
	}
	cfg := ef.config(endpoints)
	if err := cli.Confirm(*yes, "store migrate", fmt.Sprintf("copies %s into etcd %s under %q", path, endpoints, cfg.Prefix)); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	src, err := store.OpenBolt(path, 2*time.Second)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w: stop the core first", err)
	} else if err != nil {
		return err
	}
	defer src.Close()
	n, err := store.EtcdPrefixKeys(ctx, cfg)
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	if n > 0 {
		if !*force {
			return fmt.Errorf("the etcd prefix %q already holds %d keys: refusing to copy over them (--force deletes them first)", cfg.Prefix, n)
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

func (a *app) storeBackup(args []string) error {
	fs := cli.NewFlagSet("portcullis", "store backup", "--from etcd:ENDPOINTS --to bolt:PATH [flags]",
		"Copy the gateways' state from an etcd cluster (one consistent snapshot) into a new bbolt file, verify the file\n"+
			"key by key and print the records per bucket. An existing file is refused. The file can be served by a\n"+
			"single gateway, or copied back with 'store migrate'.")
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
	dst, err := store.OpenBolt(path, 2*time.Second)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		_ = dst.Close()
		if !ok {
			_ = os.Remove(path) // never leave a partial backup behind
		}
	}()
	if err := snap.Write(ctx, dst, a.progress()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	counts, err := snap.Verify(ctx, dst)
	if err != nil {
		return err
	}
	ok = true
	a.printCounts(counts)
	fmt.Fprintf(a.stdout, "backed up etcd %s (prefix %q) into %s: verified key by key\n", endpoints, cfg.Prefix, path)
	return nil
}
