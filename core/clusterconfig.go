package core

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/config"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// The store backends [store] backend names.
const (
	BackendBolt = "bolt" // the embedded bbolt file in data_dir (one gateway)
	BackendEtcd = "etcd" // an etcd cluster shared by several gateways (docs/cluster.md)
)

// StoreConfig is the [store] table: where the core keeps its state.
type StoreConfig struct {
	// Backend is "bolt" (default) or "etcd".
	Backend string `toml:"backend"`
	// Endpoints are the etcd members' client URLs (etcd only).
	Endpoints []string `toml:"endpoints"`
	// CertFile, KeyFile and CAFile are the TLS client certificate, its key
	// and the CA of the members' certificates (all three or none; none only
	// with loopback http endpoints).
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	CAFile   string `toml:"ca_file"`
	// Prefix starts every key the gateways of one cluster write.
	Prefix string `toml:"prefix"`
	// DialTimeout bounds connecting to the cluster, RequestTimeout each
	// read or commit (past it: 503 store_unavailable).
	DialTimeout    config.Duration `toml:"dial_timeout"`
	RequestTimeout config.Duration `toml:"request_timeout"`
	// MaxTxnOps is the members' --max-txn-ops: the most operations the
	// store puts in one etcd transaction.
	MaxTxnOps config.Int `toml:"max_txn_ops"`
}

// ClusterConfig is the [cluster] table.
type ClusterConfig struct {
	// Name is this gateway's name in its cluster (servers name the
	// gateways that run them); default the host name.
	Name string `toml:"name"`
}

// StoreSettings is the checked [store] table.
type StoreSettings struct {
	Backend string
	Etcd    store.EtcdConfig // etcd only
}

// ClusterSettings is the checked [cluster] table.
type ClusterSettings struct {
	// Name is this gateway's name (never empty).
	Name string
}

// Clustered says whether the gateway shares its store with others.
func (c *Checked) Clustered() bool { return c.Store.Backend == BackendEtcd }

// checkCluster checks [store] and [cluster] together: etcd needs its
// endpoints, its TLS files (or loopback http) and a gateway name.
func (c Config) checkCluster() (StoreSettings, ClusterSettings, error) {
	bad := func(key, format string, a ...any) error {
		return &config.Error{Key: key, Err: fmt.Errorf(format, a...)}
	}
	s := c.Store
	out := StoreSettings{Backend: s.Backend}
	cs := ClusterSettings{Name: c.Cluster.Name}
	if cs.Name == "" {
		host, err := os.Hostname()
		if err == nil {
			cs.Name = strings.ToLower(strings.SplitN(host, ".", 2)[0])
		}
	}
	switch s.Backend {
	case BackendBolt:
		if len(s.Endpoints) > 0 {
			return out, cs, bad("store.endpoints", "set, but store.backend is %q (set store.backend = \"etcd\")", s.Backend)
		}
		if cs.Name == "" || !api.IsGatewayName(cs.Name) {
			// A single gateway never needs its name: fall back quietly.
			cs.Name = "gateway"
		}
		return out, cs, nil
	case BackendEtcd:
	default:
		return out, cs, bad("store.backend", "%q is not \"bolt\" or \"etcd\"", s.Backend)
	}
	if c.Cluster.Name == "" && cs.Name == "" {
		return out, cs, bad("cluster.name", "must be set with store.backend = \"etcd\" (the host name is unknown)")
	}
	if !api.IsGatewayName(cs.Name) {
		key := "cluster.name"
		if c.Cluster.Name == "" {
			return out, cs, bad(key, "the host name %q is not a valid gateway name: set cluster.name (lower-case letters, digits, '.', '_', '-'; at most 63)", cs.Name)
		}
		return out, cs, bad(key, "%q is not a valid gateway name (lower-case letters, digits, '.', '_', '-'; at most 63)", cs.Name)
	}
	if len(s.Endpoints) == 0 {
		return out, cs, bad("store.endpoints", "must list the etcd members' client URLs with store.backend = \"etcd\"")
	}
	tls := s.CertFile != "" || s.KeyFile != "" || s.CAFile != ""
	if tls && (s.CertFile == "" || s.KeyFile == "" || s.CAFile == "") {
		return out, cs, bad("store.cert_file", "store.cert_file, store.key_file and store.ca_file must be set together")
	}
	for _, f := range []struct{ key, path string }{{"store.cert_file", s.CertFile}, {"store.key_file", s.KeyFile}, {"store.ca_file", s.CAFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return out, cs, bad(f.key, "%v", err)
		}
	}
	for i, e := range s.Endpoints {
		if err := checkEndpoint(e, tls); err != nil {
			return out, cs, bad(fmt.Sprintf("store.endpoints[%d]", i), "%v", err)
		}
	}
	if !strings.HasPrefix(s.Prefix, "/") || !strings.HasSuffix(s.Prefix, "/") || strings.ContainsAny(s.Prefix, " \t\n") {
		return out, cs, bad("store.prefix", "%q must start and end with '/' (e.g. \"/portcullis/\")", s.Prefix)
	}
	out.Etcd = store.EtcdConfig{Endpoints: append([]string(nil), s.Endpoints...), CertFile: s.CertFile, KeyFile: s.KeyFile,
		CAFile: s.CAFile, Prefix: s.Prefix, DialTimeout: s.DialTimeout.D, RequestTimeout: s.RequestTimeout.D, MaxTxnOps: s.MaxTxnOps.N}
	return out, cs, nil
}

// checkEndpoint accepts https://host:port, and http://host:port only for a
// loopback host without TLS (a test cluster on this machine).
func checkEndpoint(e string, tls bool) error {
	u, err := url.Parse(e)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return fmt.Errorf("%q is not a URL scheme://host:port", e)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		return fmt.Errorf("%q has no port (etcd's client port is usually 2379)", e)
	}
	switch u.Scheme {
	case "https":
		if !tls {
			return fmt.Errorf("%q is https but store.cert_file, store.key_file and store.ca_file are not set", e)
		}
	case "http":
		if tls {
			return fmt.Errorf("%q is plain http while TLS files are set: use https", e)
		}
		if a, err := netip.ParseAddr(u.Hostname()); (err != nil && u.Hostname() != "localhost") || (err == nil && !a.IsLoopback()) {
			return fmt.Errorf("%q is plain http to another host: the store carries secrets, use https with a client certificate", e)
		}
	default:
		return fmt.Errorf("%q is not http or https", e)
	}
	return nil
}
