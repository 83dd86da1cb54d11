package notify

import (
	"crypto/ed25519"
	"crypto/x509"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// server is a notification server for the tests, on real TLS: it answers
// what it was last told to.
type server struct {
	*httptest.Server
	stop chan struct{}

	mu       sync.Mutex
	status   int
	body     []byte
	header   http.Header
	hang     bool // answer nothing until the client gives up
	chunked  bool // stream the body (no Content-Length)
	requests []*http.Request
}

func newServer(t *testing.T) *server {
	s := &server{stop: make(chan struct{}), status: http.StatusNotFound}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.handle))
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	s.StartTLS()
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(s.stop) }) // runs first: releases hanging handlers
	return s
}

func (s *server) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r)
	status, body, hang, chunked := s.status, s.body, s.hang, s.chunked
	for k, v := range s.header {
		w.Header()[k] = v
	}
	s.mu.Unlock()
	if hang {
		select {
		case <-r.Context().Done():
		case <-s.stop:
		}
		return
	}
	if chunked {
		w.WriteHeader(status)
		w.(http.Flusher).Flush()
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
	}
	_, _ = w.Write(body)
}

// answer sets what the server answers from now on.
func (s *server) answer(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body, s.hang, s.chunked, s.header = status, body, false, false, nil
}

// pool is a CA pool holding only the server's certificate.
func (s *server) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.Certificate())
	return p
}

// lab is a poller against a test server, on a real bolt store, with a
// clock the test moves and a record of its OnChange calls.
type lab struct {
	t          *testing.T
	srv        *server
	path       string
	bolt       *store.Bolt
	p          *Poller
	pub        ed25519.PublicKey
	priv       ed25519.PrivateKey
	logHandler slog.Handler

	mu      sync.Mutex
	now     time.Time
	changes []Status
}

func newLab(t *testing.T) *lab {
	pub, priv := testKey(1)
	l := &lab{t: t, srv: newServer(t), path: filepath.Join(t.TempDir(), "portcullis.db"), pub: pub, priv: priv, now: t0}
	l.open()
	return l
}

// config is the configuration the lab's poller is opened with.
func (l *lab) config() Config {
	return Config{
		URL: l.srv.URL + "/notify", Version: "1.4.2", PublicKey: l.pub, RootCAs: l.srv.pool(),
		Timeout: 20 * time.Second, Now: l.clock,
		OnChange: func(s Status) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.changes = append(l.changes, s)
		},
	}
}

// open opens the store and a poller on it, with the lab's config changed
// by edit.
func (l *lab) open(edit ...func(*Config)) {
	l.t.Helper()
	st, err := store.OpenBolt(l.path, time.Second)
	if err != nil {
		l.t.Fatal(err)
	}
	l.bolt = st
	l.t.Cleanup(func() { _ = st.Close() })
	cfg := l.config()
	for _, e := range edit {
		e(&cfg)
	}
	var log *slog.Logger
	if l.logHandler != nil {
		log = slog.New(l.logHandler)
	}
	if l.p, err = New(cfg, NewStore(st), log); err != nil {
		l.t.Fatal(err)
	}
}

// restart closes the store and opens it and a new poller again.
func (l *lab) restart(edit ...func(*Config)) {
	l.t.Helper()
	if err := l.bolt.Close(); err != nil {
		l.t.Fatal(err)
	}
	l.open(edit...)
}

func (l *lab) clock() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.now
}

func (l *lab) setClock(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.now = t
}

// changeCount is how many times OnChange was called.
func (l *lab) changeCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.changes)
}

func (l *lab) lastChange() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.changes) == 0 {
		l.t.Fatal("OnChange was never called")
	}
	return l.changes[len(l.changes)-1]
}

// serve makes the server answer n signed with the lab's key, and returns
// the body.
func (l *lab) serve(n Notice) []byte {
	l.t.Helper()
	body := mustSign(l.t, l.priv, n)
	l.srv.answer(http.StatusOK, body)
	return body
}

// stored reads the Status the poller saved, as a restart would find it.
func (l *lab) stored() Status {
	l.t.Helper()
	s, err := NewStore(l.bolt).Load(l.t.Context())
	if err != nil {
		l.t.Fatal(err)
	}
	return s
}

// effective is a shorthand for an expected Effective.
func effective(www, web, vpn State, msg string, src Source) Effective {
	return Effective{WWW: www, Web: web, VPN: vpn, Message: msg, Source: src}
}
