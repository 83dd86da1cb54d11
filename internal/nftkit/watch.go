package nftkit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Why not google/nftables' Monitor (v0.3.0): it parses every notification
// (each set element of a large reconcile too) and hands the events over
// only at the generation message; its flag filter reads
// `monitorFlags&1<<msgType`, which Go parses as (monitorFlags&1)<<msgType,
// so a monitor of deletions only (MonitorActionDel) passes nothing; and a
// full socket buffer (ENOBUFS) ends it. Watching for deletions needs only
// the message type and the table name, so WatchDeletions reads those
// itself and treats ENOBUFS as "something may have been missed".

// Deletion is one notification of the kernel that something of a watched
// table went: the table itself, or a chain, set or rule in it. Missed
// reports instead that notifications were lost (the socket's buffer
// overflowed): anything may have happened meanwhile.
type Deletion struct {
	Kind   string // "table", "chain", "set" or "rule"
	Name   string // the chain's or set's name; a rule's chain
	Missed bool
}

func (d Deletion) String() string {
	switch {
	case d.Missed:
		return "notifications lost"
	case d.Kind == "table":
		return "table"
	}
	return d.Kind + " " + d.Name
}

// watchReadBuffer is the notification socket's receive buffer: a large
// batch (a reconcile of many elements) sends one notification per element.
const watchReadBuffer = 4 << 20

// WatchDeletions listens to the nf_tables notifications of the
// connection's namespace and calls fn for each deletion of t or of a
// chain, set or rule in it (whoever deleted it, this process included), and
// for lost notifications, until ctx ends; it then returns ctx's error. fn
// runs on the receiving goroutine and must not block. An error opening the
// socket is returned at once.
func (c *Conn) WatchDeletions(ctx context.Context, t *nftables.Table, fn func(Deletion)) error {
	nl, err := c.dialWatch()
	if err != nil {
		return fmt.Errorf("nftables notifications: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = nl.Close() })
	defer func() {
		if stop() {
			_ = nl.Close()
		}
	}()
	if err := nl.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		return fmt.Errorf("nftables notifications: join group: %w", err)
	}
	filter, err := watchFilter()
	if err != nil {
		return err
	}
	if err := nl.SetBPF(filter); err != nil {
		return fmt.Errorf("nftables notifications: filter: %w", err)
	}
	if err := nl.SetReadBuffer(watchReadBuffer); err != nil {
		return fmt.Errorf("nftables notifications: read buffer: %w", err)
	}
	for {
		msgs, err := nl.Receive()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, syscall.ENOBUFS) {
			fn(Deletion{Missed: true})
			continue
		}
		if err != nil {
			return fmt.Errorf("nftables notifications: %w", err)
		}
		for _, m := range msgs {
			if d, ok := deletionOf(m, t); ok {
				fn(d)
			}
		}
	}
}

// dialWatch opens a socket for notifications in the connection's
// namespace (the lasting socket answers batches and cannot share it).
func (c *Conn) dialWatch() (*netlink.Conn, error) {
	if c.nft.TestDial != nil {
		return nil, errors.New("no notifications on a test connection")
	}
	ns := 0
	if c.netns >= 0 {
		ns = c.netns
	}
	return netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ns})
}

// deletionOf reads a notification: a deletion of t or of something in it.
// Every nf_tables object message carries its table's name as attribute 1
// (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_SET_TABLE, NFTA_RULE_TABLE),
// after the 4-byte nfgenmsg whose first byte is the family.
func deletionOf(m netlink.Message, t *nftables.Table) (Deletion, bool) {
	if uint16(m.Header.Type)>>8 != unix.NFNL_SUBSYS_NFTABLES || len(m.Data) < 4 {
		return Deletion{}, false
	}
	var d Deletion
	nameAttr := uint16(0) // the object's name attribute
	switch uint16(m.Header.Type) & 0xff {
	case unix.NFT_MSG_DELTABLE:
		d.Kind = "table"
	case unix.NFT_MSG_DELCHAIN:
		d.Kind, nameAttr = "chain", unix.NFTA_CHAIN_NAME
	case unix.NFT_MSG_DELSET:
		d.Kind, nameAttr = "set", unix.NFTA_SET_NAME
	case unix.NFT_MSG_DELRULE:
		d.Kind, nameAttr = "rule", unix.NFTA_RULE_CHAIN
	default:
		return Deletion{}, false
	}
	if nftables.TableFamily(m.Data[0]) != t.Family {
		return Deletion{}, false
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return Deletion{}, false
	}
	ad.ByteOrder = binary.BigEndian
	table := ""
	for ad.Next() {
		switch ad.Type() {
		case 1:
			table = ad.String()
		case nameAttr:
			if nameAttr != 0 {
				d.Name = ad.String()
			}
		}
	}
	if ad.Err() != nil || table != t.Name {
		return Deletion{}, false
	}
	return d, true
}
