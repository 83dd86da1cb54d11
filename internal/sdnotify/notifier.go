package sdnotify

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/portcullis-gw/portcullis/internal/logging"
)

// The kinds of message, as sd_notify names their variables.
const (
	KindReady    = "READY"
	KindStopping = "STOPPING"
	KindStatus   = "STATUS"
	KindWatchdog = "WATCHDOG"
)

// warnEvery is how often a failing kind of message is logged at most.
const warnEvery = time.Minute

// sendTimeout bounds one datagram: a service manager that stopped reading
// must not stall the loop that pings the watchdog.
const sendTimeout = time.Second

// Notifier tells the service manager about the daemon. The zero value and
// a nil *Notifier do nothing. Its methods are safe for concurrent use.
type Notifier struct {
	socket   string
	watchdog time.Duration
	log      *slog.Logger
	now      func() time.Time

	mu sync.Mutex
	// warned is when each kind's failure was last logged, and how many
	// failures were not logged since.
	warned     map[string]time.Time
	suppressed map[string]int
}

// FromEnv returns the Notifier for this process: NOTIFY_SOCKET names the
// socket (none: every method is a no-op), WATCHDOG_USEC and WATCHDOG_PID
// (read with go-systemd's daemon.SdWatchdogEnabled) the watchdog. A
// malformed watchdog setting is logged and leaves the watchdog off. The
// variables stay in the environment; the daemons start their children with
// environments of their own.
func FromEnv(log *slog.Logger) *Notifier {
	log = logging.OrDiscard(log)
	wd, err := sd.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("systemd watchdog setting unusable; not pinging", "err", err)
		wd = 0
	}
	return New(os.Getenv("NOTIFY_SOCKET"), wd, log)
}

// New returns a Notifier sending to socket (a path, or "@name" for the
// abstract namespace; "": a no-op Notifier) whose watchdog expects a ping
// within watchdog (0: none). FromEnv is what daemons use; New lets tests
// run several notifiers side by side. The socket is fixed here: a later
// change of the environment does not redirect it.
func New(socket string, watchdog time.Duration, log *slog.Logger) *Notifier {
	if socket == "" {
		watchdog = 0
	}
	return &Notifier{socket: socket, watchdog: max(watchdog, 0), log: logging.OrDiscard(log), now: time.Now,
		warned: map[string]time.Time{}, suppressed: map[string]int{}}
}

// Enabled reports whether messages go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// Ready says the daemon serves (READY=1).
func (n *Notifier) Ready() { n.send(KindReady, sd.SdNotifyReady) }

// Stopping says the daemon begins to stop (STOPPING=1).
func (n *Notifier) Stopping() { n.send(KindStopping, sd.SdNotifyStopping) }

// Status sets the one-line status systemctl status shows (STATUS=...).
// Line breaks become spaces: one message is one line.
func (n *Notifier) Status(s string) {
	s = strings.Join(strings.Fields(strings.ToValidUTF8(s, "?")), " ")
	n.send(KindStatus, "STATUS="+s)
}

// Watchdog pings the watchdog (WATCHDOG=1). It does nothing when the unit
// has no watchdog. Call it from the loop whose hanging the watchdog should
// catch, never from a goroutine of its own.
func (n *Notifier) Watchdog() {
	if n.WatchdogInterval() > 0 {
		n.send(KindWatchdog, sd.SdNotifyWatchdog)
	}
}

// WatchdogInterval is the watchdog's timeout (WatchdogSec=), 0 when there
// is none. Ping at least every half of it.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// send writes one datagram, as go-systemd's daemon.SdNotify does, to the
// socket fixed at construction, and logs a failure.
func (n *Notifier) send(kind, state string) {
	if !n.Enabled() {
		return
	}
	if err := n.write(state); err != nil {
		n.warn(kind, err)
	}
}

func (n *Notifier) write(state string) error {
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: connect %s: %w", n.socket, err)
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(sendTimeout)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: send to %s: %w", n.socket, err)
	}
	return nil
}

// warn logs a failure of kind at most once per warnEvery, with the count
// of the failures left unlogged since.
func (n *Notifier) warn(kind string, err error) {
	n.mu.Lock()
	now := n.now()
	last, seen := n.warned[kind]
	if seen && now.Sub(last) < warnEvery {
		n.suppressed[kind]++
		n.mu.Unlock()
		return
	}
	n.warned[kind] = now
	skipped := n.suppressed[kind]
	n.suppressed[kind] = 0
	n.mu.Unlock()
	n.log.Warn("systemd notification failed", "kind", kind, "err", err, "unlogged_since_last", skipped)
}
