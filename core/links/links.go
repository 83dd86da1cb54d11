// Package links is the gateway side of the IPsec links: the stored links
// with their locations and hosts, the link and host secrets, the admin
// routes that edit them and the signed agent API (a host's report in, its
// sealed state out). The elections themselves are linkmgr's, as is the
// hosts' live state: their last reports and the last 20 events of each of
// their connections, kept in memory only (lost when the core restarts).
//
// It owns three buckets and no other package touches them:
//
//	links         link_id -> linkmgr.Link
//	link_names    name -> link_id (unique link names)
//	link_secrets  link/<link_id> -> the link's PSK secret (base64)
//	              host/<host_id> -> the host's secret, as in its URI, and its link
//	              live/<host_id>, active/<link_id> -> a cluster's shared link state (cluster.go)
package links

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/linkmgr"
)

// Keys in the link_secrets bucket.
func linkSecretKey(linkID string) string { return "link/" + linkID }
func hostSecretKey(hostID string) string { return "host/" + hostID }

// hostSecret is a host's secret, as in its URI, and its link.
type hostSecret struct {
	LinkID string `json:"link_id"`
	Secret string `json:"secret"`
}

// Service serves the link routes and keeps the elections in step with the
// stored links.
type Service struct {
	st  store.Store
	log *slog.Logger
	now func() time.Time
	// gateways are the public URLs of the gateway, written into host URIs.
	gateways []string
	// trusted are the proxies whose forwarded-for address is a report's
	// source.
	trusted []netip.Prefix
	mgr     *linkmgr.Manager
	// kind reads links in their API form: the stored link and the
	// election's view of its hosts.
	kind rpc.Kind[linkmgr.Link, api.Link]

	mu sync.Mutex
	// cache is the stored links, for the ticker.
	cache []linkmgr.Link
	// cluster is set when the store is shared (cluster.go): a copy of
	// Config.Cluster.
	cluster *Cluster
}

// Config is what the link service is built from.
type Config struct {
	Store store.Store
	Log   *slog.Logger
	// Gateways are the gateway's public URLs (https://host:port), written
	// into host URIs.
	Gateways []string
	// Trusted are the proxies through which a report comes from the last
	// address they forward.
	Trusted []netip.Prefix
	// Cluster, when set, makes the service a member of a cluster sharing
	// the store (cluster.go): reports go into the shared store, and its
	// elections follow the leader's until Cluster.Lead says this gateway
	// leads (Follow). Nil: the gateway is alone and elects itself.
	Cluster *Cluster
}

// New returns the link service, complete: a cluster member follows from
// the start (before its first Sync and before the routes serve).
func New(cfg Config) *Service {
	log := logging.OrDiscard(cfg.Log)
	s := &Service{st: cfg.Store, log: log, now: time.Now, gateways: cfg.Gateways, trusted: cfg.Trusted, mgr: linkmgr.NewManager(log)}
	s.kind = rpc.Kind[linkmgr.Link, api.Link]{Bucket: store.BucketLinks, What: "link", ToAPI: s.view}
	if c := cfg.Cluster; c != nil {
		s.cluster = &Cluster{Name: c.Name, Lead: c.Lead}
		s.mgr.SetFollowing(true)
	}
	return s
}

// Register binds the link routes.
func (s *Service) Register(m *rpc.Mux) {
	rpc.Handle(m, api.RouteLinkList, s.list)
	rpc.Handle(m, api.RouteLinkCreate, s.create)
	rpc.Handle(m, api.RouteLinkGet, s.get)
	rpc.Handle(m, api.RouteLinkUpdate, s.update)
	rpc.Handle(m, api.RouteLinkDelete, s.delete)
	rpc.Handle(m, api.RouteLocationCreate, s.createLocation)
	rpc.Handle(m, api.RouteLocationUpdate, s.updateLocation)
	rpc.Handle(m, api.RouteLocationDelete, s.deleteLocation)
	rpc.Handle(m, api.RouteHostCreate, s.createHost)
	rpc.Handle(m, api.RouteHostUpdate, s.updateHost)
	rpc.Handle(m, api.RouteHostDelete, s.deleteHost)
	rpc.Handle(m, api.RouteHostURI, s.hostURI)
	rpc.Handle(m, api.RouteLocationRouterConfig, s.routerConfig)
	rpc.Handle(m, api.RouteLinkStateReport, s.report)
	rpc.Handle(m, api.RouteLinkStateStop, s.stop)
}

// Sync reloads the stored links into the elections.
func (s *Service) Sync(ctx context.Context) error {
	var all []linkmgr.Link
	err := s.st.View(ctx, func(tx store.Tx) (err error) {
		all, err = store.ScanJSON[linkmgr.Link](tx, store.BucketLinks, "")
		return err
	})
	if err != nil {
		return err
	}
	s.mgr.Sync(all)
	s.mu.Lock()
	s.cache = all
	s.mu.Unlock()
	return nil
}

// Tick re-evaluates every election (timeouts, back-offs).
func (s *Service) Tick() {
	s.mu.Lock()
	all := s.cache
	s.mu.Unlock()
	s.mgr.Tick(all, s.now())
}

// view is a link in its API form, with its hosts' election state.
func (s *Service) view(l *linkmgr.Link) api.Link { return s.mgr.View(l, s.now()) }
