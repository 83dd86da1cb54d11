// Package core is the privileged daemon behind the front. It owns the store,
// the key material and the admin accounts, and serves the routes of the
// api.Routes table on a unix socket that only the front may use (peer
// credentials and the internal token, both checked on every request). It
// also supervises the front process: it binds the front's listening sockets,
// hands them over with the token and the TLS key through inherited file
// descriptors, restarts the front if it dies and stops it on shutdown.
//
// The core never listens on a network address.
//
// Where things are:
//
//	daemon.go      Run: the start-up steps in order, each registering its cleanup
//	front.go       the front's user, runtime directory, listeners and start spec; supervisor.go runs it
//	sockets.go     unix sockets; control.go the control socket; tlsfiles.go the front's certificate
//	service.go     Service, built in one pass from Deps (store, approver, notification state,
//	               placement, link election, workers: nothing is set on it afterwards);
//	               Mux binds every route to its handler
//	session.go     login, logout, status
//	orgs.go, users.go, servers.go   organization, user and server CRUD
//	profiles.go    profile download (a new key and certificate per user and server)
//	approvals.go   the approval routes and the firewall's guarded ports
//	directory.go   dynfw.Directory: what approvals read of users and servers
//	workers.go     the VPN workers' specs (with a CRL per CA), started servers, ended sessions
//	workerauth.go  the workers' Decider: every connect; the credential check's adapter
//	workerroutes.go  worker start, stop, restart, status, clients (admin routes, control socket)
//	records.go     the stored records and their keys
//	audittrail.go  what goes into the audit trail (every audited call, control commands, worker starts and stops); audit.list
//
// Sub-packages: rpc (the core socket's server, typed handler binding,
// errors, record helpers, the audit hook), links (the IPsec link routes and
// their buckets), admin (accounts and sessions), audit (the audit trail's
// bucket), pki, profile, vpn (the OpenVPN workers).
package core
