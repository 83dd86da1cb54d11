// Package linkmgr owns IPsec site-to-site links on the gateway side: the
// link model (link → locations → hosts and routes), the election of the
// active host of each location from the hosts' state reports (priority,
// timeout, back-off, graceful stop, host-check reachability), and the state
// each link host agent receives, and the swanctl.conf of a router location
// (a plain strongSwan with one host, no agent, never elected:
// routerconf.go). The agent itself is linkmgr/agent.
package linkmgr
