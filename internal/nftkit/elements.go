package nftkit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Why PutElements exists: the kernel keeps an existing element's expiry
// when it is added again with only the same timeout value, and
// google/nftables v0.3.0 writes only NFTA_SET_ELEM_TIMEOUT (it reads
// NFTA_SET_ELEM_EXPIRATION into SetElement.Expires but never sends it). So
// a re-added element would keep its old expiry. PutElements encodes the
// NEWSETELEM messages itself with both attributes, and a kernel with "set
// element timeout update support" (commit 4201f3938914, Linux 6.12+;
// measured on 6.18) then sets the expiry to exactly what was sent, longer
// or shorter, with no delete. Older kernels ignore the re-add altogether:
// see recreate.go (ProbeElementUpdate, RecreateElements).

// maxElemListBytes bounds the encoded element list of one message: its
// nested attribute has a 16-bit length, and google/nftables' encoder (and
// netlink's) overflow it silently.
const maxElemListBytes = 60000

// SetElements is one set's share of a PutElements batch.
type SetElements struct {
	Set      *nftables.Set
	Elements []nftables.SetElement
}

// PutElements adds the elements of timeout sets in one atomic batch, or
// updates those already present: each is sent with NFTA_SET_ELEM_TIMEOUT
// (its Timeout) and NFTA_SET_ELEM_EXPIRATION (its Expires, or its Timeout
// when Expires is zero), so the kernel sets its expiry to that value even
// when the timeout is unchanged. Every element needs a positive Timeout and
// a key; messages hold at most MaxElementsPerCall elements and stay below
// the 16-bit attribute length.
func (c *Conn) PutElements(ctx context.Context, puts ...SetElements) error {
	var msgs []netlink.Message
	n := 0
	for _, p := range puts {
		m, err := putMessages(p.Set, p.Elements)
		if err != nil {
			return err
		}
		msgs = append(msgs, m...)
		n += len(p.Elements)
	}
	if len(msgs) == 0 {
		return nil
	}
	return c.Do(ctx, func(*nftables.Conn) error {
		if err := c.sendBatch(msgs); err != nil {
			return fmt.Errorf("put %d elements: %w", n, err)
		}
		return nil
	})
}

// putMessages encodes the NEWSETELEM messages of els, as google/nftables
// does (set name, set ID, table, element list) plus the expiration.
func putMessages(s *nftables.Set, els []nftables.SetElement) ([]netlink.Message, error) {
	return elemMessages(s, els, unix.NFT_MSG_NEWSETELEM, netlink.Request|netlink.Acknowledge|netlink.Create, encodeTimedElement)
}

// elemMessages encodes the element messages of type typ (NEWSETELEM,
// DELSETELEM) of els, each element by encode, in messages of at most
// MaxElementsPerCall elements and maxElemListBytes of element list.
func elemMessages(s *nftables.Set, els []nftables.SetElement, typ uint16, flags netlink.HeaderFlags,
	encode func(nftables.SetElement) ([]byte, error)) ([]netlink.Message, error) {
	var msgs []netlink.Message
	var list []netlink.Attribute
	size := 0
	flush := func() error {
		if len(list) == 0 {
			return nil
		}
		m, err := newSetElemMessage(s, list, typ, flags)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
		list, size = nil, 0
		return nil
	}
	for i, e := range els {
		item, err := encode(e)
		if err != nil {
			return nil, fmt.Errorf("set %s element %d: %w", s.Name, i, err)
		}
		if len(list) == MaxElementsPerCall || size+4+len(item) > maxElemListBytes {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		list = append(list, netlink.Attribute{Type: uint16(len(list)+1) | unix.NLA_F_NESTED, Data: item})
		size += 4 + (len(item)+3)&^3
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return msgs, nil
}

// encodeTimedElement encodes one NFTA_LIST_ELEM's attributes: key, timeout
// and expiration, in milliseconds, big-endian.
func encodeTimedElement(e nftables.SetElement) ([]byte, error) {
	if len(e.Key) == 0 {
		return nil, errors.New("element without a key")
	}
	if e.Timeout <= 0 || e.Expires < 0 {
		return nil, fmt.Errorf("element timeout %v, expiration %v: both must be positive", e.Timeout, e.Expires)
	}
	expires := e.Expires
	if expires == 0 {
		expires = e.Timeout
	}
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.Nested(unix.NFTA_SET_ELEM_KEY, func(k *netlink.AttributeEncoder) error {
		k.Bytes(unix.NFTA_DATA_VALUE, e.Key)
		return nil
	})
	ae.Uint64(unix.NFTA_SET_ELEM_TIMEOUT, millis(e.Timeout))
	ae.Uint64(unix.NFTA_SET_ELEM_EXPIRATION, millis(expires))
	b, err := ae.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode element: %w", err)
	}
	return b, nil
}

// millis rounds up, so that a sub-millisecond time is not sent as "none".
func millis(d time.Duration) uint64 { return uint64((d + time.Millisecond - 1) / time.Millisecond) }

func newSetElemMessage(s *nftables.Set, list []netlink.Attribute, typ uint16, flags netlink.HeaderFlags) (netlink.Message, error) {
	elems, err := netlink.MarshalAttributes(list)
	if err != nil {
		return netlink.Message{}, fmt.Errorf("encode elements of set %s: %w", s.Name, err)
	}
	if len(elems)+4 > 0xffff {
		return netlink.Message{}, fmt.Errorf("elements of set %s: %d bytes overflow one attribute", s.Name, len(elems))
	}
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, s.Name)
	ae.Uint32(unix.NFTA_SET_ELEM_LIST_SET_ID, s.ID)
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, s.Table.Name)
	ae.Bytes(unix.NFTA_SET_ELEM_LIST_ELEMENTS|unix.NLA_F_NESTED, elems)
	attrs, err := ae.Encode()
	if err != nil {
		return netlink.Message{}, fmt.Errorf("encode set %s message: %w", s.Name, err)
	}
	return netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | int(typ)),
			Flags: flags,
		},
		Data: append(nfgenmsg(byte(s.Table.Family), 0), attrs...),
	}, nil
}

// nfgenmsg is the nf_tables message header: family, version, resource ID.
func nfgenmsg(family byte, resID uint16) []byte {
	return binary.BigEndian.AppendUint16([]byte{family, unix.NFNETLINK_V0}, resID)
}

// sendBatch sends msgs between a batch begin and end, as one transaction,
// and reads the kernel's answer to each; the caller holds c.mu (Do) and so
// the socket's deadline.
func (c *Conn) sendBatch(msgs []netlink.Message) error {
	nl, closeNL, err := c.rawConn()
	if err != nil {
		return err
	}
	defer func() { _ = closeNL() }()
	delim := func(t uint16) netlink.Message {
		return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(t), Flags: netlink.Request},
			Data: nfgenmsg(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)}
	}
	b := make([]netlink.Message, 0, len(msgs)+2)
	b = append(append(append(b, delim(unix.NFNL_MSG_BATCH_BEGIN)), msgs...), delim(unix.NFNL_MSG_BATCH_END))
	if _, err := nl.SendMessages(b); err != nil {
		return fmt.Errorf("send batch: %w", err)
	}
	// One answer (an ack or an error) per message; an error is counted as
	// the answer to one message, as google/nftables' Flush does.
	var errs error
	for got := 0; got < len(msgs); {
		replies, err := nl.Receive()
		if err != nil {
			if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, os.ErrDeadlineExceeded) {
				return errors.Join(errs, err) // the kernel sends nothing more
			}
			errs = errors.Join(errs, err)
			got++
			continue
		}
		if len(replies) == 0 {
			break // a test socket with nothing more to say
		}
		got += len(replies)
	}
	return errs
}

// rawConn returns the socket for sendBatch: the lasting one, or for a
// connection made by OpenWith one dialled for the batch.
func (c *Conn) rawConn() (*netlink.Conn, func() error, error) {
	if c.sock != nil {
		return c.sock, func() error { return nil }, nil
	}
	nl, err := c.dialRaw()
	if err != nil {
		return nil, nil, fmt.Errorf("nftables netlink: %w", err)
	}
	return nl, nl.Close, nil
}
