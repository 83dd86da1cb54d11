package agent

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

func TestHostCheck(t *testing.T) {
	key := make([]byte, 32)
	key[0] = 7
	s, err := ListenCheck("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := s.ln.Addr().String()
	ctx := context.Background()
	// Without a key the server answers nobody.
	if _, err := Probe(ctx, key, addr); !errors.Is(err, ErrCheck) {
		t.Fatalf("probe before the key is set: %v", err)
	}
	s.SetKey(base64.StdEncoding.EncodeToString(key))
	if rtt, err := Probe(ctx, key, addr); err != nil || rtt <= 0 {
		t.Fatalf("probe with the right key: %v %v", rtt, err)
	}
	other := make([]byte, 32)
	if _, err := Probe(ctx, other, addr); !errors.Is(err, ErrCheck) {
		t.Fatalf("probe with another key: %v", err)
	}
	// An unauthenticated or stale probe gets not a single byte.
	silent := func(probe []byte) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = c.Write(probe)
		n, _ := c.Read(make([]byte, 64))
		if n != 0 {
			t.Fatalf("server answered %d bytes to a bad probe", n)
		}
	}
	silent(make([]byte, probeLen))
	head := make([]byte, 24)
	binary.BigEndian.PutUint64(head, uint64(time.Now().Add(-time.Hour).Unix()))
	silent(append(head, checkMAC(key, "probe", head)...))
	// A valid probe is answered once; the same bytes again get silence.
	fresh := make([]byte, 24)
	binary.BigEndian.PutUint64(fresh, uint64(time.Now().Unix()))
	copy(fresh[8:], "replayed-probe!!")
	probe := append(fresh, checkMAC(key, "probe", fresh)...)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = c.Write(probe)
	reply := make([]byte, 32)
	if _, err := io.ReadFull(c, reply); err != nil {
		t.Fatalf("first use of a valid probe not answered: %v", err)
	}
	c.Close()
	silent(probe)
}
