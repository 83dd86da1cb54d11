package core

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/core/audit"
	"github.com/portcullis-gw/portcullis/core/links"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/notify"
)

// Version is the build's version string.
var Version = "dev"

// Deps are what a Service is built from. Everything in them is built
// first (store, admin service, approver on the store's directory), so the
// service is complete once NewService returns.
type Deps struct {
	Store store.Store
	Admin *admin.Service
	Log   *slog.Logger
	// SyncHosts are the gateway's public URLs, written into profiles and
	// link host URIs.
	SyncHosts []string
	// Approver decides the approval routes; nil answers them 503.
	Approver *dynfw.Approver
	// NAT masquerades the tunnel networks of servers with NAT on; nil
	// without a firewall.
	NAT dynfw.NAT
	// Window is the accepted clock difference of signed profile syncs (0:
	// dynfw.DefaultWindow); the approvals' window.
	Window time.Duration
	// InitialAdminFile is where the core wrote the initial admin's password
	// (under systemd); it is removed when that password is changed.
	InitialAdminFile string
	// FrontPort is the port the front listens on (0: unknown). When
	// SyncHosts is empty (the front listens on every address), profiles
	// name https://<server host>:<FrontPort> as their sync hosts.
	FrontPort int
	// TrustedProxies are the peers whose forwarded-for address is
	// believed (approvals and link host reports).
	TrustedProxies []netip.Prefix
	// RedirectPort is the port of the front's plain-HTTP redirect
	// listener (0: none). No TCP server may use either.
	RedirectPort int
	// AllowPort22 lets a dynamic-firewall server use TCP 22
	// (firewall.allow_port_22).
	AllowPort22 bool
	// Notice is the notification state (notice.go); nil answers the
	// notification routes 503 (tests).
	Notice *notify.Poller
	// Placement says which servers this gateway runs (placement.go): the
	// zero value, a gateway alone, runs them all.
	Placement Placement
	// LinkLeader is the cluster's link election as this gateway takes
	// part in it (linkleader.go): set, the link service is a cluster
	// member named Placement.Name; nil, the gateway elects alone.
	LinkLeader links.Leadership
	// Workers is where the VPN workers run (workers.go); nil: none, the
	// worker routes answer 503 (the core is not root; tests).
	Workers *WorkerSetup
}

// Service implements the routes of the table on top of the store.
type Service struct {
	st        store.Store
	admin     *admin.Service
	log       *slog.Logger
	now       func() time.Time
	syncHosts []string
	startedAt time.Time
	approver  *dynfw.Approver
	nat       dynfw.NAT
	natMu     sync.Mutex // one NAT reconcile at a time (core/nat.go)
	ipForward string     // net.ipv4.ip_forward's file ("": the real one; tests)
	links     *links.Service
	window    time.Duration
	frontPort int
	// initialAdminFile: see Deps.InitialAdminFile.
	initialAdminFile string
	// redirectPort and allowPort22: see Deps (gatewayports.go).
	redirectPort int
	allowPort22  bool
	// guardMu orders the updates of the guarded ports (firewall.go).
	guardMu sync.Mutex
	// place says which servers this gateway runs (placement.go).
	place Placement
	// trail is the audit trail (audittrail.go); failedStarts keeps
	// workers retrying a failed start from filling it.
	trail        *audit.Log
	failedStarts failedStarts

	// VPN workers (workers.go): built with the service, started by the
	// daemon; nil when the core cannot run them (not root). revoker takes
	// a user's firewall elements away when it is disabled or deleted.
	workers *vpn.Manager
	// sweepMu orders the passes that end revoked sessions
	// (sessionsweep.go).
	sweepMu sync.Mutex
	// notice is the notification state (notice.go): nil in tests without
	// one.
	notice *notify.Poller
	// noticeApplyErr is why the state in force is not applied (nil: it
	// is), set by the daemon's applier (notice.go).
	noticeApplyErr atomic.Pointer[string]
	revoker        userRevoker

	orgs    rpc.Kind[orgRecord, api.Organization]
	users   rpc.Kind[userRecord, api.User]
	servers rpc.Kind[serverRecord, api.Server]
}

// revokerOf is the approver's user revocation, or none without approvals.
func revokerOf(a *dynfw.Approver) userRevoker {
	if a == nil {
		return noRevoker{}
	}
	return approverRevoker{a}
}

// NewService returns the service, complete: nothing is set on it
// afterwards.
func NewService(d Deps) *Service {
	log := logging.OrDiscard(d.Log)
	if d.Window <= 0 {
		d.Window = dynfw.DefaultWindow
	}
	lc := links.Config{Store: d.Store, Log: log, Gateways: d.SyncHosts, Trusted: d.TrustedProxies}
	if d.LinkLeader != nil {
		lc.Cluster = &links.Cluster{Name: d.Placement.Name, Lead: d.LinkLeader}
	}
	s := &Service{st: d.Store, admin: d.Admin, log: log, now: time.Now, syncHosts: d.SyncHosts,
		startedAt: time.Now(), approver: d.Approver, nat: d.NAT, links: links.New(lc),
		window: d.Window, frontPort: d.FrontPort, redirectPort: d.RedirectPort, allowPort22: d.AllowPort22,
		revoker: revokerOf(d.Approver), initialAdminFile: d.InitialAdminFile, trail: audit.New(d.Store, log),
		notice: d.Notice, place: d.Placement,
		orgs:    rpc.Kind[orgRecord, api.Organization]{Bucket: store.BucketOrgs, What: "organization", ToAPI: (*orgRecord).toAPI},
		users:   rpc.Kind[userRecord, api.User]{Bucket: store.BucketUsers, What: "user", ToAPI: (*userRecord).toAPI},
		servers: rpc.Kind[serverRecord, api.Server]{Bucket: store.BucketServers, What: "server", ToAPI: (*serverRecord).toAPI},
	}
	if d.Workers != nil {
		// The manager reports to the service (its audit trail): built
		// once the service is, before NewService returns.
		s.workers = s.newWorkers(*d.Workers)
	}
	return s
}

// NewDirectory returns the dynfw view of users and servers on the store.
func NewDirectory(st store.Store) dynfw.Directory { return newDirectory(st) }

// Links returns the link service (its elections are synced and ticked by
// the daemon).
func (s *Service) Links() *links.Service { return s.links }

// Mux binds every route of the table to its handler. It is the core's
// table of contents: each handler's file is named after its domain.
func (s *Service) Mux() *rpc.Mux {
	m := rpc.NewMux()
	// session.go
	rpc.Handle(m, api.RouteSessionLogin, s.login)
	rpc.Handle(m, api.RouteSessionLogout, s.logout)
	rpc.Handle(m, api.RoutePasswordChange, s.changePassword)
	rpc.Handle(m, api.RouteStatus, s.status)
	// orgs.go
	rpc.Handle(m, api.RouteOrgList, s.listOrgs)
	rpc.Handle(m, api.RouteOrgCreate, s.createOrg)
	rpc.Handle(m, api.RouteOrgGet, s.getOrg)
	rpc.Handle(m, api.RouteOrgUpdate, s.updateOrg)
	rpc.Handle(m, api.RouteOrgDelete, s.deleteOrg)
	// users.go
	rpc.Handle(m, api.RouteUserList, s.listUsers)
	rpc.Handle(m, api.RouteUserCreate, s.createUser)
	rpc.Handle(m, api.RouteUserGet, s.getUser)
	rpc.Handle(m, api.RouteUserUpdate, s.updateUser)
	rpc.Handle(m, api.RouteUserDelete, s.deleteUser)
	// profiles.go
	rpc.Handle(m, api.RouteUserProfile, s.downloadProfile)
	// servers.go
	rpc.Handle(m, api.RouteServerList, s.listServers)
	rpc.Handle(m, api.RouteServerCreate, s.createServer)
	rpc.Handle(m, api.RouteServerGet, s.getServer)
	rpc.Handle(m, api.RouteServerUpdate, s.updateServer)
	rpc.Handle(m, api.RouteServerDelete, s.deleteServer)
	// workerroutes.go
	rpc.Handle(m, api.RouteServerStart, s.startServer)
	rpc.Handle(m, api.RouteServerStop, s.stopServer)
	rpc.Handle(m, api.RouteServerRestart, s.restartServer)
	rpc.Handle(m, api.RouteServerStatus, s.serverStatus)
	rpc.Handle(m, api.RouteServerClients, s.serverClients)
	// noticeroutes.go
	rpc.Handle(m, api.RouteNotificationGet, s.getNotification)
	rpc.Handle(m, api.RouteNotificationOverride, s.overrideNotification)
	rpc.Handle(m, api.RouteNotificationClear, s.clearNotification)
	// approvals.go
	rpc.Handle(m, api.RouteApprovalOVPN, s.approve)
	rpc.Handle(m, api.RouteApprovalOVPNWait, s.approveWait)
	rpc.Handle(m, api.RouteApprovalList, s.listApprovals)
	// profiles.go, profilelinks.go, profilesync.go: the Pritunl Client's
	// .tar, temporary links and sync
	rpc.Handle(m, api.RouteUserProfileTar, s.downloadTar)
	rpc.Handle(m, api.RouteUserProfileTarServer, s.downloadTarServer)
	rpc.Handle(m, api.RouteUserProfileLink, s.createProfileLink)
	rpc.Handle(m, api.RouteProfileLinkGet, s.useProfileLink)
	rpc.Handle(m, api.RouteProfileSync, s.syncProfile)
	// audittrail.go
	rpc.Handle(m, api.RouteAuditList, s.listAudit)
	// core/links
	s.links.Register(m)
	return m
}

// NewAPIServer returns the core socket's server for the service's routes,
// configured by cfg (who is served: uids, the front's pid, the token; the
// gate; the internal paths): the service authenticates the admin sessions
// and records the audited calls in its audit trail.
func NewAPIServer(cfg rpc.Config, svc *Service) (*rpc.Server, error) {
	cfg.Admin, cfg.Audit = svc.admin, svc.auditCall
	return rpc.NewServer(cfg, svc.Mux())
}
