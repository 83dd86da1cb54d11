package floor

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/portcullis-gw/portcullis/api/approval"
	"github.com/portcullis-gw/portcullis/core/pki"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/random"
	"github.com/portcullis-gw/portcullis/web"
)

// The parts a Lab measures, in the order Parts lists them.
const (
	partTLS = iota
	partRSA
	partBox
	partHMAC
	partNFT
	labParts
)

// Lab measures every part of the floor but the store's, in slices: each
// Run adds operations of every part, and Parts gives each part's CPU per
// operation over all the slices so far. A caller that runs a slice between
// slices of its own load measures the floor over the same stretch of time
// as that load, not in a window of its own (on a shared machine whose
// speed moves over a tenth of a second and more, a part measured in one
// window carries that window's speed); but the floor's bursts then
// disturb the load: benchapprove's gateway CPU read 8–14% higher with
// them (its -floor-between), so by default it runs one slice after the
// round.
//
// A Lab is used from one goroutine; Close releases it.
type Lab struct {
	tls    *tlsLab
	crypto *cryptoLab
	bk     *approval.BoxKey
	ns     *os.File
	gate   *dynfw.NFTGate
	added  int // elements added to the gate so far: the next one's address
	cpu    [labParts]time.Duration
	ops    [labParts]int
	// clock reads the measuring thread's CPU: ThreadCPU, or a test's
	// stand-in.
	clock func() time.Duration
}

// NewLab prepares the parts: a TLS listener on loopback and the client's
// and the server's configurations, a user's RSA-4096 key and a sealed
// request, the server's box key, and the nftables gate in the network
// namespace at nsPath (its table made, its set empty).
func NewLab(nsPath string) (*Lab, error) {
	if nsPath == "" {
		return nil, errors.New("floor: no network namespace for the nftables part")
	}
	l := &Lab{clock: ThreadCPU}
	var err error
	if l.tls, err = newTLSLab(); err != nil {
		return nil, fmt.Errorf("floor: TLS: %w", err)
	}
	if l.crypto, err = newCrypto(); err != nil {
		l.Close()
		return nil, fmt.Errorf("floor: crypto: %w", err)
	}
	if l.bk, err = newBoxKey(l.crypto); err != nil {
		l.Close()
		return nil, fmt.Errorf("floor: box key: %w", err)
	}
	if l.ns, err = os.Open(nsPath); err != nil {
		l.Close()
		return nil, fmt.Errorf("floor: %w", err)
	}
	if l.gate, err = dynfw.OpenNFT(slog.New(slog.NewTextHandler(io.Discard, nil)), int(l.ns.Fd())); err != nil {
		l.Close()
		return nil, fmt.Errorf("floor: nftables: %w", err)
	}
	if err := l.gate.Ensure(); err != nil {
		l.Close()
		return nil, fmt.Errorf("floor: nftables: %w", err)
	}
	return l, nil
}

// Close releases the listener, the gate and the namespace's descriptor.
func (l *Lab) Close() {
	if l.gate != nil {
		_ = l.gate.Close()
	}
	if l.ns != nil {
		_ = l.ns.Close()
	}
	if l.tls != nil {
		_ = l.tls.ln.Close()
	}
}

// Run measures handshakes TLS handshakes and ops operations of each other
// part, one part after the other.
func (l *Lab) Run(handshakes, ops int) error {
	if handshakes < 0 || ops < 0 {
		return fmt.Errorf("floor: %d handshakes, %d operations", handshakes, ops)
	}
	if handshakes > 0 {
		d, err := l.tls.run(l.clock, handshakes)
		if err != nil {
			return fmt.Errorf("%s: %w", labInfo[partTLS].name, err)
		}
		l.cpu[partTLS] += d
		l.ops[partTLS] += handshakes
	}
	if ops == 0 {
		return nil
	}
	for _, m := range []struct {
		part int
		op   func(int) error
	}{{partRSA, l.rsaOp}, {partBox, l.boxOp}, {partHMAC, l.hmacOp}, {partNFT, l.nftOp}} {
		d, err := cpuOf(l.clock, ops, m.op)
		if err != nil {
			return fmt.Errorf("%s: %w", labInfo[m.part].name, err)
		}
		l.cpu[m.part] += d
		l.ops[m.part] += ops
	}
	return nil
}

// rsaOp is one RSA-4096 PSS verify of the request's signature.
func (l *Lab) rsaOp(int) error {
	return approval.VerifyUserSignature(l.crypto.userPub, &l.crypto.req.Body)
}

// boxOp is the X25519 shared key, the request's box opened and the
// answer's sealed.
func (l *Lab) boxOp(int) error {
	c := l.crypto
	shared, err := l.bk.SharedKey(&c.req.Body)
	if err != nil {
		return err
	}
	if _, err := approval.OpenRequestShared(&c.req.Body, shared); err != nil {
		return err
	}
	_, err = approval.SealResponseShared(rand.Reader, c.plainResp, c.syncSecret, shared)
	return err
}

// hmacOp is the HMAC-SHA512 check of the request.
func (l *Lab) hmacOp(int) error {
	c := l.crypto
	msg := approval.RequestHMACMessage(c.req.Headers, "POST", "/key/wg/x/y/z", &c.req.Body)
	if !approval.HMACCheck(c.syncSecret, msg, c.req.Headers.Signature) {
		return approval.ErrBadHMAC
	}
	return nil
}

// nftOp adds one element to the gate's set, as an approval does.
func (l *Lab) nftOp(int) error {
	i := l.added
	l.added++
	a := netip.AddrFrom4([4]byte{100, 72 + byte(i>>16), byte(i >> 8), byte(i)})
	return l.gate.Allow([]dynfw.Element{{Addr: a, Proto: "udp", Port: 1194, Timeout: time.Minute}})
}

// labInfo names the parts and says how each is measured.
var labInfo = [labParts]struct{ name, method string }{
	partTLS: {"TLS 1.3 handshake", "server side, web.TLSConfig + pki.SelfSignedTLS (ECDSA P-256), X25519MLKEM768, loopback, client in process"},
	partRSA: {"RSA-4096 PSS verify", "approval.VerifyUserSignature (SHA-512 digest, base64 decode, rsa.VerifyPSS)"},
	partBox: {"X25519 + box open/seal", "approval.BoxKey.SharedKey (the server's key prepared once), OpenRequestShared, SealResponseShared (with its HMAC)"},
	// partHMAC's method names the message's size (Parts).
	partHMAC: {"HMAC-SHA512 check", ""},
	partNFT:  {"nftables element add", "dynfw.NFTGate.Allow of one element over netlink, fresh namespace, set growing from empty (incl. kernel time)"},
}

// Parts is each part's CPU per operation over every Run so far; a part
// not yet run is an error.
func (l *Lab) Parts() ([]Part, error) {
	parts := make([]Part, 0, labParts)
	for i := range labParts {
		p := Part{Name: labInfo[i].name, Method: labInfo[i].method, PerConnection: i == partTLS}
		if i == partHMAC {
			p.Method = fmt.Sprintf("approval.HMACCheck over approval.RequestHMACMessage (%d bytes)", len(l.crypto.hmacMsg))
		}
		if l.ops[i] == 0 {
			return nil, fmt.Errorf("floor: %s: not measured", p.Name)
		}
		p.US = float64(l.cpu[i]) / float64(l.ops[i]) / float64(time.Microsecond)
		if !(p.US > 0) {
			return nil, fmt.Errorf("floor: %s: %v µs per operation", p.Name, p.US)
		}
		parts = append(parts, p)
	}
	return parts, nil
}

// tlsLab is the TLS part's listener and configurations.
type tlsLab struct {
	ln       net.Listener
	srv, cli *tls.Config
}

func newTLSLab() (*tlsLab, error) {
	certPEM, keyPEM, err := pki.SelfSignedTLS([]string{"127.0.0.1"})
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	t := &tlsLab{srv: web.TLSConfig(cert),
		cli: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13,
			CurvePreferences: []tls.CurveID{tls.X25519MLKEM768}, NextProtos: []string{"http/1.1"}}}
	if t.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	return t, nil
}

// run measures the server side of n TLS 1.3 handshakes against an
// in-process client on loopback: only the server's Handshake call is
// timed, on its locked thread.
func (t *tlsLab) run(clock func() time.Duration, n int) (time.Duration, error) {
	cliErr := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			c, err := tls.Dial("tcp", t.ln.Addr().String(), t.cli)
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
	d, err := cpuOf(clock, n, func(int) error {
		raw, err := t.ln.Accept()
		if err != nil {
			return err
		}
		defer raw.Close()
		c := tls.Server(raw, t.srv)
		if err := c.Handshake(); err != nil {
			return err
		}
		st := c.ConnectionState()
		if st.Version != tls.VersionTLS13 || st.CurveID != tls.X25519MLKEM768 {
			return fmt.Errorf("negotiated version %x group %v, want TLS 1.3 and X25519MLKEM768", st.Version, st.CurveID)
		}
		return nil
	})
	if err != nil {
		// The client may wait in a dial or a read of a handshake the
		// server gave up: closing the listener ends it.
		_ = t.ln.Close()
	}
	if cerr := <-cliErr; err == nil && cerr != nil {
		err = cerr
	}
	return d, err
}

// newBoxKey prepares the server's box key as the approver does, once.
func newBoxKey(c *cryptoLab) (*approval.BoxKey, error) { return approval.NewBoxKey(&c.serverPriv) }

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
