package web

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
)

// BenchmarkFrontServerCreate runs the front's handler in process on
// server.create (the benchfront request) against a stand-in core on a
// unix socket that answers a fixed server: for the allocations and a CPU
// profile of the front's own code (the load and the core share the
// process). It times nothing that a test checks.
func BenchmarkFrontServerCreate(b *testing.B) {
	answer := []byte(`{"id":"5f1e2d3c4b5a697887960a2f","name":"paris-branch-office-remote-access","protocol":"udp","port":1194,` +
		`"network":"10.139.0.0/16","dynamic_firewall":true,"nat":true,"hosts":["vpn.example.com","198.51.100.7","203.0.113.25",` +
		`"vpn-backup.example.net"],"organizations":["5f1e2d3c4b5a697887960a1b","5f1e2d3c4b5a697887960a1c"],` +
		`"gateways":["gw-paris-1","gw-lyon-2","gw-nice3"],"created_at":"2026-11-30T08:00:00Z"}`)
	sock := fakeCoreOn(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	h, err := NewHandler(Options{CoreSocket: sock, Token: testToken, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	body := []byte(`{"name":"paris-branch-office-remote-access","protocol":"udp","port":1194,"network":"10.139.0.0/16",` +
		`"dynamic_firewall":true,"nat":true,"hosts":["vpn.example.com","198.51.100.7","203.0.113.25","vpn-backup.example.net"],` +
		`"organizations":["5f1e2d3c4b5a697887960a1b","5f1e2d3c4b5a697887960a1c"],"gateways":["gw-paris-1","gw-lyon-2","gw-nice3"]}`)
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "https://gw.example/server", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Cookie", api.SessionCookie+"="+sid)
		r.Header.Set(api.HeaderCSRF, csrf)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
