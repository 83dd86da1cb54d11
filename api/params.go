package api

import "fmt"

// ParamFormat is the strict format of one path parameter.
type ParamFormat struct {
	// Desc says what the value must be, for error messages.
	Desc  string
	Check func(string) bool
}

// ParamFormats maps every path parameter name used in Routes to its format.
// There is no loose character filter: a parameter either matches its exact
// shape or the request is refused before it reaches the core.
var ParamFormats = map[string]ParamFormat{
	"org_id":      {Desc: "24 lowercase hex characters", Check: IsObjectID},
	"user_id":     {Desc: "24 lowercase hex characters", Check: IsObjectID},
	"server_id":   {Desc: "24 lowercase hex characters", Check: IsObjectID},
	"link_id":     {Desc: "24 lowercase hex characters", Check: IsObjectID},
	"location_id": {Desc: "24 lowercase hex characters", Check: IsObjectID},
	"host_id":     {Desc: "24 lowercase hex characters", Check: IsObjectID},
	"sync_hash":   {Desc: "32 lowercase hex characters", Check: IsSyncHash},
	"link_code":   {Desc: "32 letters or digits", Check: IsLinkCode},
}

// IsSyncHash reports whether s has the shape of a profile's sync_hash
// (32 lowercase hex characters, the length of Pritunl's MD5 hex).
func IsSyncHash(s string) bool { return isLowerHex(s, 32) }

// LinkCodeLen is the length of a temporary profile link's code: 32 of
// [A-Za-z0-9], about 190 bits.
const LinkCodeLen = 32

// IsLinkCode reports whether s has the shape of a temporary profile
// link's code.
func IsLinkCode(s string) bool { return isAlnum(s, LinkCodeLen) }

// IsObjectID reports whether s is exactly 24 lowercase hex characters, the
// shape of the IDs Pritunl profiles carry.
func IsObjectID(s string) bool { return isLowerHex(s, 24) }

// IsSessionID reports whether s has the shape of a session identifier.
func IsSessionID(s string) bool { return isLowerHex(s, 64) }

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// CheckParam checks one path parameter against its format.
func CheckParam(name, value string) error {
	f, ok := ParamFormats[name]
	if !ok {
		return fmt.Errorf("path parameter %q has no format", name)
	}
	if !f.Check(value) {
		return fmt.Errorf("path parameter %q must be %s", name, f.Desc)
	}
	return nil
}
