package agent

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/replay"
)

// Host checks: an agent proves to another that it holds the link's check
// key, and gets a proof back, so that reachability is only reported for
// real link hosts. A probe is
//
//	timestamp (8 bytes, Unix seconds) ‖ nonce (16) ‖ HMAC-SHA256(key, "probe" ‖ timestamp ‖ nonce)
//
// and the answer HMAC-SHA256(key, "reply" ‖ timestamp ‖ nonce). A probe that
// is stale (±30 s), replayed, or does not verify gets nothing: the connection is closed
// without a byte.

const (
	probeLen    = 8 + 16 + 32
	probeWindow = 30 * time.Second
	// maxProbes bounds the probes remembered for replay (a minute's worth
	// from 256 hosts checking every second, with room to spare).
	maxProbes = 1 << 16
)

func checkMAC(key []byte, label string, head []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write(head)
	return m.Sum(nil)
}

// CheckServer answers host checks on the check port.
type CheckServer struct {
	mu   sync.Mutex
	key  []byte
	ln   net.Listener
	log  *slog.Logger
	wg   sync.WaitGroup
	seen *replay.Memory
}

// ListenCheck starts a check server on addr.
func ListenCheck(addr string, log *slog.Logger) (*CheckServer, error) {
	log = logging.OrDiscard(log)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &CheckServer{ln: ln, log: log, seen: replay.NewMemory(maxProbes)}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// SetKey sets the link's check key (base64, from the state); a key that
// does not decode leaves the old one.
func (s *CheckServer) SetKey(b64 string) error {
	k, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return fmt.Errorf("check key: %w", err)
	}
	s.mu.Lock()
	s.key = k
	s.mu.Unlock()
	return nil
}

// Close stops the server and waits for it.
func (s *CheckServer) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *CheckServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
				s.log.Debug("host check: deadline", "err", err)
				return
			}
			buf := make([]byte, probeLen)
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			s.mu.Lock()
			key := s.key
			s.mu.Unlock()
			if key == nil {
				return
			}
			now := time.Now()
			ts := time.Unix(int64(binary.BigEndian.Uint64(buf[:8])), 0)
			if replay.CheckClock(ts, now, probeWindow) != nil {
				return
			}
			if !hmac.Equal(buf[24:], checkMAC(key, "probe", buf[:24])) {
				return
			}
			// A probe is answered once: a replayed one gets silence too.
			if !s.seen.Use(string(buf[8:24]), now, now.Add(replay.TTL(probeWindow))) {
				return
			}
			if _, err := c.Write(checkMAC(key, "reply", buf[:24])); err != nil {
				s.log.Debug("host check: reply not sent", "peer", c.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// ErrCheck is returned when a host does not prove it holds the key.
var ErrCheck = errors.New("host check failed")

// Probe checks one host and returns the round-trip time.
func Probe(ctx context.Context, key []byte, addr string) (time.Duration, error) {
	head := make([]byte, 24)
	binary.BigEndian.PutUint64(head, uint64(time.Now().Unix()))
	if _, err := rand.Read(head[8:]); err != nil {
		return 0, err
	}
	start := time.Now()
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return 0, err
	}
	if _, err := c.Write(append(head, checkMAC(key, "probe", head)...)); err != nil {
		return 0, err
	}
	reply := make([]byte, 32)
	if _, err := io.ReadFull(c, reply); err != nil {
		return 0, ErrCheck
	}
	if !hmac.Equal(reply, checkMAC(key, "reply", head)) {
		return 0, ErrCheck
	}
	return time.Since(start), nil
}

// probeAll checks every other link host (in parallel, bounded by ctx).
func probeAll(ctx context.Context, st *api.LinkState, self string) []api.LinkReach {
	key, err := base64.StdEncoding.DecodeString(st.CheckKey)
	if err != nil {
		return []api.LinkReach{}
	}
	out := make([]api.LinkReach, 0, len(st.Hosts))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range st.Hosts {
		if _, err := hostAddr(h); h.HostID == self || err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rtt, err := Probe(ctx, key, net.JoinHostPort(h.Address, strconv.Itoa(st.CheckPort)))
			r := api.LinkReach{HostID: h.HostID, OK: err == nil, LatencyMS: int(rtt.Milliseconds())}
			mu.Lock()
			out = append(out, r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// hostChecks (re)starts the check server on the link's check port and
// probes the other link hosts, within a bound shorter than the interval.
func (a *Agent) hostChecks(ctx context.Context, st *api.LinkState) {
	if a.check == nil || a.checkPort != st.CheckPort {
		a.closeCheck()
		srv, err := ListenCheck(net.JoinHostPort(a.cfg.Address, strconv.Itoa(st.CheckPort)), a.log)
		if err != nil {
			a.log.Warn("host-check server", "err", err)
			return
		}
		a.check, a.checkPort = srv, st.CheckPort
	}
	if err := a.check.SetKey(st.CheckKey); err != nil {
		a.log.Warn("host-check key", "err", err)
	}
	pctx, cancel := context.WithTimeout(ctx, a.cfg.Interval*7/10)
	defer cancel()
	a.reach = probeAll(pctx, st, a.cfg.URI.HostID)
}

// closeCheck stops the check server, if any.
func (a *Agent) closeCheck() {
	if a.check == nil {
		return
	}
	if err := a.check.Close(); err != nil {
		a.log.Warn("close host-check server", "err", err)
	}
	a.check = nil
}
