package vpn

// WorkerEvent is a change of a worker's process, told to Options.Events: the
// core records each one in its audit trail.
type WorkerEvent struct {
	ServerID string
	Kind     WorkerEventKind
	// PID is the process's (0 when none was started).
	PID int
	// Err is why a start failed or why the process ended (WorkerFailed,
	// WorkerExited).
	Err error
}

// WorkerEventKind is what happened to a worker's process.
type WorkerEventKind int

const (
	// WorkerStarted: the process serves (its management socket answered).
	WorkerStarted WorkerEventKind = iota + 1
	// WorkerStopped: the process was stopped (Stop, Restart, Close).
	WorkerStopped
	// WorkerExited: the process ended by itself; it is started again
	// after a back-off.
	WorkerExited
	// WorkerFailed: a start failed (no spec, no device, the process died
	// before it served); it is tried again after a back-off.
	WorkerFailed
)

func (k WorkerEventKind) String() string {
	switch k {
	case WorkerStarted:
		return "started"
	case WorkerStopped:
		return "stopped"
	case WorkerExited:
		return "exited"
	case WorkerFailed:
		return "failed"
	}
	return "unknown"
}

// event tells Options.Events, when set.
func (w *worker) event(kind WorkerEventKind, pid int, err error) {
	if w.o.Events != nil {
		w.o.Events(WorkerEvent{ServerID: w.id, Kind: kind, PID: pid, Err: err})
	}
}
