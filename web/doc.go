// Package web is the front: the only process that faces the network. It
// terminates TLS, matches every request against the static api.Routes table,
// enforces limits, decodes and validates the body into the route's type,
// builds a brand-new request from the parsed values and sends it to the core
// over its unix socket with the internal token, then decodes the core's
// answer into the route's response type and re-encodes it with security
// headers. It forwards nothing it has not parsed: no reverse proxy, no
// header copied by default.
//
// It imports api/ and libraries only, never the core (a test checks this).
package web
