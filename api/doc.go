// Package api is the wire contract between the outside world, the front
// (portcullis-web) and the core (portcullis).
//
// It owns the static route table (Routes): for every route its name, method,
// chi path pattern, the strict format of each path parameter, the
// authentication class, the request and response types and the body limit.
// It also owns the request and response structs with their validate tags, the
// strict JSON decoder both processes use (unknown, duplicate and
// case-mismatched keys rejected, trailing data rejected, depth and number
// limits), and the internal header names the front uses to talk to the core.
//
// The front imports this package and libraries only; it never imports the
// core. Everything the two processes must agree on lives here, once.
package api
