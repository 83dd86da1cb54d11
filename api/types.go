package api

import "time"

// Error is the body of every non-2xx answer, from the front or the core.
type Error struct {
	// Error is a stable machine-readable code, e.g. "bad_request".
	Error string `json:"error" validate:"required,max=64"`
	// Message says what was wrong in words.
	Message string `json:"message" validate:"max=1024"`
	// Field names the offending field or parameter, when there is one.
	Field string `json:"field,omitempty" validate:"max=256"`
}

// OKResponse answers routes that have nothing else to say.
type OKResponse struct {
	OK bool `json:"ok"`
}

// LoginRequest opens an admin session.
type LoginRequest struct {
	Username string `json:"username" validate:"required,username"`
	Password string `json:"password" validate:"required,min=1,max=256"`
}

// SessionResponse answers a successful login. The session itself travels in
// the HttpOnly cookie; the CSRF token must be sent back in the X-CSRF-Token
// header on every state-changing admin request.
type SessionResponse struct {
	Username  string    `json:"username" validate:"required,username"`
	CSRFToken string    `json:"csrf_token" validate:"required,len=64,hexadecimal"`
	ExpiresAt time.Time `json:"expires_at" validate:"required"`
	// PasswordChangeRequired: the password is one the gateway made (the
	// initial admin's, a CLI reset); until it is changed (POST
	// /auth/password) every other admin route but logout answers 403
	// password_change_required.
	PasswordChangeRequired bool `json:"password_change_required"`
}

// PasswordChange changes the logged-in admin's password. The old password
// is required; the new one must differ and have at least 12 characters.
type PasswordChange struct {
	OldPassword string `json:"old_password" validate:"required,min=1,max=256"`
	NewPassword string `json:"new_password" validate:"required,min=12,max=256"`
}

// StatusResponse is the gateway's summary for a logged-in admin.
type StatusResponse struct {
	Version       string    `json:"version" validate:"max=64"`
	Username      string    `json:"username" validate:"required,username"`
	CSRFToken     string    `json:"csrf_token" validate:"required,len=64,hexadecimal"`
	StartedAt     time.Time `json:"started_at"`
	Organizations int       `json:"organizations" validate:"min=0"`
	Users         int       `json:"users" validate:"min=0"`
	Servers       int       `json:"servers" validate:"min=0"`
}

// Organization is a group of users with its own certificate authority.
type Organization struct {
	ID        string    `json:"id" validate:"required,objectid"`
	Name      string    `json:"name" validate:"required,safename"`
	CreatedAt time.Time `json:"created_at"`
}

// OrganizationList answers org.list.
type OrganizationList struct {
	Organizations []Organization `json:"organizations" validate:"dive"`
}

// OrganizationCreate creates an organization.
type OrganizationCreate struct {
	Name string `json:"name" validate:"required,safename"`
}

// OrganizationUpdate renames an organization.
type OrganizationUpdate struct {
	Name string `json:"name" validate:"required,safename"`
}

// User is a VPN user of an organization.
type User struct {
	ID       string `json:"id" validate:"required,objectid"`
	OrgID    string `json:"organization_id" validate:"required,objectid"`
	Name     string `json:"name" validate:"required,safename"`
	Email    string `json:"email,omitempty" validate:"omitempty,max=254,email"`
	Disabled bool   `json:"disabled"`
	// Profiles lists the user's current profile per server (one key and
	// certificate each); empty until a profile has been downloaded.
	Profiles  []ProfileInfo `json:"profiles" validate:"max=1024,dive"`
	CreatedAt time.Time     `json:"created_at"`
}

// ProfileInfo is one issued profile of a user.
type ProfileInfo struct {
	ServerID   string    `json:"server_id" validate:"required,objectid"`
	CertSerial string    `json:"cert_serial" validate:"required,max=64,hexadecimal"`
	IssuedAt   time.Time `json:"issued_at"`
}

// UserList answers user.list.
type UserList struct {
	Users []User `json:"users" validate:"dive"`
}

// UserCreate creates a user.
type UserCreate struct {
	Name     string `json:"name" validate:"required,safename"`
	Email    string `json:"email,omitempty" validate:"omitempty,max=254,email"`
	Disabled bool   `json:"disabled,omitempty"`
}

// UserUpdate changes a user; absent fields are left as they are. Setting
// disabled to true disables the user.
type UserUpdate struct {
	Name     *string `json:"name,omitempty" validate:"omitempty,safename"`
	Email    *string `json:"email,omitempty" validate:"omitempty,max=254,email"`
	Disabled *bool   `json:"disabled,omitempty"`
}

// Server is an OpenVPN server definition.
type Server struct {
	ID       string `json:"id" validate:"required,objectid"`
	Name     string `json:"name" validate:"required,safename"`
	Protocol string `json:"protocol" validate:"required,oneof=udp tcp"`
	Port     int    `json:"port" validate:"required,min=1,max=65535"`
	// Network is the tunnel network (IPv4 CIDR) clients get addresses from.
	Network         string `json:"network" validate:"required,cidrv4"`
	DynamicFirewall bool   `json:"dynamic_firewall"`
	// NAT masquerades the tunnel network behind the gateway's address on
	// whatever interface the traffic leaves by (docs/vpn.md).
	NAT bool `json:"nat"`
	// Hosts are the public addresses (IP or DNS name) clients connect to;
	// they become the profile's remote lines.
	Hosts []string `json:"hosts" validate:"required,min=1,max=16,dive,hostaddr"`
	// Organizations are the organizations whose users may connect.
	Organizations []string `json:"organizations" validate:"max=256,dive,objectid"`
	// Gateways are the names of the gateways that run the server (their
	// cluster.name); empty: every gateway (docs/cluster.md#placement).
	Gateways  []string  `json:"gateways" validate:"max=16,dive,gatewayname"`
	CreatedAt time.Time `json:"created_at"`
}

// ServerList answers server.list.
type ServerList struct {
	Servers []Server `json:"servers" validate:"dive"`
}

// ServerCreate creates a server.
type ServerCreate struct {
	Name            string   `json:"name" validate:"required,safename"`
	Protocol        string   `json:"protocol" validate:"required,oneof=udp tcp"`
	Port            int      `json:"port" validate:"required,min=1,max=65535"`
	Network         string   `json:"network" validate:"required,cidrv4"`
	DynamicFirewall bool     `json:"dynamic_firewall,omitempty"`
	NAT             bool     `json:"nat,omitempty"`
	Hosts           []string `json:"hosts" validate:"required,min=1,max=16,unique,dive,hostaddr"`
	Organizations   []string `json:"organizations,omitempty" validate:"max=256,unique,dive,objectid"`
	Gateways        []string `json:"gateways,omitempty" validate:"max=16,unique,dive,gatewayname"`
}

// ServerUpdate changes a server; absent fields are left as they are.
type ServerUpdate struct {
	Name            *string   `json:"name,omitempty" validate:"omitempty,safename"`
	Protocol        *string   `json:"protocol,omitempty" validate:"omitempty,oneof=udp tcp"`
	Port            *int      `json:"port,omitempty" validate:"omitempty,min=1,max=65535"`
	Network         *string   `json:"network,omitempty" validate:"omitempty,cidrv4"`
	DynamicFirewall *bool     `json:"dynamic_firewall,omitempty"`
	NAT             *bool     `json:"nat,omitempty"`
	Hosts           *[]string `json:"hosts,omitempty" validate:"omitempty,min=1,max=16,unique,dive,hostaddr"`
	Organizations   *[]string `json:"organizations,omitempty" validate:"omitempty,max=256,unique,dive,objectid"`
	Gateways        *[]string `json:"gateways,omitempty" validate:"omitempty,max=16,unique,dive,gatewayname"`
}

// Profile answers user.profile: a freshly issued OpenVPN client profile in
// the Pritunl layout. It contains the user's new private key, which exists
// nowhere else; the previous certificate of the user is revoked.
type Profile struct {
	Filename   string `json:"filename" validate:"required,max=255"`
	CertSerial string `json:"cert_serial" validate:"required,max=64,hexadecimal"`
	Profile    string `json:"profile" validate:"required,max=262144"`
}
