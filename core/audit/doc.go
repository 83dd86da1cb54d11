// Package audit owns the audit trail: the store bucket "audit", where every
// state-changing admin action, every notification state change and
// override, and every start and stop of a VPN worker is appended as one
// Entry (who, from where, when, what, on what, with which outcome), and
// logged as well.
//
// The trail is append-only: Record adds an entry under the next sequence
// number of the bucket (kept by the store, never reused, so entries are
// ordered and survive restarts), List reads it newest first a page at a
// time, and nothing changes or removes an entry but Prune, which deletes
// the entries older than the configured age (audit.max_age), oldest first,
// in bounded batches.
//
// Entries never hold secrets: callers put IDs, names and short reasons in
// them, and Record bounds every field.
package audit
