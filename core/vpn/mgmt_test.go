package vpn

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// feedAll feeds lines and returns the events, the reply lines and the
// errors, in order of appearance.
func feedAll(lines []string) (events []*Event, replies []string, errs []error) {
	var p Parser
	for _, l := range lines {
		ev, reply, err := p.Feed(l)
		switch {
		case err != nil:
			errs = append(errs, err)
		case reply:
			replies = append(replies, l)
		case ev != nil:
			events = append(events, ev)
		}
	}
	return events, replies, errs
}

func TestParserEvents(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lines   []string
		want    []*Event
		replies []string
		errs    int
	}{
		{name: "info", lines: []string{">INFO:OpenVPN Management Interface Version 5 -- type 'help' for more info"},
			want: []*Event{{Kind: "INFO", Args: "OpenVPN Management Interface Version 5 -- type 'help' for more info"}}},
		{name: "connect with env", lines: []string{">CLIENT:CONNECT,0,1", ">CLIENT:ENV,common_name=u1",
			">CLIENT:ENV,password=$f$a=b,c", ">CLIENT:ENV,empty=", ">CLIENT:ENV,END"},
			want: []*Event{{Kind: KindConnect, CID: 0, KID: 1, HasEnv: true,
				Env: []Env{{"common_name", "u1"}, {"password", "$f$a=b,c"}, {"empty", ""}}}}},
		{name: "reauth", lines: []string{">CLIENT:REAUTH,7,3", ">CLIENT:ENV,END"},
			want: []*Event{{Kind: KindReauth, CID: 7, KID: 3, HasEnv: true}}},
		{name: "established and disconnect", lines: []string{">CLIENT:ESTABLISHED,4", ">CLIENT:ENV,a=1", ">CLIENT:ENV,END",
			">CLIENT:DISCONNECT,4", ">CLIENT:ENV,END"},
			want: []*Event{{Kind: KindEstablished, CID: 4, HasEnv: true, Env: []Env{{"a", "1"}}},
				{Kind: KindDisconnect, CID: 4, HasEnv: true}}},
		{name: "address", lines: []string{">CLIENT:ADDRESS,0,10.251.0.2,1"},
			want: []*Event{{Kind: KindAddress, CID: 0, Args: "10.251.0.2,1"}}},
		{name: "unknown client notification", lines: []string{">CLIENT:CR_RESPONSE,1,2,abc"},
			want: []*Event{{Kind: "CLIENT:CR_RESPONSE", Args: "1,2,abc"}}},
		{name: "replies", lines: []string{"SUCCESS: client-auth command succeeded", "TITLE\tx", "END"},
			replies: []string{"SUCCESS: client-auth command succeeded", "TITLE\tx", "END"}},
		{name: "reply between events", lines: []string{">LOG:x", "ERROR: no", ">HOLD:y"},
			want: []*Event{{Kind: "LOG", Args: "x"}, {Kind: "HOLD", Args: "y"}}, replies: []string{"ERROR: no"}},
		{name: "env outside a block", lines: []string{">CLIENT:ENV,a=b"}, errs: 1},
		{name: "block interrupted", lines: []string{">CLIENT:CONNECT,1,2", "SUCCESS: x", ">CLIENT:ESTABLISHED,1", ">CLIENT:ENV,END"},
			errs: 1, want: []*Event{{Kind: KindEstablished, CID: 1, HasEnv: true}}},
		{name: "entry without a name", lines: []string{">CLIENT:CONNECT,1,2", ">CLIENT:ENV,=x"}, errs: 1},
		{name: "entry without =", lines: []string{">CLIENT:CONNECT,1,2", ">CLIENT:ENV,novalue"}, errs: 1},
		{name: "connect without kid", lines: []string{">CLIENT:CONNECT,1"}, errs: 1},
		{name: "connect without cid", lines: []string{">CLIENT:CONNECT"}, errs: 1},
		{name: "signed id", lines: []string{">CLIENT:CONNECT,-1,2"}, errs: 1},
		{name: "hex id", lines: []string{">CLIENT:ESTABLISHED,0x1"}, errs: 1},
		{name: "id overflow", lines: []string{">CLIENT:ESTABLISHED,18446744073709551616"}, errs: 1},
		{name: "extra fields", lines: []string{">CLIENT:CONNECT,1,2,3"}, errs: 1},
		{name: "no tag", lines: []string{">nothing"}, errs: 1},
		{name: "line too long", lines: []string{">LOG:" + strings.Repeat("x", MaxLine)}, errs: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events, replies, errs := feedAll(tc.lines)
			if len(errs) != tc.errs {
				t.Fatalf("errors %v, want %d", errs, tc.errs)
			}
			for _, err := range errs {
				if !errors.Is(err, ErrProtocol) {
					t.Errorf("%v does not wrap ErrProtocol", err)
				}
			}
			if !reflect.DeepEqual(events, tc.want) && !(len(events) == 0 && len(tc.want) == 0) {
				t.Errorf("events %+v, want %+v", events, tc.want)
			}
			if !reflect.DeepEqual(replies, tc.replies) {
				t.Errorf("replies %q, want %q", replies, tc.replies)
			}
		})
	}
}

func TestParserLimits(t *testing.T) {
	var p Parser
	if _, _, err := p.Feed(">CLIENT:CONNECT,1,2"); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; i <= MaxEnv && err == nil; i++ {
		_, _, err = p.Feed(">CLIENT:ENV,k=v")
	}
	if !errors.Is(err, ErrProtocol) {
		t.Fatalf("%d entries accepted", MaxEnv+1)
	}
	// The parser is ready for the next event.
	if ev, _, err := p.Feed(">INFO:x"); err != nil || ev == nil {
		t.Fatalf("after the error: %v %v", ev, err)
	}
}

func TestReplyDone(t *testing.T) {
	for _, tc := range []struct {
		line         string
		multi        bool
		done, failed bool
	}{
		{"SUCCESS: ok", false, true, false},
		{"ERROR: bad", false, true, true},
		{"ERROR: bad", true, true, true},
		{"END", true, true, false},
		{"END", false, false, false},
		{"CLIENT_LIST\tx", true, false, false},
	} {
		if d, f := replyDone(tc.line, tc.multi); d != tc.done || f != tc.failed {
			t.Errorf("%q multi=%v: %v %v", tc.line, tc.multi, d, f)
		}
	}
}

func TestQuote(t *testing.T) {
	if got := quote("a \"b\" \\c\nd"); got != `"a 'b' 'c d"` {
		t.Fatalf("%s", got)
	}
	if got := quote(strings.Repeat("é", 300)); len(got) > 210 {
		t.Fatalf("%d bytes", len(got))
	}
}

// splitLines splits as the connection does: at '\n', trailing '\r' off.
func splitLines(data string) []string {
	var out []string
	for _, l := range strings.Split(data, "\n") {
		out = append(out, strings.TrimRight(l, "\r"))
	}
	return out
}

// FuzzManagement: whatever a worker writes, the parser never panics, and
// every event it accepts is written back (Lines) into lines that parse to
// the same event.
func FuzzManagement(f *testing.F) {
	for _, s := range []string{
		">INFO:OpenVPN Management Interface Version 5\r\n>CLIENT:CONNECT,0,1\r\n>CLIENT:ENV,common_name=u\r\n>CLIENT:ENV,END\r\n",
		">CLIENT:ADDRESS,0,10.0.0.2,1\nSUCCESS: x\n>CLIENT:ESTABLISHED,0\n>CLIENT:ENV,a=b=c\n>CLIENT:ENV,END\n",
		">CLIENT:REAUTH,1,2\n>CLIENT:ENV,password=$f$x\n>CLIENT:ENV,END\nEND\n",
		">CLIENT:DISCONNECT,3\n>CLIENT:ENV,END\n>CLIENT:CR_RESPONSE,1,2,eA==\n>LOG:1,I,x\n",
		">CLIENT:CONNECT,1,2\n>CLIENT:ENV,novalue\n>CLIENT:ENV\n>\n>:\n>CLIENT:\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		var p Parser
		for _, line := range splitLines(data) {
			ev, reply, err := p.Feed(line)
			if err != nil || reply || ev == nil {
				continue
			}
			again, _, errs := feedAll(ev.Lines())
			if len(errs) > 0 || len(again) != 1 {
				t.Fatalf("event %+v wrote %q, which parsed to %+v, %v", ev, ev.Lines(), again, errs)
			}
			if !reflect.DeepEqual(again[0], ev) {
				t.Fatalf("round trip of %q: %+v, then %+v", line, ev, again[0])
			}
		}
	})
}
