// Package e2e holds the integration tests that run the real binaries: the
// core (portcullis serve) and the front it starts (portcullis-web), talking
// over the real unix socket, with a real bbolt file, reached over TLS on
// loopback. The package has no non-test code besides this comment.
package e2e
