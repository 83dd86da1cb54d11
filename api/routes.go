package api

import "net/http"

// The routes, each bound to its request and response types. The core
// registers its handlers through these values; the front iterates Routes.
var (
	// Sessions.
	RouteSessionLogin = endpoint[LoginRequest, SessionResponse](Route{Name: "session.login",
		Method: http.MethodPost, Pattern: "/auth/session", Auth: AuthPublic, BodyLimit: 2 << 10, SetsSession: true})
	RouteSessionLogout = endpoint[NoBody, OKResponse](Route{Name: "session.logout",
		Method: http.MethodDelete, Pattern: "/auth/session", Auth: AuthAdmin, SetsSession: true, BeforePasswordChange: true})
	RoutePasswordChange = endpoint[PasswordChange, SessionResponse](Route{Name: "session.password",
		Method: http.MethodPost, Pattern: "/auth/password", Auth: AuthAdmin, BodyLimit: 2 << 10, BeforePasswordChange: true})
	RouteStatus = endpoint[NoBody, StatusResponse](Route{Name: "status",
		Method: http.MethodGet, Pattern: "/status", Auth: AuthAdmin})

	// Organizations.
	RouteOrgList = endpoint[NoBody, OrganizationList](Route{Name: "org.list",
		Method: http.MethodGet, Pattern: "/organization", Auth: AuthAdmin})
	RouteOrgCreate = endpoint[OrganizationCreate, Organization](Route{Name: "org.create",
		Method: http.MethodPost, Pattern: "/organization", Auth: AuthAdmin, BodyLimit: 4 << 10})
	RouteOrgGet = endpoint[NoBody, Organization](Route{Name: "org.get",
		Method: http.MethodGet, Pattern: "/organization/{org_id}", Auth: AuthAdmin})
	RouteOrgUpdate = endpoint[OrganizationUpdate, Organization](Route{Name: "org.update",
		Method: http.MethodPut, Pattern: "/organization/{org_id}", Auth: AuthAdmin, BodyLimit: 4 << 10})
	RouteOrgDelete = endpoint[NoBody, OKResponse](Route{Name: "org.delete",
		Method: http.MethodDelete, Pattern: "/organization/{org_id}", Auth: AuthAdmin})

	// Users.
	RouteUserList = endpoint[NoBody, UserList](Route{Name: "user.list",
		Method: http.MethodGet, Pattern: "/organization/{org_id}/user", Auth: AuthAdmin, ResponseLimit: 8 << 20})
	RouteUserCreate = endpoint[UserCreate, User](Route{Name: "user.create",
		Method: http.MethodPost, Pattern: "/organization/{org_id}/user", Auth: AuthAdmin, BodyLimit: 4 << 10})
	RouteUserGet = endpoint[NoBody, User](Route{Name: "user.get",
		Method: http.MethodGet, Pattern: "/organization/{org_id}/user/{user_id}", Auth: AuthAdmin})
	RouteUserUpdate = endpoint[UserUpdate, User](Route{Name: "user.update",
		Method: http.MethodPut, Pattern: "/organization/{org_id}/user/{user_id}", Auth: AuthAdmin, BodyLimit: 4 << 10})
	RouteUserDelete = endpoint[NoBody, OKResponse](Route{Name: "user.delete",
		Method: http.MethodDelete, Pattern: "/organization/{org_id}/user/{user_id}", Auth: AuthAdmin})
	RouteUserProfile = endpoint[NoBody, Profile](Route{Name: "user.profile",
		Method: http.MethodPost, Pattern: "/organization/{org_id}/user/{user_id}/profile/{server_id}", Auth: AuthAdmin})

	// Servers.
	RouteServerList = endpoint[NoBody, ServerList](Route{Name: "server.list",
		Method: http.MethodGet, Pattern: "/server", Auth: AuthAdmin})
	RouteServerCreate = endpoint[ServerCreate, Server](Route{Name: "server.create",
		Method: http.MethodPost, Pattern: "/server", Auth: AuthAdmin, BodyLimit: 8 << 10})
	RouteServerGet = endpoint[NoBody, Server](Route{Name: "server.get",
		Method: http.MethodGet, Pattern: "/server/{server_id}", Auth: AuthAdmin})
	RouteServerUpdate = endpoint[ServerUpdate, Server](Route{Name: "server.update",
		Method: http.MethodPut, Pattern: "/server/{server_id}", Auth: AuthAdmin, BodyLimit: 8 << 10})
	RouteServerDelete = endpoint[NoBody, OKResponse](Route{Name: "server.delete",
		Method: http.MethodDelete, Pattern: "/server/{server_id}", Auth: AuthAdmin})

	// VPN workers: one OpenVPN process per started server (docs/vpn.md).
	RouteServerStart = endpoint[NoBody, ServerStatus](Route{Name: "server.start",
		Method: http.MethodPost, Pattern: "/server/{server_id}/start", Auth: AuthAdmin})
	RouteServerStop = endpoint[NoBody, ServerStatus](Route{Name: "server.stop",
		Method: http.MethodPost, Pattern: "/server/{server_id}/stop", Auth: AuthAdmin})
	RouteServerRestart = endpoint[NoBody, ServerStatus](Route{Name: "server.restart",
		Method: http.MethodPost, Pattern: "/server/{server_id}/restart", Auth: AuthAdmin})
	RouteServerStatus = endpoint[NoBody, ServerStatus](Route{Name: "server.status",
		Method: http.MethodGet, Pattern: "/server/{server_id}/status", Auth: AuthAdmin})
	RouteServerClients = endpoint[NoBody, VPNClientList](Route{Name: "server.clients",
		Method: http.MethodGet, Pattern: "/server/{server_id}/clients", Auth: AuthAdmin, ResponseLimit: 16 << 20})

	// Connection approval (Pritunl Client protocol): signed, sealed, and
	// answered with a sealed, signed body. /key/ovpn_wait is the SSO
	// variant, answered 431 until SSO exists.
	RouteApprovalOVPN = endpoint[ApprovalRequest, ApprovalResponse](Route{Name: "approval.ovpn",
		Method: http.MethodPost, Pattern: "/key/ovpn/{org_id}/{user_id}/{server_id}", Auth: AuthClient, BodyLimit: 16 << 10})
	RouteApprovalOVPNWait = endpoint[ApprovalRequest, ApprovalResponse](Route{Name: "approval.ovpn_wait",
		Method: http.MethodPost, Pattern: "/key/ovpn_wait/{org_id}/{user_id}/{server_id}", Auth: AuthClient, BodyLimit: 16 << 10})

	// The live approvals (open ports per user, with their time left).
	RouteApprovalList = endpoint[NoBody, ApprovalList](Route{Name: "approval.list",
		Method: http.MethodGet, Pattern: "/approval", Auth: AuthAdmin, ResponseLimit: 16 << 20})

	// Profiles for the Pritunl Client (docs/clients.md): a .tar of freshly
	// issued profiles (all the organization's servers, or one), a
	// temporary single-use link whose code is the credential of GET
	// /ku/{link_code}, and profile sync, signed like an approval.
	RouteUserProfileTar = endpoint[NoBody, ProfileArchive](Route{Name: "user.profile.tar",
		Method: http.MethodPost, Pattern: "/organization/{org_id}/user/{user_id}/tar", Auth: AuthAdmin,
		ResponseLimit: 8 << 20, Render: RenderTar})
	RouteUserProfileTarServer = endpoint[NoBody, ProfileArchive](Route{Name: "user.profile.tar.server",
		Method: http.MethodPost, Pattern: "/organization/{org_id}/user/{user_id}/tar/{server_id}", Auth: AuthAdmin,
		Render: RenderTar})
	RouteUserProfileLink = endpoint[NoBody, ProfileLink](Route{Name: "user.profile.link",
		Method: http.MethodPost, Pattern: "/organization/{org_id}/user/{user_id}/link", Auth: AuthAdmin})
	RouteProfileLinkGet = endpoint[NoBody, ProfileMap](Route{Name: "profile.link.get",
		Method: http.MethodGet, Pattern: "/ku/{link_code}", Auth: AuthPublic, ResponseLimit: 8 << 20})
	RouteProfileSync = endpoint[NoBody, ProfileSync](Route{Name: "profile.sync",
		Method: http.MethodGet, Pattern: "/key/sync/{org_id}/{user_id}/{server_id}/{sync_hash}", Auth: AuthClient,
		Query: []string{"ver"}})

	// The notification (docs/notifications.md): its state, and an admin's
	// override (recorded in the audit trail). While www or web is disabled
	// the front refuses these too: use `portcullis notify` on the host.
	RouteNotificationGet = endpoint[NoBody, NotificationStatus](Route{Name: "notification.get",
		Method: http.MethodGet, Pattern: "/notification", Auth: AuthAdmin})
	RouteNotificationOverride = endpoint[NotificationOverride, NotificationStatus](Route{Name: "notification.override",
		Method: http.MethodPut, Pattern: "/notification/override", Auth: AuthAdmin, BodyLimit: 4 << 10})
	RouteNotificationClear = endpoint[NoBody, NotificationStatus](Route{Name: "notification.clear",
		Method: http.MethodDelete, Pattern: "/notification/override", Auth: AuthAdmin})

	// IPsec links (admin).
	RouteLinkList = endpoint[NoBody, LinkList](Route{Name: "link.list",
		Method: http.MethodGet, Pattern: "/link", Auth: AuthAdmin, ResponseLimit: 8 << 20})
	RouteLinkCreate = endpoint[LinkCreate, Link](Route{Name: "link.create",
		Method: http.MethodPost, Pattern: "/link", Auth: AuthAdmin, BodyLimit: 8 << 10})
	RouteLinkGet = endpoint[NoBody, Link](Route{Name: "link.get",
		Method: http.MethodGet, Pattern: "/link/{link_id}", Auth: AuthAdmin})
	RouteLinkUpdate = endpoint[LinkUpdate, Link](Route{Name: "link.update",
		Method: http.MethodPut, Pattern: "/link/{link_id}", Auth: AuthAdmin, BodyLimit: 32 << 10})
	RouteLinkDelete = endpoint[NoBody, OKResponse](Route{Name: "link.delete",
		Method: http.MethodDelete, Pattern: "/link/{link_id}", Auth: AuthAdmin})
	RouteLocationCreate = endpoint[LocationCreate, Link](Route{Name: "location.create",
		Method: http.MethodPost, Pattern: "/link/{link_id}/location", Auth: AuthAdmin, BodyLimit: 8 << 10})
	RouteLocationUpdate = endpoint[LocationUpdate, Link](Route{Name: "location.update",
		Method: http.MethodPut, Pattern: "/link/{link_id}/location/{location_id}", Auth: AuthAdmin, BodyLimit: 8 << 10})
	RouteLocationDelete = endpoint[NoBody, Link](Route{Name: "location.delete",
		Method: http.MethodDelete, Pattern: "/link/{link_id}/location/{location_id}", Auth: AuthAdmin})
	RouteHostCreate = endpoint[HostCreate, Link](Route{Name: "host.create",
		Method: http.MethodPost, Pattern: "/link/{link_id}/location/{location_id}/host", Auth: AuthAdmin, BodyLimit: 4 << 10})
	RouteHostUpdate = endpoint[HostUpdate, Link](Route{Name: "host.update",
		Method: http.MethodPut, Pattern: "/link/{link_id}/location/{location_id}/host/{host_id}", Auth: AuthAdmin, BodyLimit: 4 << 10})
	RouteHostDelete = endpoint[NoBody, Link](Route{Name: "host.delete",
		Method: http.MethodDelete, Pattern: "/link/{link_id}/location/{location_id}/host/{host_id}", Auth: AuthAdmin})
	RouteHostURI = endpoint[NoBody, HostURI](Route{Name: "host.uri",
		Method: http.MethodGet, Pattern: "/link/{link_id}/location/{location_id}/host/{host_id}/uri", Auth: AuthAdmin})
	// The swanctl.conf (with its PSKs) and the static routes of a router
	// location.
	RouteLocationRouterConfig = endpoint[NoBody, RouterConfig](Route{Name: "location.router_config",
		Method: http.MethodGet, Pattern: "/link/{link_id}/location/{location_id}/router-config", Auth: AuthAdmin, ResponseLimit: 8 << 20})

	// The audit trail, newest first: ?limit=N (1–500, default 100) entries
	// per page, ?before=<seq> for the page after the one whose next it was.
	RouteAuditList = endpoint[NoBody, AuditList](Route{Name: "audit.list",
		Method: http.MethodGet, Pattern: "/audit", Auth: AuthAdmin, ResponseLimit: 2 << 20,
		OptionalQuery: []string{"before", "limit"}})

	// IPsec links (agents): signed reports, sealed state.
	RouteLinkStateReport = endpoint[LinkReport, LinkSealed](Route{Name: "link.state.report",
		Method: http.MethodPut, Pattern: "/link/state", Auth: AuthLinkHost, BodyLimit: 256 << 10, ResponseLimit: 2 << 20})
	RouteLinkStateStop = endpoint[NoBody, OKResponse](Route{Name: "link.state.stop",
		Method: http.MethodDelete, Pattern: "/link/state", Auth: AuthLinkHost})
)

// Routes is the static route table: every request the front accepts is one
// of these, and the core implements exactly these (a test checks both).
var Routes = []*Route{
	RouteSessionLogin.Route(), RouteSessionLogout.Route(), RoutePasswordChange.Route(), RouteStatus.Route(),
	RouteOrgList.Route(), RouteOrgCreate.Route(), RouteOrgGet.Route(), RouteOrgUpdate.Route(), RouteOrgDelete.Route(),
	RouteUserList.Route(), RouteUserCreate.Route(), RouteUserGet.Route(), RouteUserUpdate.Route(), RouteUserDelete.Route(),
	RouteUserProfile.Route(),
	RouteServerList.Route(), RouteServerCreate.Route(), RouteServerGet.Route(), RouteServerUpdate.Route(), RouteServerDelete.Route(),
	RouteServerStart.Route(), RouteServerStop.Route(), RouteServerRestart.Route(), RouteServerStatus.Route(), RouteServerClients.Route(),
	RouteApprovalOVPN.Route(), RouteApprovalOVPNWait.Route(), RouteApprovalList.Route(),
	RouteNotificationGet.Route(), RouteNotificationOverride.Route(), RouteNotificationClear.Route(),
	RouteUserProfileTar.Route(), RouteUserProfileTarServer.Route(), RouteUserProfileLink.Route(), RouteProfileLinkGet.Route(), RouteProfileSync.Route(),
	RouteLinkList.Route(), RouteLinkCreate.Route(), RouteLinkGet.Route(), RouteLinkUpdate.Route(), RouteLinkDelete.Route(),
	RouteLocationCreate.Route(), RouteLocationUpdate.Route(), RouteLocationDelete.Route(),
	RouteHostCreate.Route(), RouteHostUpdate.Route(), RouteHostDelete.Route(), RouteHostURI.Route(), RouteLocationRouterConfig.Route(),
	RouteLinkStateReport.Route(), RouteLinkStateStop.Route(),
	RouteAuditList.Route(),
}
