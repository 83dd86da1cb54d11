package api

import (
	"encoding/json"
	"testing"
)

// FuzzLinkReport decodes arbitrary reports strictly (the gateway side of
// the link state parser).
func FuzzLinkReport(f *testing.F) {
	f.Add([]byte(`{"version":1,"address":"198.51.100.1","reach":[{"host_id":"0123456789abcdef01234567","ok":true,"latency_ms":3}],"connections":[{"name":"l-a-b","state":"ESTABLISHED","bytes_in":1,"bytes_out":2}]}`))
	f.Add([]byte(`{"version":1,"reach":null,"connections":[]}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r LinkReport
		if err := DecodeStrict(data, &r); err != nil {
			return
		}
		if Validate(&r) != nil {
			return
		}
		again, _ := json.Marshal(r)
		var back LinkReport
		if err := DecodeStrict(again, &back); err != nil || Validate(&back) != nil {
			t.Fatalf("accepted report does not round-trip: %s", again)
		}
	})
}
