package agent

import (
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// Why a connection is not up, from charon's own log lines (its VICI "log"
// event stream, attributed to the connection; see diag.go). The texts
// matched here were recorded from charon 5.9.8 with each fault induced
// between two real charons (testdata/charonlog/*.log; classify_test.go).

// LogLine is one line of charon's log, attributed to a connection.
type LogLine struct {
	At time.Time
	// Conn is the connection's name ("" while charon had not matched the
	// IKE SA to a configuration: it was attributed by its peer's address).
	Conn string
	// IKEID is the IKE SA's unique ID ("" for lines outside any IKE SA).
	IKEID string
	Group string
	Level int
	Msg   string
}

// ConnConf is what the agent loaded for a connection: what a reason needs
// to tell both sides.
type ConnConf struct {
	Remote                      string
	IKE, ESP                    []string
	LocalSubnets, RemoteSubnets []string
	// CheckPort is the link's host-check port (TCP).
	CheckPort int
}

// Reach is what the host check of a connection's peer says.
type Reach int

// Host-check results.
const (
	ReachUnknown Reach = iota
	ReachOK
	ReachFailed
)

// Charon's log texts (prefixes and fragments) that classify.
const (
	msgNoProposalNotify = "received NO_PROPOSAL_CHOSEN notify"     // initiator: " error" (IKE) or ", no CHILD_SA built"
	msgProposalsRefused = "received proposals unacceptable"        // responder, IKE
	msgNoAcceptable     = "no acceptable proposal found"           // responder, ESP
	msgReceivedProps    = "received proposals: "                   // responder: the peer's
	msgConfiguredProps  = "configured proposals: "                 // responder: ours
	msgAuthNotify       = "received AUTHENTICATION_FAILED notify"  // initiator
	msgMACMismatch      = "but MAC mismatched"                     // responder: "tried 1 shared key for 'a' - 'b', but MAC mismatched"
	msgTSNotify         = "received TS_UNACCEPTABLE notify"        // initiator: ", no CHILD_SA built"
	msgTSPrefix         = "traffic selectors "                     // responder: "traffic selectors 10.2.0.0/24 === 10.1.0.0/24 unacceptable"
	msgTSSuffix         = " unacceptable"                          //
	msgRetransmit       = "retransmit "                            // "retransmit 1 of request with message ID 0"
	msgGivingUp         = "giving up after "                       // "giving up after 2 retransmits"
	msgNotResponding    = "peer not responding, trying again"      // keyingtries: another attempt
	msgEstablished      = " established between "                  // "IKE_SA t[4] established between a[a]...b[b]"
	msgRetransmitMsgID  = "of request with message ID "            //
	msgReceivedRetrans  = "received retransmit of request with ID" // the peer's retransmits: not ours
)

// Classify says why a connection is not up, from its log lines since it
// was last up (oldest first), what it loaded (conf) and what the host check
// of its peer says. The newest line that tells a reason decides; ok is false
// when none does. It is a pure function: the same lines give the same
// reason.
func Classify(lines []LogLine, conf ConnConf, reach Reach) (r api.LinkReason, ok bool) {
	established := map[string]bool{} // IKE SAs that were established
	for _, l := range lines {
		if strings.Contains(l.Msg, msgEstablished) && strings.HasPrefix(l.Msg, "IKE_SA ") {
			established[l.IKEID] = true
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		m := l.Msg
		switch {
		case strings.HasPrefix(m, msgNoProposalNotify), m == msgProposalsRefused, strings.HasPrefix(m, msgNoAcceptable):
			return noProposal(lines, i, conf), true
		case strings.HasPrefix(m, msgAuthNotify), strings.Contains(m, msgMACMismatch):
			return authFailed(l), true
		case strings.HasPrefix(m, msgTSNotify), strings.HasPrefix(m, msgTSPrefix) && strings.HasSuffix(m, msgTSSuffix):
			return tsUnacceptable(l, conf), true
		case strings.HasPrefix(m, msgGivingUp):
			if dpd(lines, i, established) {
				return reason(api.ReasonDPDTimeout, l, "the peer "+conf.Remote+" stopped answering dead peer detection ("+m+
					"); the tunnel was closed and is being set up again"), true
			}
			return noAnswer(l, conf, reach), true
		case strings.HasPrefix(m, msgNotResponding):
			return noAnswer(l, conf, reach), true
		case strings.HasPrefix(m, msgRetransmit) && strings.Contains(m, msgRetransmitMsgID):
			if established[l.IKEID] || retransmitID(m) >= 2 {
				continue // a request inside an established SA: DPD decides once it gives up
			}
			return noAnswer(l, conf, reach), true
		}
	}
	return api.LinkReason{}, false
}

func reason(code string, l LogLine, text string) api.LinkReason {
	return api.LinkReason{Code: code, Text: clip(text, 512), Cause: clip(l.Msg, 1024), Since: l.At.Unix()}
}

// dpd reports whether the retransmits line i gave up on were of a request
// inside an established IKE SA (dead peer detection, or any exchange of a
// live SA), not of the IKE_SA_INIT (message ID 0) or IKE_AUTH (1) of a new
// one. A responder's own requests start at 0 too, so an SA seen established
// counts whatever the ID.
func dpd(lines []LogLine, i int, established map[string]bool) bool {
	id := lines[i].IKEID
	if established[id] {
		return true
	}
	for j := i - 1; j >= 0; j-- {
		if lines[j].IKEID == id && strings.HasPrefix(lines[j].Msg, msgRetransmit) {
			return retransmitID(lines[j].Msg) >= 2
		}
	}
	return false
}

// retransmitID is the message ID of a "retransmit N of request with
// message ID M" line (-1 if it has none).
func retransmitID(m string) int {
	k := strings.LastIndex(m, msgRetransmitMsgID)
	if k < 0 {
		return -1
	}
	n, err := strconv.Atoi(m[k+len(msgRetransmitMsgID):])
	if err != nil {
		return -1
	}
	return n
}

func noAnswer(l LogLine, conf ConnConf, reach Reach) api.LinkReason {
	port := "the check port"
	if conf.CheckPort > 0 {
		port = "TCP " + strconv.Itoa(conf.CheckPort)
	}
	switch reach {
	case ReachOK:
		return reason(api.ReasonIPsecBlocked, l, "no answer to IKE from "+conf.Remote+" on UDP 500/4500, but its host check on "+port+
			" answers: IPsec is blocked on the way (a firewall dropping UDP 500/4500) or charon is not running on the peer")
	case ReachFailed:
		return reason(api.ReasonHostDown, l, "no answer to IKE from "+conf.Remote+" and its host check on "+port+
			" fails too: the peer host is down or unreachable")
	}
	return reason(api.ReasonNoAnswer, l, "no answer to IKE from "+conf.Remote+" on UDP 500/4500 (retransmits exhausted); no host check of the peer yet")
}

// noProposal tells both sides' proposals: charon logs them when it is the
// responder ("received proposals: …" is the peer's, "configured proposals:
// …" ours); as the initiator only the refusal is known, and ours come from
// what the agent loaded.
func noProposal(lines []LogLine, i int, conf ConnConf) api.LinkReason {
	r := reason(api.ReasonNoProposal, lines[i], "")
	for j := i; j >= 0 && (len(r.Local) == 0 || len(r.Remote) == 0); j-- {
		m := lines[j].Msg
		if len(r.Remote) == 0 && strings.HasPrefix(m, msgReceivedProps) {
			r.Remote = splitProposals(m[len(msgReceivedProps):])
		}
		if len(r.Local) == 0 && strings.HasPrefix(m, msgConfiguredProps) {
			r.Local = splitProposals(m[len(msgConfiguredProps):])
		}
	}
	if len(r.Local) == 0 {
		for _, p := range conf.IKE {
			r.Local = append(r.Local, "IKE:"+p)
		}
		for _, p := range conf.ESP {
			r.Local = append(r.Local, "ESP:"+p)
		}
		r.Local = bounded(r.Local)
	}
	peer := "the peer's are not known on this side (it refused ours)"
	if len(r.Remote) > 0 {
		peer = "the peer offers " + strings.Join(r.Remote, ", ")
	}
	r.Text = clip("no proposal in common with "+conf.Remote+": this side offers "+strings.Join(r.Local, ", ")+"; "+peer, 512)
	return r
}

func splitProposals(s string) []string {
	return bounded(strings.Split(s, ", "))
}

// bounded keeps a list to what the report allows (16 of 256 characters).
func bounded(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" && len(out) < 16 {
			out = append(out, clip(s, 256))
		}
	}
	return out
}

func authFailed(l LogLine) api.LinkReason {
	text := "authentication failed: the peer refused this side's pre-shared key (the keys differ)"
	if strings.Contains(l.Msg, msgMACMismatch) {
		text = "authentication failed: the peer's pre-shared key does not match this side's (the keys differ)"
	}
	return reason(api.ReasonAuthFailed, l, text)
}

// tsUnacceptable tells both sides' subnets: ours from what the agent
// loaded; the peer's from charon's line when it is the responder
// ("traffic selectors <ours as the peer sees them> === <the peer's> unacceptable").
func tsUnacceptable(l LogLine, conf ConnConf) api.LinkReason {
	r := reason(api.ReasonTSUnaccepted, l, "")
	r.Local = bounded(conf.LocalSubnets)
	peer := "the peer refused them"
	if strings.HasPrefix(l.Msg, msgTSPrefix) {
		sel := strings.TrimSuffix(strings.TrimPrefix(l.Msg, msgTSPrefix), msgTSSuffix)
		if ours, theirs, ok := strings.Cut(sel, " === "); ok {
			r.Remote = bounded(strings.Split(theirs, " "))
			peer = "the peer proposes " + theirs + " === " + ours + " (its side === this side)"
		}
	}
	r.Text = clip("traffic selectors do not match: this side has "+strings.Join(conf.LocalSubnets, " ")+" === "+
		strings.Join(conf.RemoteSubnets, " ")+" (this side === the peer's); "+peer, 512)
	return r
}

// clip cuts s to n bytes and replaces anything not printable ASCII, so
// that it passes the report's validation whatever charon logs.
func clip(s string, n int) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}
