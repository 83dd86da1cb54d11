package rpc

import (
	"context"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// PeerCred is the identity of the process at the other end of a unix
// socket connection, as the kernel reports it (SO_PEERCRED).
type PeerCred struct {
	PID, UID, GID int
}

type peerCredKey struct{}

// peerCredOf reads SO_PEERCRED from a unix connection.
func peerCredOf(c net.Conn) (PeerCred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return PeerCred{}, fmt.Errorf("not a unix socket connection: %T", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return PeerCred{}, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return PeerCred{}, err
	}
	if serr != nil {
		return PeerCred{}, fmt.Errorf("SO_PEERCRED: %w", serr)
	}
	return PeerCred{PID: int(cred.Pid), UID: int(cred.Uid), GID: int(cred.Gid)}, nil
}

// WithPeerCred is an http.Server ConnContext that records the peer's
// credentials (or their absence) on every connection.
func WithPeerCred(ctx context.Context, c net.Conn) context.Context {
	cred, err := peerCredOf(c)
	if err != nil {
		return context.WithValue(ctx, peerCredKey{}, (*PeerCred)(nil))
	}
	return context.WithValue(ctx, peerCredKey{}, &cred)
}

// PeerCredFrom returns the credentials WithPeerCred recorded for the
// request's connection, or nil.
func PeerCredFrom(ctx context.Context) *PeerCred {
	p, _ := ctx.Value(peerCredKey{}).(*PeerCred)
	return p
}
