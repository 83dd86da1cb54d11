package api

import "time"

// Admin types of IPsec links.

// Link is a site-to-site link with its locations and hosts.
type Link struct {
	ID        string         `json:"id" validate:"required,objectid"`
	Name      string         `json:"name" validate:"required,safename"`
	IKE       []string       `json:"ike" validate:"min=1,max=16,dive,proposal"`
	ESP       []string       `json:"esp" validate:"min=1,max=16,dive,proposal"`
	Force     bool           `json:"force"`
	CheckPort int            `json:"check_port" validate:"min=1,max=65535"`
	Excludes  [][]string     `json:"excludes" validate:"max=256,dive,len=2,dive,objectid"`
	Locations []LinkLocation `json:"locations" validate:"max=64,dive"`
	CreatedAt time.Time      `json:"created_at"`
	// Connections are the hosts' connections, in the order of the hosts.
	Connections []LinkHostConnection `json:"connections,omitempty" validate:"max=4096,dive"`
}

// LinkLocation is one site of a link.
type LinkLocation struct {
	ID     string     `json:"id" validate:"required,objectid"`
	Name   string     `json:"name" validate:"required,safename"`
	Routes []string   `json:"routes" validate:"max=64,dive,cidr"`
	Hosts  []LinkHost `json:"hosts" validate:"max=64,dive"`
	// Router: an IPsec-router location (one host, no agent; its admin
	// applies the configuration of GET …/router-config).
	Router bool `json:"router"`
}

// LinkHost is one agent host of a location, with its live state.
type LinkHost struct {
	ID         string    `json:"id" validate:"required,objectid"`
	Name       string    `json:"name" validate:"required,safename"`
	Priority   int       `json:"priority" validate:"min=1,max=1000"`
	Timeout    int       `json:"timeout" validate:"min=1,max=3600"`
	Backoff    int       `json:"backoff" validate:"min=0,max=86400"`
	Address    string    `json:"address,omitempty" validate:"omitempty,ip"`
	Available  bool      `json:"available"`
	Active     bool      `json:"active"`
	LastReport time.Time `json:"last_report,omitempty"`
}

// LinkHostConnection is one connection of a host (HostID) as its last
// report gave it, with why it is not up (reason) and the gateway's history
// of its last events (events, up to 20, oldest first; kept in the core's
// memory, lost when it restarts). They sit at the link's level, not in the
// host's, to stay within the decoder's nesting limit.
type LinkHostConnection struct {
	HostID     string         `json:"host_id" validate:"required,objectid"`
	Connection LinkConnection `json:"connection"`
}

// LinkList answers link.list.
type LinkList struct {
	Links []Link `json:"links" validate:"dive"`
}

// LinkCreate creates a link. Absent proposals take the defaults
// (IKE aes128-sha256-x25519, ESP aes128gcm128-x25519); Force uses only the
// given proposals instead of trying them first.
type LinkCreate struct {
	Name      string   `json:"name" validate:"required,safename"`
	IKE       []string `json:"ike,omitempty" validate:"max=16,dive,proposal"`
	ESP       []string `json:"esp,omitempty" validate:"max=16,dive,proposal"`
	Force     bool     `json:"force,omitempty"`
	CheckPort int      `json:"check_port,omitempty" validate:"omitempty,min=1,max=65535"`
}

// LinkUpdate changes a link; absent fields are left as they are.
type LinkUpdate struct {
	Name      *string     `json:"name,omitempty" validate:"omitempty,safename"`
	IKE       *[]string   `json:"ike,omitempty" validate:"omitempty,max=16,dive,proposal"`
	ESP       *[]string   `json:"esp,omitempty" validate:"omitempty,max=16,dive,proposal"`
	Force     *bool       `json:"force,omitempty"`
	CheckPort *int        `json:"check_port,omitempty" validate:"omitempty,min=1,max=65535"`
	Excludes  *[][]string `json:"excludes,omitempty" validate:"omitempty,max=256,dive,len=2,dive,objectid"`
}

// LocationCreate adds a location to a link. Router makes it an
// IPsec-router location: exactly one host, which runs no agent and is
// given its address (HostCreate.Address).
type LocationCreate struct {
	Name   string   `json:"name" validate:"required,safename"`
	Routes []string `json:"routes" validate:"required,min=1,max=64,dive,cidr"`
	Router bool     `json:"router,omitempty"`
}

// LocationUpdate changes a location. Router can change only while the
// location has no host.
type LocationUpdate struct {
	Name   *string   `json:"name,omitempty" validate:"omitempty,safename"`
	Routes *[]string `json:"routes,omitempty" validate:"omitempty,min=1,max=64,dive,cidr"`
	Router *bool     `json:"router,omitempty"`
}

// HostCreate adds a host to a location. Priority defaults to 1, timeout to
// 3 s, back-off to 0. Address is required for the host of a router
// location (its public address, which its peers connect to and which is
// its IKE identity) and refused for an agent host (whose address is where
// its reports come from); priority, timeout and back-off are refused for a
// router host (it is not elected).
type HostCreate struct {
	Name     string `json:"name" validate:"required,safename"`
	Priority int    `json:"priority,omitempty" validate:"omitempty,min=1,max=1000"`
	Timeout  int    `json:"timeout,omitempty" validate:"omitempty,min=1,max=3600"`
	Backoff  int    `json:"backoff,omitempty" validate:"omitempty,min=0,max=86400"`
	Address  string `json:"address,omitempty" validate:"omitempty,ip"`
}

// HostUpdate changes a host; Address, priority, timeout and back-off as
// in HostCreate.
type HostUpdate struct {
	Name     *string `json:"name,omitempty" validate:"omitempty,safename"`
	Priority *int    `json:"priority,omitempty" validate:"omitempty,min=1,max=1000"`
	Timeout  *int    `json:"timeout,omitempty" validate:"omitempty,min=1,max=3600"`
	Backoff  *int    `json:"backoff,omitempty" validate:"omitempty,min=0,max=86400"`
	Address  *string `json:"address,omitempty" validate:"omitempty,ip"`
}

// HostURI answers host.uri: portcullis://<host_id>:<secret>@<gateway>[,…].
type HostURI struct {
	URI string `json:"uri" validate:"required,max=2048"`
}

// RouterConfig answers location.router_config: the configuration of a
// router location's strongSwan. It holds the PSKs of its connections: a
// credential, like a host URI.
type RouterConfig struct {
	// SwanctlConf is a complete swanctl.conf: one connection to every
	// agent host of every location it peers with (and to every other
	// router), with its secrets.
	SwanctlConf string `json:"swanctl_conf" validate:"required,max=4194304"`
	// Routes are the remote subnets the site sends to its router.
	Routes []RouterRoute `json:"routes" validate:"max=4096,dive"`
	// Pending are the peer hosts left out because the gateway does not
	// know their address yet (no report since it started): fetch the
	// configuration again once they report.
	Pending []RouterPendingHost `json:"pending" validate:"max=4096,dive"`
}

// RouterRoute is one static route a router location's site needs: the
// network, behind the peer location, reached through the router host.
type RouterRoute struct {
	Network  string `json:"network" validate:"required,cidr"`
	Location string `json:"location" validate:"required,safename"`
}

// RouterPendingHost is a peer host left out of a router configuration.
type RouterPendingHost struct {
	Location string `json:"location" validate:"required,safename"`
	Host     string `json:"host" validate:"required,safename"`
}

// FindLocationByID returns the location with the ID, or nil.
func (l *Link) FindLocationByID(id string) *LinkLocation {
	for i := range l.Locations {
		if l.Locations[i].ID == id {
			return &l.Locations[i]
		}
	}
	return nil
}
