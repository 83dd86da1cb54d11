package dynfw

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/portcullis-gw/portcullis/internal/nftkit"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// refreshSlack is how far an element's expiry in the kernel may be from
// its approval's remaining time before reconcile sets it again.
const refreshSlack = time.Second

// Reconcile makes the kernel match the store: the table exists, the guarded
// set is exactly guarded, every live approval's elements are present with
// their remaining time (an element the kernel holds with another expiry,
// older or longer, is set to it: adds carry an explicit expiration), and
// elements no live approval explains are removed (in one batch: deletes are
// the slow operation of nf_tables). added counts the elements added or
// set to their remaining time. With replaceAbove wanted elements or more
// and a gate that can (NFTGate), the allow sets' elements are replaced
// instead of listed (see replace and NFTGate.Replace): removed is then 0.
func (a *Approver) Reconcile(ctx context.Context, guarded []ProtoPort) (added, removed int, err error) {
	if a.gate == nil {
		return 0, 0, nil
	}
	defer a.releaseScanned()
	a.gateMu.Lock()
	defer a.gateMu.Unlock()
	if err := a.gate.Ensure(); err != nil {
		return 0, 0, err
	}
	if err := a.gate.SetGuarded(guarded); err != nil {
		return 0, 0, err
	}
	a.own.set(guarded)
	now := a.cfg.Now()
	want, live, err := a.wantedLive(ctx, now)
	if err != nil {
		return 0, 0, err
	}
	if r, ok := a.gate.(replacer); ok && len(want) >= replaceAbove {
		// Too many for one transaction: listed after all.
		if added, err := a.replace(r, want, live, len(guarded)); !errors.Is(err, errReplaceTooLarge) {
			return added, 0, err
		}
	}
	have, err := a.gate.Elements()
	if err != nil {
		return 0, 0, err
	}
	// Each element's remaining time was read at some moment of the
	// listing, between now and listed (100,000 elements take seconds to
	// list): its expiry in the kernel lies between now and listed plus
	// that time, and only an approval's expiry outside that span (by over
	// refreshSlack) is set again.
	listed := a.cfg.Now()
	var stale []Element
	put := make([]Element, 0, len(want))
	refreshed := 0
	for _, e := range have {
		k := keyOf(e)
		exp, ok := want[k]
		switch {
		case !ok:
			stale = append(stale, e)
			continue
		case exp.Before(now.Add(e.Timeout-refreshSlack)) || exp.After(listed.Add(e.Timeout+refreshSlack)):
			e.Timeout = exp.Sub(listed)
			if e.Timeout > 0 {
				put = append(put, e)
				refreshed++
			}
		}
		delete(want, k)
	}
	for k, exp := range want {
		if left := exp.Sub(listed); left > 0 {
			put = append(put, Element{Addr: k.addr, Proto: k.proto, Port: k.port, Timeout: left})
		}
	}
	if err := a.gate.Remove(stale); err != nil {
		return 0, 0, err
	}
	// In batches of reconcileBatch: the encoded messages of one batch are
	// held in memory until the kernel answers (100,000 elements in one
	// took ~70 MB of heap at a core's start), and a batch that the set
	// cannot hold is answered ENFILE, not ENOBUFS (see NFTGate.Allow). An
	// error leaves the batches before it in place: their elements are
	// live approvals' anyway.
	for len(put) > 0 {
		n := min(len(put), reconcileBatch)
		if err := a.gate.Allow(put[:n]); err != nil {
			return 0, len(stale), err
		}
		put = put[n:]
		added += n
	}
	a.log.Info("firewall reconciled", "live_approvals", live, "added", added-refreshed,
		"expiry_set", refreshed, "removed", len(stale), "guarded_ports", len(guarded))
	return added, len(stale), nil
}

// reconcileBatch is how many elements one of reconcile's add batches
// carries: two netlink messages (nftkit.MaxElementsPerCall each), whose
// error answers, each echoing its message, fit the socket's default
// receive buffer.
const reconcileBatch = 2 * nftkit.MaxElementsPerCall

// replacer is a Gate that can set the allow sets' elements in one atomic
// batch (NFTGate.Replace).
type replacer interface {
	Replace(elems []Element) error
}

// replaceAbove is how many wanted elements make Reconcile replace the
// allow sets' elements rather than list them and change the difference:
// the kernel's dump of a set costs it time quadratic in the set's size
// (each part of the dump walks the set from its start: 2.4 s of kernel CPU
// measured for 100,000 elements), a replacement one transaction that
// remakes the sets (~0.15 s for 100,000) with the adds. Below, listing is
// cheap and changes only the difference. A variable for tests.
var replaceAbove = 10_000

// replace is Reconcile by replacement: the sets get exactly the wanted
// elements, each with its time left; what they held before is not listed,
// so nothing is counted as removed. want is left as it is.
func (a *Approver) replace(r replacer, want map[elemKey]time.Time, live, guarded int) (added int, err error) {
	now := a.cfg.Now()
	put := make([]Element, 0, len(want))
	for k, exp := range want {
		if left := exp.Sub(now); left > 0 {
			put = append(put, Element{Addr: k.addr, Proto: k.proto, Port: k.port, Timeout: left})
		}
	}
	if err := r.Replace(put); err != nil {
		return 0, err
	}
	a.log.Info("firewall reconciled: allow sets replaced", "live_approvals", live, "elements", len(put), "guarded_ports", guarded)
	return len(put), nil
}

// elemKey is an element without its time, as a map key.
type elemKey struct {
	addr  netip.Addr
	proto string
	port  uint16
}

func keyOf(e Element) elemKey { return elemKey{addr: e.Addr, proto: e.Proto, port: e.Port} }

// wantedLive reads the live approvals placed here, one at a time (a
// reconcile at start may find 100,000: neither they nor their JSON are
// kept), and returns the elements they explain, each with the latest
// expiry of the approvals that hold it, and how many there were.
func (a *Approver) wantedLive(ctx context.Context, now time.Time) (map[elemKey]time.Time, int, error) {
	want := map[elemKey]time.Time{}
	live := 0
	err := forEachLive(ctx, a.st, now, func(ap *liveApproval) {
		if !a.placedPort(ap.Protocol, ap.Port) {
			return
		}
		live++
		for _, ad := range ap.Addrs {
			k := elemKey{addr: ad, proto: ap.Protocol, port: uint16(ap.Port)}
			if old, ok := want[k]; !ok || old.Before(ap.Expires) {
				want[k] = ap.Expires
			}
		}
	})
	return want, live, err
}

// wantedElements returns the elements the approvals explain, keyed, each
// with the longest remaining time of the approvals that hold it (none
// that has no time left).
func wantedElements(approvals []Approval, now time.Time) map[string]Element {
	want := map[string]Element{}
	for i := range approvals {
		left := approvals[i].Expires.Sub(now)
		if left <= 0 {
			continue
		}
		for _, e := range approvals[i].Elements() {
			e.Timeout = left
			if old, ok := want[e.key()]; !ok || old.Timeout < e.Timeout {
				want[e.key()] = e
			}
		}
	}
	return want
}

// SetGuarded updates the guarded ports (after a server change).
func (a *Approver) SetGuarded(guarded []ProtoPort) error {
	if a.gate == nil {
		return nil
	}
	if err := a.gate.SetGuarded(guarded); err != nil {
		return err
	}
	a.own.set(guarded)
	return nil
}

// PurgeExpired deletes expired nonces and approvals (the core runs it
// every minute).
func (a *Approver) PurgeExpired(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	now := a.cfg.Now()
	a.limits.sweep(now)
	n, err := purge(pctx, a.st, now)
	a.releaseScanned()
	if err != nil {
		a.log.Error("purge of expired approvals failed", "err", err)
	} else if n > 0 {
		a.log.Debug("purged expired approval records", "count", n)
	}
}

// LiveApprovals counts the approvals not yet expired (the core's status
// line).
func (a *Approver) LiveApprovals(ctx context.Context) (int, error) {
	defer a.releaseScanned()
	now := a.cfg.Now()
	n := 0
	err := a.st.View(ctx, func(tx store.Tx) error {
		return tx.Scan(store.BucketApprovals, "", func(key string, raw []byte) error {
			exp, err := approvalExpires(raw)
			if err != nil {
				return fmt.Errorf("decode %s/%s: %w", store.BucketApprovals, prefix(key), err)
			}
			if exp.After(now) {
				n++
			}
			return nil
		})
	})
	return n, err
}

// Live returns the approvals not yet expired, soonest to expire first, and
// the approver's clock they were read at (the admin's list).
func (a *Approver) Live(ctx context.Context) ([]Approval, time.Time, error) {
	now := a.cfg.Now()
	live, err := liveApprovals(ctx, a.st, now)
	a.releaseScanned()
	if err != nil {
		return nil, now, fmt.Errorf("list live approvals: %w", err)
	}
	sort.SliceStable(live, func(i, j int) bool { return live[i].Expires.Before(live[j].Expires) })
	return live, now, nil
}
