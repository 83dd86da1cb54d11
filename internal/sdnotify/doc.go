// Package sdnotify owns a daemon's side of systemd's service notification
// protocol (sd_notify): READY=1 once the daemon serves, STOPPING=1 when it
// begins to stop, a STATUS= line, and WATCHDOG=1 pings for a unit with
// WatchdogSec=.
//
// A Notifier is built once from the environment systemd sets
// (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID) and does nothing when there
// is no NOTIFY_SOCKET, so the daemons call it unconditionally. A failed
// send is logged at Warn, at most once a minute for each kind of message,
// never dropped silently and never fatal.
//
// Package sdtest is the other end for tests: a socket that speaks the
// protocol and records what it receives.
package sdnotify
