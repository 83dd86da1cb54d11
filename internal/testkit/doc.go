// Package testkit holds the few helpers that tests of several packages
// share because they check the same thing the same way: tampering with one
// character of a signed value, reading a profile's JSON header as the
// Pritunl Client does, a buffer a process or logger writes while the test
// reads it (LockedBuffer), and a bounded wait for a condition (WaitFor,
// Eventually). Only tests, and the labs that tests use, import it.
package testkit
