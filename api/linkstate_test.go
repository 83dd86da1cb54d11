package api

import (
	"encoding/json"
	"strings"
	"testing"
)

// diagReport is a report with every diagnosis field set.
const diagReport = `{"version":1,"reach":[],"connections":[{"name":"corp-A-B","state":"CONNECTING","bytes_in":0,"bytes_out":0,` +
	`"child":"INSTALLED","established_s":12,"rekey_s":14000,"reauth_s":1,"packets_in":3,"packets_out":4,` +
	`"ike_proposal":"AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519","esp_proposal":"AES_GCM_16-128",` +
	`"local_ts":["10.1.0.0/24"],"remote_ts":["10.2.0.0/24"],` +
	`"reason":{"code":"NO_PROPOSAL_CHOSEN","text":"no proposal in common","cause":"received NO_PROPOSAL_CHOSEN notify error",` +
	`"local":["IKE:AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519"],"remote":["IKE:AES_CBC_256"],"since":1764470400},` +
	`"events":[{"seq":1,"at":1764470400,"code":"UP","text":"up"},{"seq":2,"at":1764470401,"code":"DPD_TIMEOUT","text":"x"}]}]}`

// FuzzLinkReport decodes arbitrary reports strictly (the gateway side of
// the link state parser), with seeds that carry every diagnosis field.
func FuzzLinkReport(f *testing.F) {
	f.Add([]byte(`{"version":1,"address":"198.51.100.1","reach":[{"host_id":"0123456789abcdef01234567","ok":true,"latency_ms":3}],"connections":[{"name":"l-a-b","state":"ESTABLISHED","bytes_in":1,"bytes_out":2}]}`))
	f.Add([]byte(`{"version":1,"reach":null,"connections":[]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(diagReport))
	f.Add([]byte(strings.Replace(diagReport, `"code":"UP"`, `"code":"up\u0000"`, 1)))
	f.Add([]byte(strings.Replace(diagReport, `"seq":1,`, `"seq":0,`, 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r LinkReport
		if err := DecodeStrict(data, &r); err != nil {
			return
		}
		if Validate(&r) != nil {
			return
		}
		for _, c := range r.Connections {
			if len(c.Events) > 20 || (c.Reason != nil && (len(c.Reason.Text) > 512 || len(c.Reason.Cause) > 1024)) {
				t.Fatalf("validation let an unbounded diagnosis through: %+v", c)
			}
			if c.Reason != nil && !printable(c.Reason.Text+c.Reason.Cause) {
				t.Fatalf("validation let unprintable text through: %q", c.Reason.Text+c.Reason.Cause)
			}
		}
		again, _ := json.Marshal(r)
		var back LinkReport
		if err := DecodeStrict(again, &back); err != nil || Validate(&back) != nil {
			t.Fatalf("accepted report does not round-trip: %s", again)
		}
	})
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// TestLinkReportDiagnosis: an old agent's report (no diagnosis) and a full
// one are accepted; bad codes, unprintable text, oversized lists and
// negative times are refused.
func TestLinkReportDiagnosis(t *testing.T) {
	ok := []string{
		`{"version":1,"reach":[],"connections":[{"name":"l-a-b","state":"ESTABLISHED","bytes_in":1,"bytes_out":2}]}`,
		diagReport,
	}
	for _, s := range ok {
		var r LinkReport
		if err := DecodeStrict([]byte(s), &r); err != nil {
			t.Fatalf("decode %s: %v", s, err)
		}
		if err := Validate(&r); err != nil {
			t.Fatalf("validate %s: %v", s, err)
		}
		// An old agent's report re-encodes to the same bytes: the front's
		// canonical-form check still passes it.
		if again, _ := json.Marshal(r); string(again) != s {
			t.Fatalf("not canonical:\n%s\n%s", again, s)
		}
	}
	events := strings.Repeat(`{"seq":1,"at":1,"code":"UP","text":""},`, 21)
	bad := map[string]string{
		"unknown code":      strings.Replace(diagReport, `"code":"NO_PROPOSAL_CHOSEN"`, `"code":"BOGUS"`, 1),
		"control character": strings.Replace(diagReport, `"text":"no proposal in common"`, `"text":"no\nproposal"`, 1),
		"non-ASCII text":    strings.Replace(diagReport, `"text":"no proposal in common"`, `"text":"no \u00e9"`, 1),
		"cause too long":    strings.Replace(diagReport, `"cause":"received`, `"cause":"`+strings.Repeat("x", 1025), 1),
		"too many events":   strings.Replace(diagReport, `"events":[`, `"events":[`+events, 1),
		"negative time":     strings.Replace(diagReport, `"established_s":12`, `"established_s":-1`, 1),
		"zero seq":          strings.Replace(diagReport, `"seq":1,`, `"seq":0,`, 1),
		"empty reason code": strings.Replace(diagReport, `"code":"NO_PROPOSAL_CHOSEN",`, `"code":"",`, 1),
		"long selector":     strings.Replace(diagReport, `"local_ts":["10.1.0.0/24"]`, `"local_ts":["`+strings.Repeat("1", 65)+`"]`, 1),
	}
	for what, s := range bad {
		var r LinkReport
		if err := DecodeStrict([]byte(s), &r); err != nil {
			continue
		}
		if err := Validate(&r); err == nil {
			t.Errorf("%s: accepted", what)
		}
	}
}

// TestLinkViewWithinNesting: the admin view of a link with a host's
// connection, its reason and history decodes under the strict decoder's
// nesting limit (the front re-decodes every answer).
func TestLinkViewWithinNesting(t *testing.T) {
	var r LinkReport
	if err := DecodeStrict([]byte(diagReport), &r); err != nil {
		t.Fatal(err)
	}
	v := Link{ID: "0123456789abcdef01234567", Name: "corp", IKE: []string{"aes128-sha256-x25519"}, ESP: []string{"aes128gcm128-x25519"},
		CheckPort: 9790, Excludes: [][]string{}, Locations: []LinkLocation{{ID: "0123456789abcdef01234568", Name: "a", Routes: []string{},
			Hosts: []LinkHost{{ID: "0123456789abcdef01234569", Name: "a1", Priority: 1, Timeout: 3}}}},
		Connections: []LinkHostConnection{{HostID: "0123456789abcdef01234569", Connection: r.Connections[0]}}}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var back Link
	if err := DecodeStrict(b, &back); err != nil {
		t.Fatalf("the admin view does not decode: %v", err)
	}
	if err := Validate(&back); err != nil {
		t.Fatalf("the admin view does not validate: %v", err)
	}
}
