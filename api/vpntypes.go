package api

import "time"

// The VPN workers' types (routes server.start, server.stop, server.restart,
// server.status and server.clients; docs/vpn.md).

// ServerStatus is a server's OpenVPN worker.
type ServerStatus struct {
	ServerID string `json:"server_id" validate:"required,objectid"`
	// Started is the stored flag: a started server's worker runs whenever
	// the core runs.
	Started bool `json:"started"`
	// Running: an openvpn process is up (PID, since Since); Starts counts
	// its starts since the core started it.
	Running   bool       `json:"running"`
	PID       int        `json:"pid" validate:"min=0"`
	Since     *time.Time `json:"since,omitempty"`
	Starts    int        `json:"starts" validate:"min=0"`
	Device    string     `json:"device" validate:"max=15"`
	LastError string     `json:"last_error,omitempty" validate:"max=2048"`
}

// VPNClient is one client connected to a server.
type VPNClient struct {
	UserID string `json:"user_id" validate:"max=64"`
	OrgID  string `json:"organization_id,omitempty" validate:"omitempty,objectid"`
	// RealAddress is the client's address and port; VirtualAddress its
	// tunnel address ("" until it has one).
	RealAddress    string `json:"real_address" validate:"max=128"`
	VirtualAddress string `json:"virtual_address" validate:"max=64"`
	// BytesIn is what the server received from the client, BytesOut what
	// it sent to it.
	BytesIn        uint64    `json:"bytes_in"`
	BytesOut       uint64    `json:"bytes_out"`
	ConnectedSince time.Time `json:"connected_since"`
}

// VPNClientList answers server.clients.
type VPNClientList struct {
	Clients []VPNClient `json:"clients" validate:"max=100000,dive"`
}

// ControlServerPath prefixes the worker commands on the core's control
// socket: POST <prefix><server id>/start|stop|restart, GET …/status|clients
// (what `portcullis server …` sends).
const ControlServerPath = "/control/server/"
