// Package dynfw owns connection approval and the dynamic firewall: it
// verifies a Pritunl-Client approval request (clock window, the three
// replay caches, HMAC-SHA512, RSA-PSS, NaCl box), decides which client
// addresses to open, issues the single-use firewall token the OpenVPN
// worker later checks, persists approvals, and drives the nftables port
// gate (table inet portcullis) over netlink, with the servers' optional
// source NAT in the same table (nat.go).
//
// It reads users and servers through the Directory the core implements,
// keeps its approvals in internal/store (the approvals bucket is its own)
// and its nonces through internal/replay; it imports nothing under core/.
package dynfw
