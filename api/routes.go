package api

import "net/http"

// Routes is the static route table: every request the front accepts is one
// of these, and the core implements exactly these (a test checks both).
var Routes = []Route{
	// Sessions.
	{Name: "session.login", Method: http.MethodPost, Pattern: "/auth/session", Auth: AuthPublic,
		NewRequest: body[LoginRequest](), NewResponse: body[SessionResponse](), BodyLimit: 2 << 10, SetsSession: true},
	{Name: "session.logout", Method: http.MethodDelete, Pattern: "/auth/session", Auth: AuthAdmin,
		NewResponse: body[OKResponse](), SetsSession: true},
	{Name: "status", Method: http.MethodGet, Pattern: "/status", Auth: AuthAdmin,
		NewResponse: body[StatusResponse]()},

	// Organizations.
	{Name: "org.list", Method: http.MethodGet, Pattern: "/organization", Auth: AuthAdmin,
		NewResponse: body[OrganizationList]()},
	{Name: "org.create", Method: http.MethodPost, Pattern: "/organization", Auth: AuthAdmin,
		NewRequest: body[OrganizationCreate](), NewResponse: body[Organization](), BodyLimit: 4 << 10},
	{Name: "org.get", Method: http.MethodGet, Pattern: "/organization/{org_id}", Auth: AuthAdmin,
		NewResponse: body[Organization]()},
	{Name: "org.update", Method: http.MethodPut, Pattern: "/organization/{org_id}", Auth: AuthAdmin,
		NewRequest: body[OrganizationUpdate](), NewResponse: body[Organization](), BodyLimit: 4 << 10},
	{Name: "org.delete", Method: http.MethodDelete, Pattern: "/organization/{org_id}", Auth: AuthAdmin,
		NewResponse: body[OKResponse]()},

	// Users.
	{Name: "user.list", Method: http.MethodGet, Pattern: "/organization/{org_id}/user", Auth: AuthAdmin,
		NewResponse: body[UserList](), ResponseLimit: 8 << 20},
	{Name: "user.create", Method: http.MethodPost, Pattern: "/organization/{org_id}/user", Auth: AuthAdmin,
		NewRequest: body[UserCreate](), NewResponse: body[User](), BodyLimit: 4 << 10},
	{Name: "user.get", Method: http.MethodGet, Pattern: "/organization/{org_id}/user/{user_id}", Auth: AuthAdmin,
		NewResponse: body[User]()},
	{Name: "user.update", Method: http.MethodPut, Pattern: "/organization/{org_id}/user/{user_id}", Auth: AuthAdmin,
		NewRequest: body[UserUpdate](), NewResponse: body[User](), BodyLimit: 4 << 10},
	{Name: "user.delete", Method: http.MethodDelete, Pattern: "/organization/{org_id}/user/{user_id}", Auth: AuthAdmin,
		NewResponse: body[OKResponse]()},
	{Name: "user.profile", Method: http.MethodPost, Pattern: "/organization/{org_id}/user/{user_id}/profile/{server_id}",
		Auth: AuthAdmin, NewResponse: body[Profile]()},

	// Servers.
	{Name: "server.list", Method: http.MethodGet, Pattern: "/server", Auth: AuthAdmin,
		NewResponse: body[ServerList]()},
	{Name: "server.create", Method: http.MethodPost, Pattern: "/server", Auth: AuthAdmin,
		NewRequest: body[ServerCreate](), NewResponse: body[Server](), BodyLimit: 8 << 10},
	{Name: "server.get", Method: http.MethodGet, Pattern: "/server/{server_id}", Auth: AuthAdmin,
		NewResponse: body[Server]()},
	{Name: "server.update", Method: http.MethodPut, Pattern: "/server/{server_id}", Auth: AuthAdmin,
		NewRequest: body[ServerUpdate](), NewResponse: body[Server](), BodyLimit: 8 << 10},
	{Name: "server.delete", Method: http.MethodDelete, Pattern: "/server/{server_id}", Auth: AuthAdmin,
		NewResponse: body[OKResponse]()},

	// Connection approval (Pritunl Client protocol): signed, sealed, and
	// answered with a sealed, signed body. /key/ovpn_wait is the SSO
	// variant, answered 431 until SSO exists.
	{Name: "approval.ovpn", Method: http.MethodPost, Pattern: "/key/ovpn/{org_id}/{user_id}/{server_id}", Auth: AuthClient,
		NewRequest: body[ApprovalRequest](), NewResponse: body[ApprovalResponse](), BodyLimit: 16 << 10},
	{Name: "approval.ovpn_wait", Method: http.MethodPost, Pattern: "/key/ovpn_wait/{org_id}/{user_id}/{server_id}", Auth: AuthClient,
		NewRequest: body[ApprovalRequest](), NewResponse: body[ApprovalResponse](), BodyLimit: 16 << 10},

	// IPsec links (admin).
	{Name: "link.list", Method: http.MethodGet, Pattern: "/link", Auth: AuthAdmin, NewResponse: body[LinkList](), ResponseLimit: 8 << 20},
	{Name: "link.create", Method: http.MethodPost, Pattern: "/link", Auth: AuthAdmin,
		NewRequest: body[LinkCreate](), NewResponse: body[Link](), BodyLimit: 8 << 10},
	{Name: "link.get", Method: http.MethodGet, Pattern: "/link/{link_id}", Auth: AuthAdmin, NewResponse: body[Link]()},
	{Name: "link.update", Method: http.MethodPut, Pattern: "/link/{link_id}", Auth: AuthAdmin,
		NewRequest: body[LinkUpdate](), NewResponse: body[Link](), BodyLimit: 32 << 10},
	{Name: "link.delete", Method: http.MethodDelete, Pattern: "/link/{link_id}", Auth: AuthAdmin, NewResponse: body[OKResponse]()},
	{Name: "location.create", Method: http.MethodPost, Pattern: "/link/{link_id}/location", Auth: AuthAdmin,
		NewRequest: body[LocationCreate](), NewResponse: body[Link](), BodyLimit: 8 << 10},
	{Name: "location.update", Method: http.MethodPut, Pattern: "/link/{link_id}/location/{location_id}", Auth: AuthAdmin,
		NewRequest: body[LocationUpdate](), NewResponse: body[Link](), BodyLimit: 8 << 10},
	{Name: "location.delete", Method: http.MethodDelete, Pattern: "/link/{link_id}/location/{location_id}", Auth: AuthAdmin,
		NewResponse: body[Link]()},
	{Name: "host.create", Method: http.MethodPost, Pattern: "/link/{link_id}/location/{location_id}/host", Auth: AuthAdmin,
		NewRequest: body[HostCreate](), NewResponse: body[Link](), BodyLimit: 4 << 10},
	{Name: "host.update", Method: http.MethodPut, Pattern: "/link/{link_id}/location/{location_id}/host/{host_id}", Auth: AuthAdmin,
		NewRequest: body[HostUpdate](), NewResponse: body[Link](), BodyLimit: 4 << 10},
	{Name: "host.delete", Method: http.MethodDelete, Pattern: "/link/{link_id}/location/{location_id}/host/{host_id}", Auth: AuthAdmin,
		NewResponse: body[Link]()},
	{Name: "host.uri", Method: http.MethodGet, Pattern: "/link/{link_id}/location/{location_id}/host/{host_id}/uri", Auth: AuthAdmin,
		NewResponse: body[HostURI]()},

	// IPsec links (agents): signed reports, sealed state.
	{Name: "link.state.report", Method: http.MethodPut, Pattern: "/link/state", Auth: AuthLinkHost,
		NewRequest: body[LinkReport](), NewResponse: body[LinkSealed](), BodyLimit: 64 << 10, ResponseLimit: 2 << 20},
	{Name: "link.state.stop", Method: http.MethodDelete, Pattern: "/link/state", Auth: AuthLinkHost,
		NewResponse: body[OKResponse]()},
}
