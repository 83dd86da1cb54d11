package api

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync"

	"github.com/go-playground/validator/v10"
)

// The formats of the custom rules, written as loops over the bytes: the
// same sets as these regular expressions (validate_test.go checks them
// against each other), at a fraction of their cost on the hot path.
//
//	safename     ^[A-Za-z0-9][A-Za-z0-9 ._@+-]{0,63}$, not ending in a space
//	username     ^[a-z0-9][a-z0-9._-]{0,31}$
//	DNS label    ^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$
//	connname     ^[A-Za-z0-9_.-]{1,64}$ (a link connection's name, which the
//	             agent hands to charon and to its hooks' environment)
//	proposal     ^[a-z0-9]{2,32}(-[a-z0-9]{2,32}){1,7}$ (a strongSwan
//	             proposal, algorithms joined by '-')
//	gatewayname  ^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$ (a gateway's
//	             cluster.name, as servers' gateways name it)

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || isDigit(c) }
func isAlnumByte(c byte) bool  { return isLowerAlnum(c) || c >= 'A' && c <= 'Z' }

func isSafeName(s string) bool {
	if len(s) == 0 || len(s) > 64 || !isAlnumByte(s[0]) || s[len(s)-1] == ' ' {
		return false
	}
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case isAlnumByte(c), c == ' ', c == '.', c == '_', c == '@', c == '+', c == '-':
		default:
			return false
		}
	}
	return true
}

func isUserName(s string) bool {
	if len(s) == 0 || len(s) > 32 || !isLowerAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLowerAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || !isAlnumByte(s[0]) || !isAlnumByte(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !isAlnumByte(c) && c != '-' {
			return false
		}
	}
	return true
}

func isProposal(s string) bool {
	parts, n := 1, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isLowerAlnum(c):
			n++
			if n > 32 {
				return false
			}
		case c == '-':
			if n < 2 {
				return false
			}
			parts, n = parts+1, 0
		default:
			return false
		}
	}
	return n >= 2 && parts >= 2 && parts <= 8
}

// IsGatewayName reports whether s is a valid gateway name (cluster.name,
// a server's gateways).
func IsGatewayName(s string) bool {
	if len(s) == 0 || len(s) > 63 || !isLowerAlnum(s[0]) || !isLowerAlnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !isLowerAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// customFormats are the string formats registered with the validator, by
// tag; fastValid calls the same functions.
var customFormats = map[string]func(string) bool{
	"objectid": IsObjectID,
	"safename": isSafeName,
	"username": isUserName,
	"hostaddr": IsHostAddr,
	// A loop, not the validator's regular expression, which costs more
	// than the rest of an approval's validation on kilobyte fields.
	"b64std":      isBase64Std,
	"proposal":    isProposal,
	"connname":    IsConnName,
	"ovpnname":    ovpnNameRe.MatchString,
	"tarname":     tarNameRe.MatchString,
	"gatewayname": IsGatewayName,
}

var (
	validateOnce sync.Once
	validate     *validator.Validate
)

func validatorInstance() *validator.Validate {
	validateOnce.Do(func() {
		v := validator.New(validator.WithRequiredStructEnabled())
		v.RegisterTagNameFunc(func(f reflect.StructField) string {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				return ""
			}
			return name
		})
		must := func(tag string, fn func(string) bool) {
			if err := v.RegisterValidation(tag, func(fl validator.FieldLevel) bool {
				return fn(fl.Field().String())
			}); err != nil {
				panic(err)
			}
		}
		for tag, fn := range customFormats {
			must(tag, fn)
		}
		validate = v
	})
	return validate
}

// IsHostAddr reports whether s is an IP address without zone, or a DNS name
// of letter-digit-hyphen labels.
func IsHostAddr(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	// Only a string of digits and dots, or one with a colon, can parse as
	// an address: others go straight to the name check.
	if strings.IndexByte(s, ':') >= 0 || onlyDigitsAnd(s, '.') {
		if a, err := netip.ParseAddr(s); err == nil {
			return a.Zone() == ""
		}
	}
	var last string
	for rest := s; ; {
		label, more, found := strings.Cut(rest, ".")
		if !isDNSLabel(label) {
			return false
		}
		if !found {
			last = label
			break
		}
		rest = more
	}
	// A name made of digits only would be a malformed IPv4 address.
	return !onlyDigitsAnd(last, '0')
}

// onlyDigitsAnd reports whether s holds nothing but digits and the byte
// also.
func onlyDigitsAnd(s string, also byte) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) && s[i] != also {
			return false
		}
	}
	return true
}

// IsConnName reports whether s is a valid link connection name: 1-64
// letters, digits or . _ -.
func IsConnName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnumByte(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

var ruleText = map[string]string{
	"required":    "is required",
	"objectid":    "must be 24 lowercase hex characters",
	"safename":    "must be 1-64 letters, digits, spaces or . _ @ + - starting with a letter or digit",
	"username":    "must be 1-32 lowercase letters, digits or . _ - starting with a letter or digit",
	"hostaddr":    "must be an IP address or a DNS name",
	"email":       "must be an email address",
	"cidrv4":      "must be an IPv4 network in CIDR notation",
	"hexadecimal": "must be hexadecimal",
	"unique":      "must not repeat a value",
	"b64std":      "must be padded standard base64",
	"proposal":    "must be a proposal such as aes128-sha256-x25519",
	"connname":    "must be 1-64 letters, digits or . _ -",
	"cidr":        "must be a network in CIDR notation",
	"ovpnname":    "must be a file name of letters, digits and . _ @ + - ending in .ovpn",
	"tarname":     "must be a file name of letters, digits and . _ @ + - ending in .tar",
	"startswith":  "has the wrong scheme",
}

// selfChecker is a wire type that is not a struct (a JSON object used as a
// map) and validates itself.
type selfChecker interface{ CheckSelf() error }

// Validate checks v's validate tags and returns a *FieldError naming the
// first field that fails, in its JSON spelling.
func Validate(v any) error {
	if sc, ok := v.(selfChecker); ok {
		return sc.CheckSelf()
	}
	// The common case, a valid value, without the validator's generic
	// walk; the validator decides, and names the field, otherwise.
	if fastValid(v) {
		return nil
	}
	err := validatorInstance().Struct(v)
	if err == nil {
		return nil
	}
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) || len(verrs) == 0 {
		return &FieldError{Reason: err.Error()}
	}
	fe := verrs[0]
	ns := fe.Namespace()
	if i := strings.IndexByte(ns, '.'); i >= 0 {
		ns = ns[i+1:]
	}
	msg, ok := ruleText[fe.Tag()]
	if !ok {
		switch fe.Tag() {
		case "min", "max", "len":
			switch fe.Kind() {
			case reflect.String:
				msg = fmt.Sprintf("length must be %s %s", map[string]string{"min": "at least", "max": "at most", "len": "exactly"}[fe.Tag()], fe.Param())
			case reflect.Slice, reflect.Map:
				msg = fmt.Sprintf("must have %s %s items", map[string]string{"min": "at least", "max": "at most", "len": "exactly"}[fe.Tag()], fe.Param())
			default:
				msg = fmt.Sprintf("must be %s %s", map[string]string{"min": "at least", "max": "at most", "len": "exactly"}[fe.Tag()], fe.Param())
			}
		case "oneof":
			msg = "must be one of: " + fe.Param()
		default:
			msg = "fails rule " + fe.Tag()
		}
	}
	return &FieldError{Field: ns, Reason: msg}
}

// FieldError says which field of a request is wrong and why.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return fmt.Sprintf("field %q %s", e.Field, e.Reason)
}
