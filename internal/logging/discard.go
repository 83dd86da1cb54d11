package logging

import "log/slog"

// OrDiscard returns log, or a logger that drops every record when log is
// nil, so that a component built without a logger still runs.
func OrDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
