package core

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// TestNilLoggers: every constructor that takes a logger accepts nil (it
// logs nowhere) and the paths that log then do not panic.
func TestNilLoggers(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	adm := admin.New(st, nil, admin.Options{})
	if _, _, err := adm.EnsureInitialAdmin(ctx, nil); err != nil { // logs at info
		t.Fatal(err)
	}
	if _, _, err := adm.Login(ctx, admin.InitialUsername, "wrong", "192.0.2.1"); !errors.Is(err, admin.ErrBadCredentials) { // logs a warning
		t.Fatalf("login: %v", err)
	}

	svc := NewService(Deps{Store: st, Admin: adm})
	srv, err := NewAPIServer(rpc.Config{Token: bytes.Repeat([]byte{7}, 32)}, svc)
	if err != nil {
		t.Fatal(err)
	}
	// No peer credentials: refused, and the refusal is logged.
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://"+api.InternalHost+"/status", nil))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("got %d", rec.Code)
	}

	// The supervisor logs each start of the front.
	sup := newSupervisor(nil, frontSpec{Binary: "/bin/true"})
	sup.StopGrace = time.Second
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { sup.run(runCtx, false); close(done) }()
	select {
	case <-sup.started:
	case <-time.After(10 * time.Second):
		t.Error("the front never started")
	}
	cancel()
	<-done
}
