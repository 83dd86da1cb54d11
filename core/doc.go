// Package core is the privileged daemon behind the front. It owns the store,
// the key material and the admin accounts, and serves the routes of the
// api.Routes table on a unix socket that only the front may use (peer
// credentials and the internal token, both checked on every request). It
// also supervises the front process: it binds the front's listening sockets,
// hands them over with the token and the TLS key through inherited file
// descriptors, restarts the front if it dies and stops it on shutdown.
//
// The core never listens on a network address.
package core
