package dynfw

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestReadLiveMatchesJSON: for approvals as encoding/json writes them
// (IPv4 and IPv6 addresses, none to several, both protocols, any port,
// times in several zones), the direct read gives what json.Unmarshal does.
func TestReadLiveMatchesJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	zones := []*time.Location{time.UTC, time.FixedZone("w", -5*3600), time.FixedZone("e", 5*3600+1800)}
	for i := range 2000 {
		a := &Approval{Token: "t" + itoa(int64(i)), OrgID: "o", UserID: "u", ServerID: "s", Protocol: []string{"udp", "tcp"}[i%2],
			Port: rng.IntN(65536), Created: time.Unix(1760000000, 0), Used: i%3 == 0,
			Expires: time.Unix(1760000000+rng.Int64N(1e6), rng.Int64N(1e9)).In(zones[i%len(zones)])}
		for range rng.IntN(4) {
			if rng.IntN(2) == 0 {
				a.Addrs = append(a.Addrs, netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), 2, 1}))
			} else {
				var b [16]byte
				b[0], b[1], b[15] = 0x20, 0x01, byte(i)
				a.Addrs = append(a.Addrs, netip.AddrFrom16(b))
			}
		}
		raw, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var want liveApproval
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		got := liveApproval{Addrs: make([]netip.Addr, 3)}
		if !readLive(raw, &got) {
			t.Fatalf("not read directly: %s", raw)
		}
		if got.Protocol != want.Protocol || got.Port != want.Port || !got.Expires.Equal(want.Expires) ||
			!slices.Equal(got.Addrs, want.Addrs) {
			t.Fatalf("%s:\nread %+v\njson %+v", raw, got, want)
		}
	}
}

// TestDecodeLiveFallsBack: what is not as encoding/json writes an Approval
// is not read directly, and decodeLive decodes it in full (or fails).
func TestDecodeLiveFallsBack(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		ok   bool
		port int
	}{
		{`{"protocol": "udp", "port": 1194, "addrs": ["192.0.2.1"], "expires": "2026-11-30T08:00:00Z"}`, true, 1194},
		{`{"protocol":"udp","port":123456,"addrs":[],"expires":"2026-11-30T08:00:00Z"}`, true, 123456},
		{`{"protocol":"u\u0064p","port":1194,"addrs":[],"expires":"2026-11-30T08:00:00Z"}`, true, 1194},
		{`{"protocol":"udp","port":1194,"addrs":["x"],"expires":"2026-11-30T08:00:00Z"}`, false, 0},
		{`{"protocol":"udp","port":1194,"addrs":["192.0.2.1"]`, false, 0},
	} {
		var direct liveApproval
		if readLive([]byte(tc.raw), &direct) {
			t.Errorf("%s: read directly", tc.raw)
		}
		var ap liveApproval
		err := decodeLive([]byte(tc.raw), &ap)
		if (err == nil) != tc.ok || (tc.ok && ap.Port != tc.port) {
			t.Errorf("%s: %+v, %v", tc.raw, ap, err)
		}
	}
}

func BenchmarkDecodeLive(b *testing.B) {
	now := time.Now()
	raw, _ := json.Marshal(&Approval{Token: "0123456789abcdef0123456789abcdef", OrgID: "5f2b7c9e1a3d4e6f8a0b1c2d",
		UserID: "6a1c3e5f7b9d0a2c4e6f8b1d", ServerID: "7b2d4f6a8c0e1b3d5f7a9c2e", Protocol: "udp", Port: 1194,
		Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, Created: now, Expires: now.Add(time.Minute)})
	var ap liveApproval
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			readLive(raw, &ap)
		}
	})
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			ap = liveApproval{Addrs: ap.Addrs[:0]}
			_ = json.Unmarshal(raw, &ap)
		}
	})
}

// TestFastReadsRefuseRepeatedKeys: a record with a key given twice (not
// as encoding/json writes it; json.Unmarshal takes the last copy) is
// decoded in full, so reconcile, purge and the live count see the values
// the rest of the gateway sees.
func TestFastReadsRefuseRepeatedKeys(t *testing.T) {
	raw := []byte(`{"protocol":"udp","port":1194,"addrs":["192.0.2.1"],"expires":"2026-11-30T08:00:00Z","port":22,"expires":"2099-01-01T00:00:00Z","addrs":["0.0.0.0"]}`)
	var ap liveApproval
	if readLive(raw, &ap) {
		t.Fatalf("the direct read took a record with repeated keys: %+v", ap)
	}
	if err := decodeLive(raw, &ap); err != nil {
		t.Fatal(err)
	}
	if ap.Port != 22 || len(ap.Addrs) != 1 || ap.Addrs[0].String() != "0.0.0.0" || ap.Expires.Year() != 2099 {
		t.Fatalf("decodeLive: %+v, want json.Unmarshal's last copies", ap)
	}
	exp, err := approvalExpires(raw)
	if err != nil || exp.Year() != 2099 {
		t.Fatalf("approvalExpires: %v %v, want 2099 (the last copy)", exp, err)
	}
}
