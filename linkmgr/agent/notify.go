package agent

import (
	"fmt"
	"time"
)

// Notifier is what the agent tells its service manager; sdnotify.Notifier
// is the real one (a no-op outside systemd). Failures to tell are the
// notifier's to log.
type Notifier interface {
	// Ready: the agent is up (its first state from the gateway applied).
	Ready()
	// Stopping: the graceful stop has begun.
	Stopping()
	// Status sets the one-line status (role, tunnels up).
	Status(string)
	// Watchdog pings the watchdog; WatchdogInterval is its timeout (0:
	// none).
	Watchdog()
	WatchdogInterval() time.Duration
}

type noNotifier struct{}

func (noNotifier) Ready()                          {}
func (noNotifier) Stopping()                       {}
func (noNotifier) Status(string)                   {}
func (noNotifier) Watchdog()                       {}
func (noNotifier) WatchdogInterval() time.Duration { return 0 }

// notifyState is what the agent has told and what it will tell.
type notifyState struct {
	to Notifier
	// synced: a state from the gateway was applied (set by round);
	// active: that state made this host its location's active one.
	synced, active bool
	ready          bool
	status         string
	lastPing       time.Time
}

// tell is the end of every round of Run's loop: a watchdog ping (at most
// four per watchdog timeout), the status line when it changed, and READY
// once, after the first state applied. It runs in the loop, after the
// round, so that a round that hangs (charon, the gateway, netlink) stops
// the pings and systemd restarts the agent.
func (a *Agent) tell() {
	n := &a.notify
	if wd := n.to.WatchdogInterval(); wd > 0 && time.Since(n.lastPing) >= wd/4 {
		n.to.Watchdog()
		n.lastPing = time.Now()
	}
	if s := a.statusLine(); s != n.status {
		n.to.Status(s)
		n.status = s
	}
	if n.synced && !n.ready {
		n.to.Ready()
		n.ready = true
	}
}

// statusLine says what the agent is doing: waiting, or its role and how
// many of its connections have an installed child SA.
func (a *Agent) statusLine() string {
	switch {
	case !a.reached:
		return "waiting for charon"
	case !a.notify.synced:
		return "waiting for the gateway's state"
	}
	role := "standby"
	if a.notify.active {
		role = "active"
	}
	up := 0
	for name := range a.want {
		if a.up[name] {
			up++
		}
	}
	s := fmt.Sprintf("%s, %d/%d tunnels up", role, up, len(a.want))
	if a.lastGateway != nil {
		s += "; gateway not answering, keeping the last state"
	}
	return s
}
