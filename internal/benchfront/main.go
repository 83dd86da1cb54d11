// Command benchfront measures what the front's validation costs: it runs
// one in-process core (real Service, bbolt store, unix socket) and, in the
// same run, puts two HTTPS servers in front of it on loopback: the real
// front (web.Handler) and a plain httputil.ReverseProxy. It drives both
// with the same load, alternating, and prints requests per second and the
// ratio front/proxy. `make bench` runs it.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/core/pki"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/web"
)

func main() {
	dur := flag.Duration("duration", 3*time.Second, "length of one measurement")
	rounds := flag.Int("rounds", 3, "measurements per target (alternating)")
	workers := flag.Int("workers", 32, "concurrent clients")
	flag.Parse()
	if err := run(*dur, *rounds, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "benchfront:", err)
		os.Exit(1)
	}
}

type target struct {
	name string
	url  string
}

func run(dur time.Duration, rounds, workers int) error {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir, err := os.MkdirTemp("", "portcullis-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := store.OpenBolt(filepath.Join(dir, "bench.db"), time.Second)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	adm := admin.New(st, quiet, admin.Options{})
	pw, _, err := adm.EnsureInitialAdmin(ctx, nil)
	if err != nil {
		return err
	}
	_, sid, err := adm.Login(ctx, admin.InitialUsername, pw, "127.0.0.1")
	if err != nil {
		return err
	}
	// The initial password must be changed before any other admin route.
	sess, err := adm.ChangePassword(ctx, sid, pw, pw+"-changed")
	if err != nil {
		return err
	}
	token := make([]byte, 32)
	copy(token, "benchmark-token-benchmark-token!")
	svc := core.NewService(core.Deps{Store: st, Admin: adm, Log: quiet})
	apiSrv, err := core.NewAPIServer(quiet, token, []int{os.Getuid()}, svc)
	if err != nil {
		return err
	}
	sock := filepath.Join(dir, "core.sock")
	stopCore, err := core.ServeSocket(sock, apiSrv.Handler(), quiet)
	if err != nil {
		return err
	}
	defer stopCore()

	certPEM, keyPEM, err := pki.SelfSignedTLS([]string{"127.0.0.1"})
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The real front.
	fh, err := web.NewHandler(web.Options{CoreSocket: sock, Token: token, PoolSize: workers * 2, Log: quiet})
	if err != nil {
		return err
	}
	frontLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() {
		_ = web.Serve(sctx, web.ServeConfig{Log: quiet, Handler: fh, Cert: cert, HTTPS: frontLn, Grace: time.Second})
	}()

	// The baseline: a reverse proxy that validates nothing.
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
		MaxIdleConns: workers * 2, MaxIdleConnsPerHost: workers * 2,
	}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: api.InternalHost})
	rp.Transport = tr
	director := rp.Director
	tokHex := hex.EncodeToString(token)
	rp.Director = func(r *http.Request) { director(r); r.Header.Set(api.HeaderToken, tokHex) }
	proxyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	proxySrv := &http.Server{Handler: rp, TLSConfig: web.TLSConfig(cert),
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
	go func() { _ = proxySrv.ServeTLS(proxyLn, "", "") }()
	defer proxySrv.Close()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConns: workers * 2, MaxIdleConnsPerHost: workers * 2}}
	targets := []target{{"reverse proxy", "https://" + proxyLn.Addr().String()}, {"front", "https://" + frontLn.Addr().String()}}

	// One organization for the GET route.
	var orgID string
	{
		status, body, err := send(client, targets[1].url, "POST", "/organization", `{"name":"bench-fixture"}`, sid, sess.CSRFToken)
		if err != nil || status != 200 {
			return fmt.Errorf("create fixture: %d %s %v", status, body, err)
		}
		orgID = string(body[bytes.Index(body, []byte(`"id":"`))+6:][:24])
	}

	fmt.Printf("benchfront: %d workers, %s per measurement, %d rounds, GOMAXPROCS=%d, same core and store for both targets\n\n",
		workers, dur, rounds, runtime.GOMAXPROCS(0))
	type route struct {
		label, method, path string
		body                func(worker, i int) string
	}
	routes := []route{
		{"POST /organization (org.create: validate, CA key, bbolt commit)", "POST", "/organization",
			func(w, i int) string { return fmt.Sprintf(`{"name":"b%d-%d-%d"}`, time.Now().UnixNano()%1e9, w, i) }},
		{"GET /organization/{org_id} (org.get: bbolt read)", "GET", "/organization/" + orgID, nil},
	}
	for _, rt := range routes {
		res := map[string][]float64{}
		for r := 0; r < rounds; r++ {
			for _, tg := range targets {
				rps, errs := load(client, tg.url, rt.method, rt.path, rt.body, sid, sess.CSRFToken, workers, dur)
				if errs > 0 {
					return fmt.Errorf("%s on %s: %d failed requests", rt.label, tg.name, errs)
				}
				res[tg.name] = append(res[tg.name], rps)
			}
		}
		p, f := median(res["reverse proxy"]), median(res["front"])
		fmt.Printf("%s\n", rt.label)
		fmt.Printf("  reverse proxy  %8.0f req/s  (rounds %v)\n", p, rounded(res["reverse proxy"]))
		fmt.Printf("  front          %8.0f req/s  (rounds %v)\n", f, rounded(res["front"]))
		fmt.Printf("  ratio front/proxy = %.2f  (goal >= 0.80)\n\n", f/p)
	}
	return nil
}

func send(c *http.Client, base, method, path, body, sid, csrf string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Cookie", api.SessionCookie+"="+sid)
	req.Header.Set(api.HeaderCSRF, csrf)
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// load runs workers for dur (and at most 10 million requests in all) and
// returns requests per second and the number of failures.
func load(c *http.Client, base, method, path string, body func(w, i int) string, sid, csrf string, workers int, dur time.Duration) (float64, int64) {
	var done, failed atomic.Int64
	deadline := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline) && done.Load() < 10_000_000; i++ {
				b := ""
				if body != nil {
					b = body(w, i)
				}
				status, _, err := send(c, base, method, path, b, sid, csrf)
				if err != nil || status != 200 {
					failed.Add(1)
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds(), failed.Load()
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func rounded(v []float64) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}
