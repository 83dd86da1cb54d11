package nftkit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Kernels before Linux 6.12 ignore a non-exclusive re-add of an element
// that is already in a set: it is accepted (no error) and changes
// nothing, expiry included, whatever NFTA_SET_ELEM_TIMEOUT and
// NFTA_SET_ELEM_EXPIRATION it carries. The update of an existing element's
// timeout and expiration came with commit 4201f3938914 ("netfilter:
// nf_tables: set element timeout update support", Pablo Neira Ayuso, nf-next
// 2024-09-03; pulled in "Networking for v6.12"), so PutElements moves an
// existing element's expiry only on 6.12 and later. ProbeElementUpdate
// tells which kind of kernel runs; RecreateElements is the way for the
// others: an element already present is deleted and added again in the same
// transaction, so the packet path sees either the old element or the new
// one, never none.

// Probe timings: the element is put with probeLong, then again with the same
// timeout and an expiration of probeShort. An updating kernel then shows
// about probeShort left, another about probeLong.
const (
	probeLong  = time.Hour
	probeShort = time.Minute
	probeSlack = 10 * time.Second
)

// probeKey is the probe element's key (an IPv4 address of TEST-NET-1; the
// probe set is looked up by no rule).
var probeKey = []byte{192, 0, 2, 1}

// ProbeElementUpdate reports whether the kernel updates the expiry of an
// element already in a timeout set when it is added again with the same
// timeout and an explicit expiration (Linux 6.12+), which PutElements
// relies on. In table t, which must exist, it makes the set name (emptied
// if a probe that died left it), puts one element with a timeout and
// expiration of an hour, puts it again with the same timeout and an
// expiration of a minute, reads the element back and deletes the set.
// left is the time the kernel had left on the element.
func (c *Conn) ProbeElementUpdate(ctx context.Context, t *nftables.Table, name string) (works bool, left time.Duration, err error) {
	s := &nftables.Set{Table: t, Name: name, KeyType: nftables.TypeIPAddr, HasTimeout: true}
	if err := c.Do(ctx, func(nc *nftables.Conn) error {
		if err := nc.AddSet(s, nil); err != nil {
			return fmt.Errorf("queue probe set %s: %w", name, err)
		}
		nc.FlushSet(s)
		if err := nc.Flush(); err != nil {
			return fmt.Errorf("create probe set %s in table %s: %w", name, TableString(t), err)
		}
		return nil
	}); err != nil {
		return false, 0, err
	}
	defer func() {
		derr := c.Do(context.WithoutCancel(ctx), func(nc *nftables.Conn) error {
			nc.DelSet(s)
			if err := nc.Flush(); err != nil {
				return fmt.Errorf("delete probe set %s of table %s: %w", name, TableString(t), err)
			}
			return nil
		})
		err = errors.Join(err, derr)
	}()
	el := nftables.SetElement{Key: probeKey, Timeout: probeLong, Expires: probeLong}
	if err := c.PutElements(ctx, SetElements{Set: s, Elements: []nftables.SetElement{el}}); err != nil {
		return false, 0, fmt.Errorf("probe: %w", err)
	}
	el.Expires = probeShort
	if err := c.PutElements(ctx, SetElements{Set: s, Elements: []nftables.SetElement{el}}); err != nil {
		return false, 0, fmt.Errorf("probe: %w", err)
	}
	var els []nftables.SetElement
	if err := c.Do(ctx, func(nc *nftables.Conn) (err error) {
		els, err = nc.GetSetElements(s)
		return err
	}); err != nil {
		return false, 0, fmt.Errorf("probe: list set %s: %w", name, err)
	}
	if len(els) != 1 {
		return false, 0, fmt.Errorf("probe: set %s holds %d elements, want 1", name, len(els))
	}
	left = els[0].Expires
	switch {
	case left > 0 && left <= probeShort+probeSlack:
		return true, left, nil
	case left >= probeLong-probeSlack && left <= probeLong:
		return false, left, nil
	}
	return false, left, fmt.Errorf("probe: element put with %v then %v has %v left", probeLong, probeShort, left)
}

// RecreateElements puts the elements like PutElements on a kernel that
// does not update existing elements (see ProbeElementUpdate): first all of
// them in one batch of exclusive adds, which a kernel holding none of them
// commits (the cost of PutElements); when it holds some (EEXIST, the batch
// is undone), it asks the kernel for each element (a GETSETELEM each), and
// sends one batch that deletes those present and adds all, so that every
// element's expiry is the one sent. An element that expires between the
// question and the batch fails the batch (ENOENT, undone): it is asked
// again, up to recreateAttempts times. recreated is how many elements were
// deleted and added again.
func (c *Conn) RecreateElements(ctx context.Context, puts ...SetElements) (recreated int, err error) {
	var excl []netlink.Message
	n := 0
	for _, p := range puts {
		m, err := putMessages(p.Set, p.Elements)
		if err != nil {
			return 0, err
		}
		excl = append(excl, m...)
		n += len(p.Elements)
	}
	if len(excl) == 0 {
		return 0, nil
	}
	for i := range excl {
		excl[i].Header.Flags |= netlink.Excl
	}
	err = c.Do(ctx, func(*nftables.Conn) error {
		err := c.sendBatch(excl)
		if err == nil || !errors.Is(err, unix.EEXIST) {
			if err != nil {
				return fmt.Errorf("put %d elements: %w", n, err)
			}
			return nil
		}
		for attempt := 1; ; attempt++ {
			msgs, present, err := c.recreateBatch(puts)
			if err != nil {
				return err
			}
			err = c.sendBatch(msgs)
			if err == nil {
				recreated = present
				return nil
			}
			if !errors.Is(err, unix.ENOENT) || attempt == recreateAttempts {
				return fmt.Errorf("delete %d present elements and add %d: %w", present, n, err)
			}
		}
	})
	return recreated, err
}

// recreateAttempts bounds the delete-and-add batches of one
// RecreateElements (each failed one lost a race with an expiry).
const recreateAttempts = 3

// recreateBatch asks the kernel which of the elements it holds and
// returns the batch that deletes those and adds all, and how many it
// deletes; the caller holds c.mu (Do).
func (c *Conn) recreateBatch(puts []SetElements) ([]netlink.Message, int, error) {
	nl, closeNL, err := c.rawConn()
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = closeNL() }()
	var dels, adds []netlink.Message
	present := 0
	for _, p := range puts {
		var have []nftables.SetElement
		seen := map[string]bool{}
		for i, e := range p.Elements {
			if seen[string(e.Key)] {
				continue
			}
			seen[string(e.Key)] = true
			in, err := getElement(nl, p.Set, e.Key)
			if err != nil {
				return nil, 0, fmt.Errorf("look up element %d of set %s: %w", i, p.Set.Name, err)
			}
			if in {
				have = append(have, nftables.SetElement{Key: e.Key})
			}
		}
		d, err := elemMessages(p.Set, have, unix.NFT_MSG_DELSETELEM, netlink.Request|netlink.Acknowledge, encodeKeyElement)
		if err != nil {
			return nil, 0, err
		}
		a, err := putMessages(p.Set, p.Elements)
		if err != nil {
			return nil, 0, err
		}
		dels, adds = append(dels, d...), append(adds, a...)
		present += len(have)
	}
	return append(dels, adds...), present, nil
}

// getElement asks the kernel whether set s holds the element key (an
// expired one counts as absent, as for a delete).
func getElement(nl *netlink.Conn, s *nftables.Set, key []byte) (bool, error) {
	item, err := encodeKeyElement(nftables.SetElement{Key: key})
	if err != nil {
		return false, err
	}
	elems, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: 1 | unix.NLA_F_NESTED, Data: item}})
	if err != nil {
		return false, fmt.Errorf("encode element: %w", err)
	}
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, s.Table.Name)
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, s.Name)
	ae.Bytes(unix.NFTA_SET_ELEM_LIST_ELEMENTS|unix.NLA_F_NESTED, elems)
	attrs, err := ae.Encode()
	if err != nil {
		return false, fmt.Errorf("encode get of set %s: %w", s.Name, err)
	}
	_, err = nl.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM),
			Flags: netlink.Request},
		Data: append(nfgenmsg(byte(s.Table.Family), 0), attrs...),
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENOENT):
		return false, nil
	}
	return false, err
}

// encodeKeyElement encodes an NFTA_LIST_ELEM of a delete or get: its key.
func encodeKeyElement(e nftables.SetElement) ([]byte, error) {
	if len(e.Key) == 0 {
		return nil, errors.New("element without a key")
	}
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.Nested(unix.NFTA_SET_ELEM_KEY, func(k *netlink.AttributeEncoder) error {
		k.Bytes(unix.NFTA_DATA_VALUE, e.Key)
		return nil
	})
	b, err := ae.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode element key: %w", err)
	}
	return b, nil
}
