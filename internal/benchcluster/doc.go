// Package benchcluster measures a cluster of gateways (docs/cluster.md)
// against a single one, in the same run, with real gateways (vpnlab) in
// network namespaces, a real three-member etcd on loopback (etcdlab) and
// the kernel's nftables: approvals per second and approval → port-open
// latency with the bbolt store and with the etcd store, and the
// cross-gateway latency (approved through gateway a, the port opens on
// gateway b, which runs the server). Its only code is the benchmark in
// cluster_test.go (a testing.B gives it etcdlab and vpnlab); `make bench`
// runs it once as root. It prints figures and asserts nothing timed.
package benchcluster
