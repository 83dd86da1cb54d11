package floor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/random"
	"github.com/portcullis-gw/portcullis/internal/replay"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// maxBatch is the largest group size measured: the group commit's own
// bound (internal/store's maxGroup) on the calls one transaction takes.
const maxBatch = 256

// StoreCommitAt is the store part at an average group size batch (≥ 1):
// the CPU of a transaction of k approvals, T(k), is measured at the whole
// sizes around it, k = ⌊batch⌋ and k+1, and interpolated, T(batch) =
// T(k) + (batch−k)·(T(k+1)−T(k)), then divided by batch. Rounding the
// average instead moved the part by up to a third at the group sizes a
// busy gateway sees: in one run of internal/benchapprove, 2.26 calls per
// transaction measured at 2 gave 214 µs an approval, rounds at 3 gave
// 132–151 µs. Each size gets a new store file in dir, holding prefill
// approvals.
func StoreCommitAt(dir string, n int, batch float64, prefill int) (Part, error) {
	if !(batch >= 1 && batch <= maxBatch) {
		return Part{Name: "store commit"}, fmt.Errorf("floor: group size %v, want 1 to %d", batch, maxBatch)
	}
	k := int(math.Floor(batch))
	lo, err := StoreCommit(filepath.Join(dir, fmt.Sprintf("floor-%d.db", k)), n, k, prefill)
	if err != nil || float64(k) == batch {
		return lo, err
	}
	hi, err := StoreCommit(filepath.Join(dir, fmt.Sprintf("floor-%d.db", k+1)), n, k+1, prefill)
	if err != nil {
		return hi, err
	}
	tLo, tHi := lo.US*float64(k), hi.US*float64(k+1)
	p := Part{Name: lo.Name, US: (tLo + (batch-float64(k))*(tHi-tLo)) / batch,
		Method: fmt.Sprintf("bbolt: Auth-Nonce, box and inner nonce claims + approval record, random keys, %d approvals stored before, transactions of %d and %d approvals (%.1f and %.1f µs an approval) interpolated at %.2f, ÷ it (fdatasync CPU, not its wait)",
			prefill, k, k+1, lo.US, hi.US, batch)}
	if !(p.US > 0) {
		return p, fmt.Errorf("floor: store part %v µs at group size %v", p.US, batch)
	}
	return p, nil
}

// StoreCommit measures the store's writes for n approvals: per group of
// batch approvals, the one bbolt transaction the group committer runs with
// each approval's Auth-Nonce, box nonce and inner nonce claims (replay.Claim)
// and its record (dynfw.InsertApproval), as the approver's commit writes
// them; its CPU divided by batch. The keys are random, as the clients'
// nonces and the gateway's tokens are, spread over storeUsers users, in a
// store that already holds prefill approvals with their nonces (a busy
// gateway's store is not empty, and random keys into a larger tree dirty
// more pages per transaction than sequential keys into an empty one).
//
// Measure measures it through StoreCommitAt; StoreCommit alone measures
// it at one whole group size, in a new store file at path.
func StoreCommit(path string, n, batch, prefill int) (Part, error) {
	if n < 1 || batch < 1 || batch > maxBatch || prefill < 0 {
		return Part{Name: "store commit"}, fmt.Errorf("floor: bad store options: %d operations, group of %d, prefill %d", n, batch, prefill)
	}
	p := Part{Name: "store commit",
		Method: fmt.Sprintf("bbolt: Auth-Nonce, box and inner nonce claims + approval record, random keys, %d approvals stored before, one transaction of %d approvals, ÷ %d (fdatasync CPU, not its wait)", prefill, batch, batch)}
	st, err := store.OpenBolt(path, time.Second)
	if err != nil {
		return p, err
	}
	defer st.Close()
	ctx := context.Background()
	write := func(tx store.Tx, a *storeApproval, now, exp time.Time) error {
		for _, k := range a.nonces {
			fresh, err := replay.Claim(tx, now, exp, k)
			if err != nil {
				return err
			}
			if !fresh {
				return errors.New("nonce not fresh")
			}
		}
		return dynfw.InsertApproval(tx, a.approval(now, exp), now)
	}
	for done := 0; done < prefill; {
		now := time.Now()
		m := min(500, prefill-done)
		if err := st.Update(ctx, func(tx store.Tx) error {
			for i := 0; i < m; i++ {
				a, err := newStoreApproval(done + i)
				if err != nil {
					return err
				}
				if err := write(tx, a, now, now.Add(dynfw.DefaultTokenTTL)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return p, fmt.Errorf("prefill: %w", err)
		}
		done += m
	}
	groups := (n + batch - 1) / batch
	work := make([]*storeApproval, groups*batch)
	for i := range work {
		if work[i], err = newStoreApproval(i); err != nil {
			return p, err
		}
	}
	var us float64
	us, err = perOp(groups, func(g int) error {
		now := time.Now()
		exp := now.Add(dynfw.DefaultTokenTTL)
		return st.Update(ctx, func(tx store.Tx) error {
			for _, a := range work[g*batch : (g+1)*batch] {
				if err := write(tx, a, now, exp); err != nil {
					return err
				}
			}
			return nil
		})
	})
	p.US = us / float64(batch)
	return p, err
}

// storeUsers is how many users the store part's approvals come from (the
// bench's clients).
const storeUsers = 32

// storeApproval is one approval's keys, random as the real ones.
type storeApproval struct {
	nonces    [3]string // replay keys: Auth-Nonce, box nonce, inner nonce
	token     string
	user      string
	addrOctet byte
}

func newStoreApproval(i int) (*storeApproval, error) {
	u := i % storeUsers
	syncToken := fmt.Sprintf("%032x", u)
	user := fmt.Sprintf("%024x", u)
	var r [4]string
	for k := range r {
		var err error
		if r[k], err = random.Alnum(32); err != nil {
			return nil, err
		}
	}
	return &storeApproval{
		nonces: [3]string{
			replay.Key(replay.KindAuth, syncToken, r[0]),
			replay.Key(replay.KindBox, syncToken, r[1]),
			replay.Key(replay.KindInner, user, r[2]),
		},
		token: r[3], user: user, addrOctet: byte(i),
	}, nil
}

func (a *storeApproval) approval(now, exp time.Time) *dynfw.Approval {
	return &dynfw.Approval{Token: a.token, OrgID: "5f2b7c9e1a3d4e6f8a0b1c2d",
		UserID: a.user, ServerID: "7b2d4f6a8c0e1b3d5f7a9c2e", Protocol: "udp", Port: 1194,
		Addrs:   []netip.Addr{netip.AddrFrom4([4]byte{203, 0, 113, a.addrOctet})},
		Created: now, Expires: exp}
}
