package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

var (
	fileSessions = flag.Int("file-sessions", 100_000, "sessions in the file store for its figures (make bench-size: 1000000)")
	fileOnly     = flag.Bool("file-only", false, "measure the file store's figures only")
	idleWindow   = flag.Duration("idle", 30*time.Second, "how long Caddy's CPU is measured at rest with the full file store")
	signInTime   = flag.Duration("signin-time", 5*time.Second, "how long sign-ins are sent to the file store")
)

// fileStoreFigures measures the default store at size: a file of n
// sessions (one user each, from its own IP, with its index entries,
// history and login event) is filled directly, then a Caddy runs on it
// and the benchmark prints the file's bytes per session, sign-ins per
// second from 64 clients, Caddy's CPU at rest over the idle window, and
// how long signing everyone out takes.
func fileStoreFigures(dir string, n int) error {
	fmt.Printf("\nfile store, %d sessions of %d users:\n", n, n)
	path := filepath.Join(dir, "size", "sessions.db")
	st, err := session.OpenFile(path, nil, session.FileOptions{NoSync: true})
	if err != nil {
		return err
	}
	start := time.Now()
	if _, _, err := fill(st, n, 1, safariUA); err != nil {
		st.Close()
		return err
	}
	size, err := st.Size()
	if err = errors.Join(err, st.Close()); err != nil {
		return err
	}
	fmt.Printf("  filled in %s (without fsync)\n", time.Since(start).Round(time.Second))
	fmt.Printf("  bytes per session: %d (file %.1f MB)\n", size/int64(n), float64(size)/1e6)

	// The upstream hands off a sign-in on /login.
	ul, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			w.Header().Set("Session-Login", "signin-"+r.URL.Query().Get("u"))
		}
		_, _ = io.WriteString(w, "ok")
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = up.Serve(ul) }()
	defer up.Close()
	admin := "127.0.0.1:" + strconv.Itoa(freePort())
	site := "http://127.0.0.1:" + strconv.Itoa(freePort())
	cf := fmt.Sprintf("{\n\tadmin %s\n\tpersist_config off\n\tauto_https off\n\tlog default {\n\t\tlevel ERROR\n\t}\n}\n"+
		"%s {\n\tsession_auth {\n\t\tstore file %s\n\t\tlogin_rate 100000000 1m\n\t\tguess_rate 100000000 1m\n\t\tmax_sessions 0\n\t}\n\treverse_proxy %s\n}\n",
		admin, site, path, ul.Addr())
	cfPath := filepath.Join(dir, "size", "Caddyfile")
	if err := os.WriteFile(cfPath, []byte(cf), 0o600); err != nil {
		return err
	}
	caddy := exec.Command(*caddyBin, "run", "--config", cfPath, "--adapter", "caddyfile")
	caddy.SysProcAttr = diesWithUs()
	caddy.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	caddy.Stderr = io.Discard
	if err := caddy.Start(); err != nil {
		return fmt.Errorf("starting %s (make build): %w", *caddyBin, err)
	}
	defer func() { _ = caddy.Process.Kill(); _ = caddy.Wait() }()
	if err := waitUp(site); err != nil {
		return err
	}

	rate, failed := signInLoad(site, 64, *signInTime)
	fmt.Printf("  sign-ins: %.0f/s from 64 clients over %s (%d failed)\n", rate, *signInTime, failed)

	time.Sleep(2 * time.Second) // the last commits and the first sweep slice
	cpu0 := cpuTime(caddy.Process.Pid)
	time.Sleep(*idleWindow)
	idle := cpuTime(caddy.Process.Pid) - cpu0
	fmt.Printf("  Caddy CPU at rest: %.1f%% of one core (%s over %s)\n", 100*idle.Seconds()/idleWindow.Seconds(), idle, *idleWindow)

	req, _ := http.NewRequest(http.MethodDelete, "http://"+admin+"/session-auth/sessions?all=true", nil)
	t0 := time.Now()
	res, err := (&http.Client{Timeout: time.Hour}).Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var out struct {
		Revoked int `json:"revoked"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusOK {
		return fmt.Errorf("revoking everyone: %d %v", res.StatusCode, err)
	}
	fmt.Printf("  signing everyone out: %d sessions in %s\n", out.Revoked, time.Since(t0).Round(10*time.Millisecond))
	return nil
}

// signInLoad sends sign-ins (each a new user's) from conns clients for
// d: the sign-ins per second answered with a session, and the failures.
func signInLoad(site string, conns int, d time.Duration) (float64, int64) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var n, failed, next atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				res, err := client.Post(site+"/login?u="+strconv.FormatInt(next.Add(1), 10), "text/plain", nil)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if signedIn(res) {
					n.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds(), failed.Load()
}

func signedIn(res *http.Response) bool {
	for _, c := range res.Cookies() {
		if c.Name == "session" {
			return true
		}
	}
	return false
}
