// Package floor measures the floor of one approval: the CPU that the
// cryptography, the kernel and the store cannot avoid, whatever the
// gateway's own code does around them. Each part is measured with the same
// calls the gateway makes:
//
//  1. a TLS 1.3 server handshake with the front's configuration
//     (web.TLSConfig) and certificate type (pki.SelfSignedTLS, ECDSA P-256),
//     key exchange X25519MLKEM768 (checked on every handshake);
//  2. one RSA-4096 PSS verify (approval.VerifyUserSignature);
//  3. the X25519 shared key, NaCl box open and seal (approval.SharedKey,
//     OpenRequestShared, SealResponseShared);
//  4. the HMAC-SHA512 check of the request (approval.HMACCheck over
//     approval.RequestHMACMessage);
//  5. one nftables element add over netlink (dynfw.NFTGate.Allow) into the
//     gate's set, in a network namespace the caller gives;
//  6. the store's writes for one approval (its Auth-Nonce, box nonce and
//     inner nonce, and its record), committed in bbolt transactions of
//     Options.Batch approvals each, divided by the batch; a group size
//     between two whole numbers (a measured average, 2.3 calls per
//     transaction) is interpolated between the transactions of those two
//     sizes (StoreCommitAt).
//
// CPU is read with clock_gettime(CLOCK_THREAD_CPUTIME_ID) around each
// operation, on a goroutine locked to its OS thread (runtime.LockOSThread):
// a locked thread runs only that goroutine, so the delta is that
// goroutine's user and system CPU, including the kernel work of its own
// syscalls (netlink, fdatasync), whatever GOMAXPROCS is. Not counted: work
// on other threads (the garbage collector's background marking, the TLS
// client's side of the handshake), and time spent waiting (the disk).
//
// internal/benchapprove compares the gateway's CPU per approval with the
// sum; internal/benchfloor prints the parts alone.
package floor

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/crypto/nacl/box"
	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/api/approval"
	"github.com/portcullis-gw/portcullis/core/pki"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/random"
	"github.com/portcullis-gw/portcullis/internal/replay"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/web"
)

// Part is one line of the floor.
type Part struct {
	Name, Method string
	US           float64 // CPU µs per operation
	// PerConnection marks the TLS handshake: an approval sent over a
	// kept-alive connection does not pay it.
	PerConnection bool
}

// Options size the measurement.
type Options struct {
	// Handshakes is the number of TLS handshakes; Ops the number of each
	// other operation.
	Handshakes, Ops int
	// Batch is the approvals per store transaction (the group commit's
	// size, an average: not necessarily whole), at least 1.
	Batch float64
	// NSPath is the network namespace (/proc/…/ns/net or a bind mount) the
	// nftables part runs in: never the host's.
	NSPath string
	// Dir holds the store file of the store part.
	Dir string
	// StorePrefill is how many approvals (with their nonces) the store
	// holds before the store part is measured (0: none).
	StorePrefill int
}

// Measure measures every part in order.
func Measure(o Options) ([]Part, error) {
	if o.Handshakes < 1 || o.Ops < 1 || !(o.Batch >= 1 && o.Batch <= maxBatch) || o.StorePrefill < 0 || o.NSPath == "" || o.Dir == "" {
		return nil, fmt.Errorf("floor: bad options %+v", o)
	}
	var parts []Part
	p, err := tlsHandshake(o.Handshakes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Name, err)
	}
	p.PerConnection = true
	parts = append(parts, p)
	c, err := newCrypto()
	if err != nil {
		return nil, err
	}
	for _, m := range []func() (Part, error){
		func() (Part, error) { return c.rsaVerify(o.Ops) },
		func() (Part, error) { return c.box(o.Ops) },
		func() (Part, error) { return c.hmac(o.Ops) },
		func() (Part, error) { return nftAdd(o.NSPath, o.Ops) },
		func() (Part, error) {
			return StoreCommitAt(o.Dir, o.Ops, o.Batch, o.StorePrefill)
		},
	} {
		p, err := m()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		parts = append(parts, p)
	}
	return parts, nil
}

// Sum is the floor of one approval: every part, or without the TLS
// handshake for an approval over a kept-alive connection.
func Sum(parts []Part, keptAlive bool) float64 {
	s := 0.0
	for _, p := range parts {
		if !(keptAlive && p.PerConnection) {
			s += p.US
		}
	}
	return s
}

// ThreadCPU is the calling thread's CPU time (user + system); the caller
// must hold runtime.LockOSThread. It is 0 if the clock cannot be read,
// which its callers report as a failed measurement.
func ThreadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// perOp runs fn n times on a locked thread and returns its CPU µs per call.
func perOp(n int, fn func(i int) error) (float64, error) {
	type result struct {
		d   time.Duration
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var total time.Duration
		for i := 0; i < n; i++ {
			start := ThreadCPU()
			err := fn(i)
			total += ThreadCPU() - start
			if err != nil {
				ch <- result{err: err}
				return
			}
		}
		ch <- result{d: total}
	}()
	res := <-ch
	if res.err != nil {
		return 0, res.err
	}
	us := float64(res.d) / float64(n) / float64(time.Microsecond)
	if us <= 0 || math.IsInf(us, 0) || math.IsNaN(us) {
		return 0, fmt.Errorf("measured %v µs per operation", us)
	}
	return us, nil
}

// tlsHandshake measures the server side of n TLS 1.3 handshakes against an
// in-process client on loopback: only the server's Handshake call is timed,
// on its locked thread.
func tlsHandshake(n int) (Part, error) {
	p := Part{Name: "TLS 1.3 handshake",
		Method: "server side, web.TLSConfig + pki.SelfSignedTLS (ECDSA P-256), X25519MLKEM768, loopback, client in process"}
	certPEM, keyPEM, err := pki.SelfSignedTLS([]string{"127.0.0.1"})
	if err != nil {
		return p, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return p, err
	}
	srvConf := web.TLSConfig(cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	cliConf := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768}, NextProtos: []string{"http/1.1"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return p, err
	}
	defer ln.Close()
	cliErr := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			c, err := tls.Dial("tcp", ln.Addr().String(), cliConf)
			if err != nil {
				cliErr <- err
				return
			}
			// Wait for the server's close so that the next dial
			// does not overlap this handshake.
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}
		cliErr <- nil
	}()
	p.US, err = perOp(n, func(int) error {
		raw, err := ln.Accept()
		if err != nil {
			return err
		}
		defer raw.Close()
		c := tls.Server(raw, srvConf)
		if err := c.Handshake(); err != nil {
			return err
		}
		st := c.ConnectionState()
		if st.Version != tls.VersionTLS13 || st.CurveID != tls.X25519MLKEM768 {
			return fmt.Errorf("negotiated version %x group %v, want TLS 1.3 and X25519MLKEM768", st.Version, st.CurveID)
		}
		return nil
	})
	if cerr := <-cliErr; err == nil && cerr != nil {
		err = cerr
	}
	return p, err
}

// cryptoLab holds one sealed approval request, made as a client makes it.
type cryptoLab struct {
	userPub    *rsa.PublicKey
	serverPriv [32]byte
	syncSecret string
	req        *approval.SealedRequest
	hmacMsg    string
	plainResp  []byte
}

func newCrypto() (*cryptoLab, error) {
	userKey, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		return nil, err
	}
	serverPub, serverPriv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	secret, err := random.Hex(32) // 64 hex characters; its prefixes are the other values
	if err != nil {
		return nil, err
	}
	c := &cryptoLab{userPub: &userKey.PublicKey, serverPriv: *serverPriv, syncSecret: secret}
	// An inner request and an answer of the sizes the client sends and
	// gets (a JSON object of a few hundred bytes, a small one back).
	inner := []byte(`{"token":"` + secret + `","nonce":"` + secret[:32] +
		`","timestamp":1780000000,"mac_addr":"02:00:00:00:00:01","mac_addrs":["02:00:00:00:00:01"],` +
		`"platform":"linux","device_id":"` + secret[:32] + `","device_name":"laptop",` +
		`"remote_address":"203.0.113.7","remote_address6":"","reconnect":false}`)
	c.plainResp = []byte(`{"allow":true,"token":"` + secret + `","reason":""}`)
	c.req, err = approval.SealRequest(approval.SealParams{Path: "/key/wg/" + secret[:24] + "/" +
		secret[24:48] + "/" + secret[48:], SyncToken: secret[:32],
		SyncSecret: c.syncSecret, ServerBoxPublic: *serverPub, UserKey: userKey, Inner: inner,
		Timestamp: strconv.FormatInt(time.Now().Unix(), 10), AuthNonce: secret[:32], Rand: rand.Reader})
	if err != nil {
		return nil, err
	}
	c.hmacMsg = approval.RequestHMACMessage(c.req.Headers, "POST", "/key/wg/x/y/z", &c.req.Body)
	c.req.Headers.Signature = approval.HMACSign(c.syncSecret, c.hmacMsg)
	return c, nil
}

func (c *cryptoLab) rsaVerify(n int) (Part, error) {
	p := Part{Name: "RSA-4096 PSS verify", Method: "approval.VerifyUserSignature (SHA-512 digest, base64 decode, rsa.VerifyPSS)"}
	var err error
	p.US, err = perOp(n, func(int) error { return approval.VerifyUserSignature(c.userPub, &c.req.Body) })
	return p, err
}

func (c *cryptoLab) box(n int) (Part, error) {
	p := Part{Name: "X25519 + box open/seal", Method: "approval.BoxKey.SharedKey (the server's key prepared once), OpenRequestShared, SealResponseShared (with its HMAC)"}
	bk, err := approval.NewBoxKey(&c.serverPriv)
	if err != nil {
		return p, err
	}
	p.US, err = perOp(n, func(int) error {
		shared, err := bk.SharedKey(&c.req.Body)
		if err != nil {
			return err
		}
		if _, err := approval.OpenRequestShared(&c.req.Body, shared); err != nil {
			return err
		}
		_, err = approval.SealResponseShared(rand.Reader, c.plainResp, c.syncSecret, shared)
		return err
	})
	return p, err
}

func (c *cryptoLab) hmac(n int) (Part, error) {
	p := Part{Name: "HMAC-SHA512 check",
		Method: fmt.Sprintf("approval.HMACCheck over approval.RequestHMACMessage (%d bytes)", len(c.hmacMsg))}
	var err error
	p.US, err = perOp(n, func(int) error {
		msg := approval.RequestHMACMessage(c.req.Headers, "POST", "/key/wg/x/y/z", &c.req.Body)
		if !approval.HMACCheck(c.syncSecret, msg, c.req.Headers.Signature) {
			return approval.ErrBadHMAC
		}
		return nil
	})
	return p, err
}

// nftAdd measures n element adds, one per call as the approver makes them,
// through the gate's lasting netlink connection in the namespace at nsPath.
func nftAdd(nsPath string, n int) (Part, error) {
	p := Part{Name: "nftables element add",
		Method: "dynfw.NFTGate.Allow of one element over netlink, fresh namespace, set growing from empty (incl. kernel time)"}
	f, err := os.Open(nsPath)
	if err != nil {
		return p, err
	}
	defer f.Close()
	gate, err := dynfw.OpenNFT(slog.New(slog.NewTextHandler(io.Discard, nil)), int(f.Fd()))
	if err != nil {
		return p, err
	}
	defer gate.Close()
	if err := gate.Ensure(); err != nil {
		return p, err
	}
	p.US, err = perOp(n, func(i int) error {
		a := netip.AddrFrom4([4]byte{100, 72, byte(i >> 8), byte(i)})
		return gate.Allow([]dynfw.Element{{Addr: a, Proto: "udp", Port: 1194, Timeout: time.Minute}})
	})
	return p, err
}

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
