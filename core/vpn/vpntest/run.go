package vpntest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The worker's side of the process, as core/vpn gives it: the
// configuration on fd 3, the worker's directory on fd 4 and the
// management socket in it.
const (
	configFile = "/dev/fd/3"
	mgmtSocket = "/proc/self/fd/4/mgmt.sock"
)

var serverLine = regexp.MustCompile(`# portcullis worker for server ([0-9a-f]+):`)

// Main is a TestMain for a package whose tests run the fake: this process
// is the fake when a wrapper script started it, and runs the tests
// otherwise.
func Main(m *testing.M) {
	if IsFake() {
		os.Exit(Run())
	}
	os.Exit(m.Run())
}

// IsFake says whether this process is a fake openvpn (a wrapper script
// started it).
func IsFake() bool { return os.Getenv(Env) != "" }

// Run is the fake openvpn; it serves management connections until it is
// killed, and returns 1 (after printing why) when it cannot start.
func Run() int {
	err := run(os.Getenv(Env))
	fmt.Println("FAKE:", err)
	return 1
}

// client states
const (
	pending = iota // announced, not decided yet
	up             // connected: listed (unless Hidden)
	gone           // denied or killed
)

// fake is one fake openvpn process.
type fake struct {
	setup
	id      string
	clients []Client

	mu    sync.Mutex
	state []int // by client ID
}

func run(env string) error {
	var s setup
	if err := json.Unmarshal([]byte(env), &s); err != nil {
		return fmt.Errorf("%s: %w", Env, err)
	}
	ovpn, err := os.ReadFile(configFile)
	if err != nil {
		return fmt.Errorf("bad config: %w", err)
	}
	if !bytes.Contains(ovpn, []byte("management "+mgmtSocket+" unix\n")) {
		return errors.New("bad config: no management socket " + mgmtSocket)
	}
	m := serverLine.FindSubmatch(ovpn)
	if m == nil {
		return errors.New("bad config: it names no server")
	}
	f := &fake{setup: s, id: string(m[1])}
	clients, ok := s.Clients[f.id]
	if !ok {
		clients = s.Clients[""]
	}
	f.clients = clients
	for _, c := range f.clients {
		if c.Announce {
			f.state = append(f.state, pending)
		} else {
			f.state = append(f.state, up)
		}
	}
	if f.Notes {
		if err := os.WriteFile(filepath.Join(f.Dir, "config-"+f.id), ovpn, 0o600); err != nil {
			return err
		}
	}
	ln, err := net.Listen("unix", mgmtSocket)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	f.note("start")
	fmt.Println("FAKE listening")
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go f.serve(c)
	}
}

// note appends "<server id> <line>" to the events file (with Notes).
func (f *fake) note(line string) {
	if !f.Notes {
		return
	}
	file, err := os.OpenFile(filepath.Join(f.Dir, eventsName), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Println("FAKE events:", err)
		return
	}
	_, _ = io.WriteString(file, f.id+" "+line+"\n")
	_ = file.Close()
}

// addr is the client's real address.
func (f *fake) addr(cid int) string {
	if a := f.clients[cid].Addr; a != "" {
		return a
	}
	return fmt.Sprintf("192.0.2.%d", cid+1)
}

// client is the client of a command's ID argument.
func (f *fake) client(arg string) (int, bool) {
	cid, err := strconv.Atoi(arg)
	return cid, err == nil && cid >= 0 && cid < len(f.clients)
}

// serve answers one management connection.
func (f *fake) serve(c net.Conn) {
	defer c.Close()
	w := func(lines ...string) {
		for _, l := range lines {
			_, _ = io.WriteString(c, l+"\r\n")
		}
	}
	w(">INFO:OpenVPN Management Interface Version 5 -- fake")
	f.mu.Lock()
	for cid, st := range f.state {
		if st == pending {
			w(f.connect(cid)...)
		}
	}
	f.mu.Unlock()
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if f.Echo {
			fmt.Println("FAKE got", sc.Text())
		}
		f.mu.Lock()
		w(f.command(sc.Text())...)
		f.mu.Unlock()
	}
}

// connect is the announcement of the client's connect.
func (f *fake) connect(cid int) []string {
	c := f.clients[cid]
	out := []string{fmt.Sprintf(">CLIENT:CONNECT,%d,1", cid), ">CLIENT:ENV,untrusted_ip=" + f.addr(cid),
		">CLIENT:ENV,common_name=" + c.CN, ">CLIENT:ENV,X509_0_CN=" + c.CN, ">CLIENT:ENV,X509_0_O=" + c.O}
	if dec, err := serialDec(c.Serial); err == nil && dec != "" {
		out = append(out, ">CLIENT:ENV,tls_serial_0="+dec, ">CLIENT:ENV,tls_serial_hex_0="+serialHex(c.Serial))
	}
	if c.Password != "" {
		out = append(out, ">CLIENT:ENV,password="+c.Password)
	}
	return append(out, ">CLIENT:ENV,END")
}

// command is the answer to one command (f.mu held).
func (f *fake) command(cmd string) []string {
	a := strings.Fields(cmd)
	switch {
	case len(a) == 3 && a[0] == "client-auth-nt":
		out := []string{"SUCCESS: client-auth command succeeded"}
		cid, ok := f.client(a[1])
		if ok {
			f.note("auth " + strconv.Itoa(cid))
			if f.state[cid] == pending {
				f.state[cid] = up
			}
		}
		if ok && f.clients[cid].Hidden {
			return out
		}
		return append(out, ">CLIENT:ESTABLISHED,"+a[1], ">CLIENT:ENV,END")
	case len(a) >= 3 && a[0] == "client-deny":
		if cid, ok := f.client(a[1]); ok {
			f.note("deny " + strconv.Itoa(cid))
			if f.state[cid] == pending {
				f.state[cid] = gone
			}
		}
		return []string{"SUCCESS: client-deny command succeeded"}
	case cmd == "status 3":
		out := []string{"TITLE\tfake", "HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\tBytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher"}
		for cid, st := range f.state {
			if st == up && !f.clients[cid].Hidden {
				out = append(out, fmt.Sprintf("CLIENT_LIST\t%s\t%s:1194\t10.9.0.%d\t\t100\t200\tx\t1700000000\tUNDEF\t%d\t0\tAES-256-GCM",
					f.clients[cid].CN, f.addr(cid), cid+2, cid))
			}
		}
		return append(out, "END")
	case len(a) >= 2 && a[0] == "client-kill":
		if cid, ok := f.client(a[1]); ok {
			f.state[cid] = gone
			f.note("kill " + f.clients[cid].CN)
		}
		return []string{"SUCCESS: client-kill command succeeded", ">CLIENT:DISCONNECT," + a[1], ">CLIENT:ENV,END"}
	case len(a) == 2 && a[0] == "kill":
		f.note("killcn " + a[1])
		var out []string
		for cid, st := range f.state {
			if st == up && f.clients[cid].CN == a[1] {
				f.state[cid] = gone
				out = append(out, fmt.Sprintf(">CLIENT:DISCONNECT,%d", cid), ">CLIENT:ENV,END")
			}
		}
		if len(out) == 0 {
			return []string{"ERROR: common name '" + a[1] + "' not found"}
		}
		return append(out, fmt.Sprintf("SUCCESS: common name '%s' found, %d client(s) killed", a[1], len(out)/2))
	}
	return []string{"ERROR: unknown command"}
}
