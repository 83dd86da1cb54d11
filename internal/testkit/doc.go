// Package testkit holds the few helpers that tests of several packages
// share because they check the same thing the same way: tampering with one
// character of a signed value, and reading a profile's JSON header as the
// Pritunl Client does. Only tests import it.
package testkit
