package agent

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// logRe reads a line of `swanctl --log --raw`, the form the recordings in
// testdata/charonlog are in: the VICI log event's fields as charon sent them.
var logRe = regexp.MustCompile(`^log \{group=(\S+) level=(\d+) thread=\d+(?: ikesa-name=(\S+) ikesa-uniqueid=(\d+))? msg=(.*)\}$`)

// recorded reads a recording as charon's event stream.
func recorded(t *testing.T, file string) []CharonEvent {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "charonlog", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []CharonEvent
	at := time.Unix(1764470400, 0)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := logRe.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("%s: unreadable line %q", file, sc.Text())
		}
		lvl, _ := strconv.Atoi(m[2])
		conn := m[3]
		if conn == "(unnamed)" {
			conn = ""
		}
		at = at.Add(100 * time.Millisecond)
		out = append(out, CharonEvent{At: at, Kind: "log", Conn: conn, IKEID: m[4], Group: m[1], Level: lvl, Msg: m[5]})
	}
	return out
}

// The recordings: connection "t" between 10.240.0.1 (side a, the
// initiator) and 10.240.0.2 (b), subnets 10.1.0.0/24 and 10.2.0.0/24, IKE
// aes128-sha256-x25519; each fault induced with two real charons 5.9.8.
func recConf(side string) ConnConf {
	c := ConnConf{Remote: "10.240.0.2", IKE: []string{"aes128-sha256-x25519"}, ESP: []string{"aes128gcm128-x25519"},
		LocalSubnets: []string{"10.1.0.0/24"}, RemoteSubnets: []string{"10.2.0.0/24"}, CheckPort: 9790}
	if side == "b" {
		c.Remote, c.IKE = "10.240.0.1", []string{"aes256-sha384-x25519"}
		c.LocalSubnets, c.RemoteSubnets = []string{"10.2.0.0/24"}, []string{"10.9.0.0/24"}
	}
	return c
}

// TestClassifyRecorded feeds recorded log streams through Diag (which
// attributes a responder's "(unnamed)" lines by the peer's address) and
// checks each fault's reason, its raw cause and both sides' details.
func TestClassifyRecorded(t *testing.T) {
	cases := []struct {
		file, side string
		reach      Reach
		cut        string // stop after the first line containing this
		code       string
		cause      string
		local      []string
		remote     []string
		text       []string
	}{
		{file: "noproposal-a.log", side: "a", code: api.ReasonNoProposal, cause: "received NO_PROPOSAL_CHOSEN notify error",
			local: []string{"IKE:aes128-sha256-x25519", "ESP:aes128gcm128-x25519"}, text: []string{"refused ours"}},
		{file: "noproposal-b.log", side: "b", code: api.ReasonNoProposal, cause: "received proposals unacceptable",
			local:  []string{"IKE:AES_CBC_256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/CURVE_25519"},
			remote: []string{"IKE:AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519"}, text: []string{"the peer offers IKE:AES_CBC_128"}},
		{file: "psk-a.log", side: "a", code: api.ReasonAuthFailed, cause: "received AUTHENTICATION_FAILED notify error", text: []string{"keys differ"}},
		{file: "psk-b.log", side: "b", code: api.ReasonAuthFailed, cause: "tried 1 shared key for '10.240.0.2' - '10.240.0.1', but MAC mismatched"},
		{file: "ts-a.log", side: "a", code: api.ReasonTSUnaccepted, cause: "received TS_UNACCEPTABLE notify, no CHILD_SA built",
			local: []string{"10.1.0.0/24"}, text: []string{"10.1.0.0/24 === 10.2.0.0/24"}},
		{file: "ts-b.log", side: "b", code: api.ReasonTSUnaccepted, cause: "traffic selectors 10.2.0.0/24 === 10.1.0.0/24 unacceptable",
			local: []string{"10.2.0.0/24"}, remote: []string{"10.1.0.0/24"}, text: []string{"10.2.0.0/24 === 10.9.0.0/24", "the peer proposes 10.1.0.0/24"}},
		{file: "blocked-a.log", side: "a", cut: "restarting CHILD_SA", code: api.ReasonDPDTimeout, cause: "giving up after 2 retransmits"},
		{file: "blocked-b.log", side: "b", cut: "restarting CHILD_SA", code: api.ReasonDPDTimeout, cause: "giving up after 2 retransmits"},
		{file: "blocked-a.log", side: "a", reach: ReachOK, code: api.ReasonIPsecBlocked, cause: "retransmit 2 of request with message ID 0", text: []string{"TCP 9790"}},
		{file: "blocked-b.log", side: "b", reach: ReachFailed, code: api.ReasonHostDown, cause: "retransmit 2 of request with message ID 0"},
		{file: "blocked-a.log", side: "a", reach: ReachUnknown, code: api.ReasonNoAnswer},
		{file: "blocked-b.log", side: "b", reach: ReachOK, cut: "peer not responding", code: api.ReasonIPsecBlocked, cause: "peer not responding, trying again (2/0)"},
	}
	for _, tc := range cases {
		t.Run(tc.file+"/"+tc.code, func(t *testing.T) {
			conf := recConf(tc.side)
			d := NewDiag()
			d.SetConns(map[string]ConnConf{"t": conf}, map[string]Reach{conf.Remote: tc.reach})
			for _, ev := range recorded(t, tc.file) {
				d.Add(ev)
				if tc.cut != "" && strings.Contains(ev.Msg, tc.cut) {
					break
				}
			}
			r, ok := Classify(d.Lines("t"), conf, tc.reach)
			if !ok || r.Code != tc.code {
				t.Fatalf("reason %+v (ok %v), want %s", r, ok, tc.code)
			}
			if tc.cause != "" && r.Cause != tc.cause {
				t.Errorf("cause %q, want %q", r.Cause, tc.cause)
			}
			if tc.local != nil && strings.Join(r.Local, "|") != strings.Join(tc.local, "|") {
				t.Errorf("local %q, want %q", r.Local, tc.local)
			}
			if tc.remote != nil && strings.Join(r.Remote, "|") != strings.Join(tc.remote, "|") {
				t.Errorf("remote %q, want %q", r.Remote, tc.remote)
			}
			for _, w := range tc.text {
				if !strings.Contains(r.Text, w) {
					t.Errorf("text %q lacks %q", r.Text, w)
				}
			}
			if err := api.Validate(&api.LinkConnection{Name: "t", State: "x", Reason: &r, Events: d.Events("t", 20)}); err != nil {
				t.Errorf("the reason does not pass the report's validation: %v", err)
			}
			if got, ok := d.Reason("t", false); !ok || got.Code != tc.code {
				t.Errorf("Diag.Reason %+v", got)
			}
		})
	}
}

// TestClassifyNothing: lines that tell no failure give none, and an
// established SA's own retransmits wait for DPD to give up.
func TestClassifyNothing(t *testing.T) {
	at := time.Unix(1, 0)
	lines := []LogLine{
		{At: at, IKEID: "5", Msg: "IKE_SA t[5] established between 10.240.0.1[10.240.0.1]...10.240.0.2[10.240.0.2]"},
		{At: at, IKEID: "5", Msg: "sending DPD request"},
		{At: at, IKEID: "5", Msg: "retransmit 1 of request with message ID 0"},
	}
	if r, ok := Classify(lines, recConf("a"), ReachOK); ok {
		t.Fatalf("reason %+v from an established SA's retransmit", r)
	}
	if r, ok := Classify(nil, recConf("a"), ReachOK); ok {
		t.Fatalf("reason %+v from nothing", r)
	}
}

// TestDiagEvents: the history records up, down and each new reason once,
// and being up clears the reason.
func TestDiagEvents(t *testing.T) {
	conf := recConf("a")
	d := NewDiag()
	d.SetConns(map[string]ConnConf{"t": conf}, map[string]Reach{conf.Remote: ReachOK})
	d.Add(CharonEvent{Kind: "child-updown", Conn: "t", IKEID: "1", Up: true, At: time.Unix(10, 0)})
	if _, ok := d.Reason("t", true); ok {
		t.Fatal("a connection that is up has a reason")
	}
	for _, ev := range recorded(t, "blocked-a.log") {
		d.Add(ev)
	}
	d.Add(CharonEvent{Kind: "ike-updown", Conn: "t", IKEID: "5", At: time.Unix(20, 0)})
	var codes []string
	for _, e := range d.Events("t", 20) {
		codes = append(codes, e.Code)
	}
	if got := strings.Join(codes, " "); got != "UP DPD_TIMEOUT IPSEC_BLOCKED" {
		t.Fatalf("events %s", got)
	}
	d.Observe("t", true)
	if _, ok := d.Reason("t", true); ok {
		t.Fatal("reason kept after the connection came up")
	}
	if ev := d.Events("t", 1); len(ev) != 1 || ev[0].Code != api.EventUp || ev[0].Seq != 4 {
		t.Fatalf("last event %+v", ev)
	}
	// A connection the agent no longer carries is forgotten; events of
	// others' connections are not kept.
	d.SetConns(map[string]ConnConf{}, nil)
	d.Add(CharonEvent{Kind: "log", Conn: "t", IKEID: "9", Msg: "received AUTHENTICATION_FAILED notify error"})
	if d.Events("t", 20) != nil || d.Lines("t") != nil {
		t.Fatal("kept a connection it no longer carries")
	}
}

// TestDiagAttributesByAddress: an unnamed responder SA is its peer's
// connection from "<address> is initiating an IKE_SA" on, and an ID charon
// reuses (after a restart) for another peer is attributed anew.
func TestDiagAttributesByAddress(t *testing.T) {
	d := NewDiag()
	d.SetConns(map[string]ConnConf{"ab": {Remote: "192.0.2.2"}, "ac": {Remote: "192.0.2.3"}}, nil)
	d.Add(CharonEvent{Kind: "log", IKEID: "1", Msg: "192.0.2.2 is initiating an IKE_SA"})
	d.Add(CharonEvent{Kind: "log", IKEID: "1", Msg: "received proposals unacceptable"})
	d.Add(CharonEvent{Kind: "log", IKEID: "1", Msg: "192.0.2.3 is initiating an IKE_SA"})
	d.Add(CharonEvent{Kind: "log", IKEID: "1", Msg: "tried 1 shared key for 'a' - 'b', but MAC mismatched"})
	d.Add(CharonEvent{Kind: "log", IKEID: "1", Msg: "198.51.100.9 is initiating an IKE_SA"})
	d.Add(CharonEvent{Kind: "log", IKEID: "1", Msg: "received AUTHENTICATION_FAILED notify error"})
	if r, ok := d.Reason("ab", false); !ok || r.Code != api.ReasonNoProposal {
		t.Fatalf("ab: %+v", r)
	}
	if r, ok := d.Reason("ac", false); !ok || r.Code != api.ReasonAuthFailed || r.Cause != "tried 1 shared key for 'a' - 'b', but MAC mismatched" {
		t.Fatalf("ac: %+v", r)
	}
}
