package config

import (
	"encoding"
	"errors"
	"strings"
	"testing"
	"time"
)

// valueCase is one text given to a typed value under a key: want is the
// value's text after parsing, or err the exact error.
type valueCase struct {
	in, want, err string
}

// checkValues parses each case with Set under key and checks the value or
// the error, which must be an *Error naming the key.
func checkValues(t *testing.T, key string, fresh func() encoding.TextUnmarshaler, cases []valueCase) {
	t.Helper()
	for _, tc := range cases {
		v := fresh()
		err := Set(key, tc.in, v)
		if tc.err != "" {
			var ce *Error
			if !errors.As(err, &ce) || ce.Key != key || err.Error() != "config: "+key+": "+tc.err {
				t.Errorf("%s = %q: got %v, want config: %s: %s", key, tc.in, err, key, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s = %q: %v", key, tc.in, err)
			continue
		}
		got, _ := v.(encoding.TextMarshaler).MarshalText()
		if string(got) != tc.want {
			t.Errorf("%s = %q: got %q, want %q", key, tc.in, got, tc.want)
		}
		// What a value writes, it reads back the same.
		again := fresh()
		if err := again.UnmarshalText(got); err != nil {
			t.Errorf("%s: %q does not read back: %v", key, got, err)
		}
	}
}

func TestDuration(t *testing.T) {
	fresh := func() encoding.TextUnmarshaler { return &Duration{Min: 5 * time.Second, Max: 12 * time.Hour} }
	const bad = " is not a duration between 5s and 12h"
	checkValues(t, "approval.window", fresh, []valueCase{
		{in: "120s", want: "2m"},
		{in: "5s", want: "5s"},            // lower bound included
		{in: "12h", want: "12h"},          // upper bound included
		{in: "720m", want: "12h"},         // any unit
		{in: "1h30m", want: "1h30m"},      // compound
		{in: "4.5s", err: `"4.5s"` + bad}, // just under
		{in: "4999ms", err: `"4999ms"` + bad},
		{in: "12h0m1s", err: `"12h0m1s"` + bad}, // just over
		{in: "5x", err: `"5x"` + bad},
		{in: "120", err: `"120"` + bad}, // no unit
		{in: "-5s", err: `"-5s"` + bad},
		{in: "", err: `""` + bad},
	})
	// The range is said as it is written in the docs.
	for d, want := range map[time.Duration]string{time.Minute: "1m", 720 * time.Hour: "720h", 90 * time.Second: "1m30s", 0: "0s", 1500 * time.Millisecond: "1.5s"} {
		if got := (Duration{D: d}).String(); got != want {
			t.Errorf("%v: got %q, want %q", d, got, want)
		}
	}
}

func TestInt(t *testing.T) {
	fresh := func() encoding.TextUnmarshaler { return &Int{Min: 1, Max: 1000} }
	checkValues(t, "admin.login_max_failures", fresh, []valueCase{
		{in: "5", want: "5"},
		{in: "1", want: "1"},
		{in: "1000", want: "1000"},
		{in: "0", err: "0 is not between 1 and 1000"},
		{in: "1001", err: "1001 is not between 1 and 1000"},
		{in: "-3", err: "-3 is not between 1 and 1000"},
		{in: "1.5", err: `"1.5" is not a whole number between 1 and 1000`},
		{in: "five", err: `"five" is not a whole number between 1 and 1000`},
		{in: "", err: `"" is not a whole number between 1 and 1000`},
	})
}

func TestHostPort(t *testing.T) {
	fresh := func() encoding.TextUnmarshaler { return new(HostPort) }
	checkValues(t, "web.listen", fresh, []valueCase{
		{in: ":443", want: ":443"},
		{in: "127.0.0.1:8443", want: "127.0.0.1:8443"},
		{in: "[::1]:443", want: "[::1]:443"},
		{in: "localhost:https", want: "localhost:https"}, // service names are ports
		{in: "0.0.0.0:0", want: "0.0.0.0:0"},             // port bounds
		{in: ":65535", want: ":65535"},
		{in: "", want: ""}, // none
		{in: "8443", err: `"8443" is not host:port`},
		{in: "::1:443", err: `"::1:443" is not host:port`},
		{in: "example.com:443", err: `"example.com:443": host must be an IP address, localhost or empty`},
		{in: ":65536", err: `":65536": bad port`},
		{in: ":nosuchservice", err: `":nosuchservice": bad port`},
	})
}

func TestAddr(t *testing.T) {
	fresh := func() encoding.TextUnmarshaler { return new(Addr) }
	checkValues(t, "address", fresh, []valueCase{
		{in: "192.0.2.1", want: "192.0.2.1"},
		{in: "2001:db8::1", want: "2001:db8::1"},
		{in: "0.0.0.0", want: "0.0.0.0"},
		{in: "192.0.2.256", err: `"192.0.2.256" is not an IP address`},
		{in: "192.0.2.0/24", err: `"192.0.2.0/24" is not an IP address`},
		{in: "gw.example.com", err: `"gw.example.com" is not an IP address`},
		{in: "", err: `"" is not an IP address`},
	})
	if (Addr{}).String() != "" {
		t.Fatal("the zero Addr is not empty")
	}
}

func TestPrefix(t *testing.T) {
	fresh := func() encoding.TextUnmarshaler { return new(Prefix) }
	checkValues(t, "approval.trusted_proxies[0]", fresh, []valueCase{
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: "10.1.2.3/8", want: "10.0.0.0/8"}, // host bits cleared
		{in: "192.0.2.1", want: "192.0.2.1/32"},
		{in: "2001:db8::1", want: "2001:db8::1/128"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "::/0", want: "::/0"},
		{in: "10.0.0.0/32", want: "10.0.0.0/32"},
		{in: "10.0.0.0/33", err: `"10.0.0.0/33" is not an IP address or CIDR`},
		{in: "2001:db8::/129", err: `"2001:db8::/129" is not an IP address or CIDR`},
		{in: "proxy", err: `"proxy" is not an IP address or CIDR`},
		{in: "", err: `"" is not an IP address or CIDR`},
	})
}

func TestHTTPSURL(t *testing.T) {
	fresh := func() encoding.TextUnmarshaler { return new(HTTPSURL) }
	const bad = " is not https://host[:port]"
	checkValues(t, "web.public_urls[0]", fresh, []valueCase{
		{in: "https://vpn.example.com", want: "https://vpn.example.com"},
		{in: "https://vpn.example.com/", want: "https://vpn.example.com/"},
		{in: "https://a.example.com:9700", want: "https://a.example.com:9700"},
		{in: "https://[2001:db8::1]:443", want: "https://[2001:db8::1]:443"},
		{in: "http://vpn.example.com", err: `"http://vpn.example.com"` + bad},
		{in: "https://", err: `"https://"` + bad},
		{in: "https://vpn.example.com/x", err: `"https://vpn.example.com/x"` + bad},
		{in: "https://vpn.example.com?q=1", err: `"https://vpn.example.com?q=1"` + bad},
		{in: "https://u@vpn.example.com", err: `"https://u@vpn.example.com"` + bad},
		{in: "vpn.example.com", err: `"vpn.example.com"` + bad},
		{in: "", err: `""` + bad},
	})
}

func TestHeaderName(t *testing.T) {
	fresh := func() encoding.TextUnmarshaler { return new(HeaderName) }
	max := strings.Repeat("x", 64)
	checkValues(t, "approval.forwarded_header", fresh, []valueCase{
		{in: "X-Forwarded-For", want: "X-Forwarded-For"},
		{in: "x-real-ip", want: "x-real-ip"},
		{in: "", want: ""}, // none
		{in: max, want: max},
		{in: max + "x", err: `"` + max + `x" is not a header name`},
		{in: "X_Forwarded", err: `"X_Forwarded" is not a header name`},
		{in: "X Forwarded", err: `"X Forwarded" is not a header name`},
		{in: "X-F:", err: `"X-F:" is not a header name`},
	})
}

func TestDir(t *testing.T) {
	fresh := func() encoding.TextUnmarshaler { return new(Dir) }
	checkValues(t, "data_dir", fresh, []valueCase{
		{in: "/var/lib/portcullis", want: "/var/lib/portcullis"},
		{in: "/var/lib/../lib/x/", want: "/var/lib/x"},
		{in: "", err: "must be set"},
	})
	var d Dir
	if err := d.UnmarshalText([]byte("var/data")); err != nil || !strings.HasPrefix(string(d), "/") || !strings.HasSuffix(string(d), "/var/data") {
		t.Fatalf("relative dir: %q %v", d, err)
	}
}
