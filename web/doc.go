// Package web is the front: the only process that faces the network. It
// terminates TLS, matches every request against the static api.Routes table,
// enforces limits, decodes and validates the body into the route's type,
// builds a brand-new request from the parsed values and sends it to the core
// over its unix socket with the internal token, then decodes the core's
// answer into the route's response type and re-encodes it with security
// headers. It forwards nothing it has not parsed: no reverse proxy, no
// header copied by default.
//
// It imports api/, libraries and the leaf packages internal/{config,logging,
// listenfds,random}; never the core, dynfw, linkmgr, the store or the replay
// cache (TestFrontDoesNotImportTheCore checks this).
package web
