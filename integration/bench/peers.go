package main

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"
)

var (
	peersRun    = flag.Bool("peers", false, "make bench-peers: session_auth beside Caddy forward_auth → oauth2-proxy and → this gateway, latency at fixed rates, revocation timings")
	oauth2Proxy = flag.String("oauth2-proxy", "bin/oauth2-proxy", "the oauth2-proxy binary (make bench-peers builds it)")
)

// oauth2ProxyRow is the row where Caddy's forward_auth asks oauth2-proxy,
// with its sessions in the same Redis, before each request.
const oauth2ProxyRow = "Caddy forward_auth → oauth2-proxy"

// directRow is the latency table's control: the app itself, no Caddy.
const directRow = "the app alone (no Caddy)"

// oauth2ProxyHeaders are what oauth2-proxy answers about a session
// (set_xauthrequest), copied under the gateway's names so that the app
// gets them as it would from session_auth.
var oauth2ProxyHeaders = []string{"X-Auth-Request-User>X-Auth-User", "X-Auth-Request-Email>X-Auth-Email",
	"X-Auth-Request-Groups>X-Auth-Roles", "X-Auth-Request-Preferred-Username>X-Auth-Name"}

// peerIdentityHeaders are the same four identities from the gateway's
// verify answer: both forward_auth rows copy as many headers, since
// Caddy's forward_auth runs two routes per copied header.
var peerIdentityHeaders = []string{"X-Auth-User", "X-Auth-Email", "X-Auth-Roles", "X-Auth-Name"}

// forwardAuthFrontCopying is forwardAuthFront copying only headers.
func forwardAuthFrontCopying(gateway string, headers []string) string {
	return "\tforward_auth " + strings.TrimPrefix(gateway, "http://") + " {\n\t\turi /.auth/verify\n\t\tcopy_headers " +
		strings.Join(headers, " ") + "\n\t\ttransport http {\n\t\t\tkeepalive_idle_conns_per_host 256\n\t\t}\n\t}\n"
}

// peerProcess is a child process the peers run starts, ended with it.
type peerProcess struct{ cmd *exec.Cmd }

func startProcess(name string, args []string, env []string, out io.Writer) (*peerProcess, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = diesWithUs()
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &peerProcess{cmd}, nil
}

func (p *peerProcess) stop() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() }

func (p *peerProcess) pid() int { return p.cmd.Process.Pid }

// runPeers is make bench-peers.
func runPeers(dir string) error {
	rport := freePort()
	raddr := "127.0.0.1:" + strconv.Itoa(rport)
	redisProc, err := startProcess(*redisServer, []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(rport), "--save", "", "--appendonly", "no", "--dir", dir}, nil, io.Discard)
	if err != nil {
		return fmt.Errorf("starting redis-server (apt-get install redis-server): %w", err)
	}
	defer redisProc.stop()
	rc := redis.NewClient(&redis.Options{Addr: raddr})
	defer rc.Close()
	for i := 0; rc.Ping(context.Background()).Err() != nil; i++ {
		if i > 100 {
			return fmt.Errorf("redis-server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	upstream, stopUpstream, err := benchUpstream()
	if err != nil {
		return err
	}
	defer stopUpstream()

	// oauth2-proxy, its config committed beside this file; the sign-in of
	// the load goes through its htpasswd form, with a user written here.
	o2pAddr := "127.0.0.1:" + strconv.Itoa(freePort())
	htpasswd := filepath.Join(dir, "htpasswd")
	sum := sha1.Sum([]byte("bench-password"))
	if err := os.WriteFile(htpasswd, []byte("bench:{SHA}"+base64.StdEncoding.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		return err
	}
	o2pLog, err := os.Create(filepath.Join(dir, "oauth2-proxy.log"))
	if err != nil {
		return err
	}
	defer o2pLog.Close()
	o2p, err := startProcess(*oauth2Proxy, []string{"--config", "bench/oauth2-proxy.cfg", "--http-address", o2pAddr,
		"--redis-connection-url", "redis://" + raddr, "--htpasswd-file", htpasswd}, nil, o2pLog)
	if err != nil {
		return fmt.Errorf("starting %s (make bench-peers builds it): %w", *oauth2Proxy, err)
	}
	defer o2p.stop()

	adminPort := freePort()
	proxy := "\treverse_proxy " + upstream + " {\n\t\ttransport http {\n\t\t\tkeepalive_idle_conns_per_host 256\n\t\t}\n\t}\n"
	auth := func(store string) string {
		return "\tsession_auth {\n\t\t" + store + "\n\t\tlogin_rate 100000000 1m\n\t\tguess_rate 100000000 1m\n\t\tmax_sessions 0\n\t}\n"
	}
	redisStore := func(prefix string) string {
		return "store redis redis://" + raddr + " {\n\t\t\tkey_prefix " + prefix + "\n\t\t}"
	}
	gatewayAddr := "http://127.0.0.1:" + strconv.Itoa(freePort())
	o2pFront := "\tforward_auth " + o2pAddr + " {\n\t\turi /oauth2/auth\n\t\tcopy_headers " + strings.Join(oauth2ProxyHeaders, " ") +
		"\n\t\ttransport http {\n\t\t\tkeepalive_idle_conns_per_host 256\n\t\t}\n\t}\n"
	sites := []struct {
		target
		body string
	}{
		{target{name: "reverse_proxy"}, proxy},
		{target{name: "session_auth file"}, auth("store file "+filepath.Join(dir, "sessions.db")) + proxy},
		{target{name: "session_auth redis"}, auth(redisStore("b:")) + proxy},
		{target{name: "session_auth redis + cache"}, auth(redisStore("c:")+"\n\t\tcache 1m") + proxy},
		{target{name: oauth2ProxyRow}, o2pFront + proxy},
		{target{name: forwardAuthRow, gateway: gatewayAddr}, forwardAuthFrontCopying(gatewayAddr, peerIdentityHeaders) + proxy},
	}
	cf := fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\tpersist_config off\n\tauto_https off\n\tlog default {\n\t\tlevel ERROR\n\t}\n}\n", adminPort)
	var targets []*target
	for i := range sites {
		sites[i].addr = "http://127.0.0.1:" + strconv.Itoa(freePort())
		cf += sites[i].addr + " {\n" + sites[i].body + "}\n"
		targets = append(targets, &sites[i].target)
	}
	cf += gatewayAddr + " {\n" + forwardAuthGateway(auth(redisStore("g:")), gatewayAddr) + proxy + "}\n"
	caddy, err := startCaddy(dir, "peers", cf)
	if err != nil {
		return err
	}
	defer caddy.stop()

	if err := waitUp(gatewayAddr); err != nil {
		return err
	}
	if reason := verifyMissing(gatewayAddr); reason != "" {
		return fmt.Errorf("%s: %s", forwardAuthRow, reason)
	}
	var someCookie string
	for _, t := range targets {
		if err := waitUp(t.addr); err != nil {
			return err
		}
		switch {
		case t.name == oauth2ProxyRow:
			if t.cookie, err = oauth2ProxySignIn("http://" + o2pAddr); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
		case t.gateway != "":
			if t.cookie, err = signIn(t.gateway, t.name); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
		case strings.HasPrefix(t.name, "session_auth"):
			if t.cookie, err = signIn(t.addr, t.name); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			someCookie = t.cookie
		}
	}
	for _, t := range targets {
		if t.cookie == "" {
			t.cookie = someCookie
		}
		if err := answersOK(t); err != nil {
			return err
		}
	}

	gen := *generator
	if gen == "auto" {
		gen = "go"
		if _, err := exec.LookPath("wrk"); err == nil {
			gen = "wrk"
		}
	}
	loadFn := load
	if gen == "wrk" {
		loadFn = wrkLoad
	}
	fmt.Printf("session_auth and its peers: %s, %d connections, %d rounds of %s per configuration, interleaved in random order; medians; %d cores\n\n",
		gen, *conns, *rounds, *roundTime, numCPU())
	results := map[string][]result{}
	peerCPU := map[string][]time.Duration{}
	for r := 0; r < *rounds; r++ {
		order := slices.Clone(targets)
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, t := range order {
			cpu0, rcpu0, ocpu0 := cpuTime(caddy.pid()), cpuTime(redisProc.pid()), cpuTime(o2p.pid())
			res := loadFn(t, *conns, *roundTime)
			if res.n > 0 {
				res.cpu = (cpuTime(caddy.pid()) - cpu0) / time.Duration(res.n)
				res.redisCPU = (cpuTime(redisProc.pid()) - rcpu0) / time.Duration(res.n)
				peerCPU[t.name] = append(peerCPU[t.name], (cpuTime(o2p.pid())-ocpu0)/time.Duration(res.n))
			}
			results[t.name] = append(results[t.name], res)
		}
	}
	fmt.Printf("%-36s %12s %10s %10s %9s %14s %14s %18s\n", "configuration", "requests/s", "p50", "p99", "ratio", "Caddy CPU/req", "Redis CPU/req", "oauth2-proxy CPU/req")
	for _, t := range targets {
		m := median(results[t.name])
		o := ""
		if t.name == oauth2ProxyRow {
			c := slices.Clone(peerCPU[t.name])
			slices.Sort(c)
			o = fmt.Sprintf("%.1f µs", float64(c[len(c)/2])/float64(time.Microsecond))
		}
		fmt.Printf("%-36s %12.0f %10s %10s %8.2f× %11.1f µs %11.1f µs %18s\n", t.name, m.rps, m.p50.Round(time.Microsecond), m.p99.Round(time.Microsecond),
			ratioPerRound(results[t.name], results["reverse_proxy"]),
			float64(medianCPU(results[t.name], false))/float64(time.Microsecond), float64(medianCPU(results[t.name], true))/float64(time.Microsecond), o)
	}
	fmt.Println("(ratio: the median of each round's ratio to reverse_proxy; Caddy CPU of the forward_auth → gateway row includes the gateway site, which runs in the same Caddy)")
	fmt.Printf("(both forward_auth rows copy the same %d identity headers to the app: user, email, roles (oauth2-proxy's groups), name (its preferred username))\n\n",
		len(peerIdentityHeaders))

	// Redis commands per request, counted apart from the load.
	for _, t := range targets {
		if t.name == "reverse_proxy" || t.name == "session_auth file" {
			continue
		}
		n, cmds, err := countCommands(t, rc, 2000)
		if err != nil {
			return err
		}
		fmt.Printf("Redis commands per authenticated request, %s: %.3f (%d for %d requests)\n", t.name, float64(cmds)/float64(n), cmds, n)
	}

	// The app alone, without Caddy, at the same rates: what the load
	// generator itself adds on these two cores.
	direct := &target{name: directRow, addr: "http://" + upstream}
	if err := latencyAtRates(append([]*target{direct}, targets...), median(results["reverse_proxy"]).rps); err != nil {
		return err
	}
	if err := revocationTimings(dir, raddr, upstream); err != nil {
		return err
	}
	return memoryPerSession(rc, *perSession)
}

// startCaddy runs a Caddy with the Caddyfile cf, its data in dir.
func startCaddy(dir, name, cf string) (*peerProcess, error) {
	path := filepath.Join(dir, name+".Caddyfile")
	if err := os.WriteFile(path, []byte(cf), 0o644); err != nil {
		return nil, err
	}
	p, err := startProcess(*caddyBin, []string{"run", "--config", path, "--adapter", "caddyfile"},
		[]string{"XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir}, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("starting %s (make build): %w", *caddyBin, err)
	}
	return p, nil
}

// benchUpstream is the tiny app of the peers run: 200 "ok"; /login hands
// off a sign-in; /ws echoes a WebSocket.
func benchUpstream() (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			w.Header().Set("Session-Login", "bench-"+r.URL.Query().Get("u"))
			w.Header().Set("Session-Login-Roles", "staff,bench")
		case "/ws":
			conn, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer conn.CloseNow()
			for {
				typ, msg, err := conn.Read(r.Context())
				if err != nil || conn.Write(r.Context(), typ, msg) != nil {
					return
				}
			}
		}
		_, _ = io.WriteString(w, "ok")
	})}
	go func() { _ = srv.Serve(l) }()
	return l.Addr().String(), func() { _ = srv.Close() }, nil
}

// oauth2ProxySignIn signs in through oauth2-proxy's htpasswd form and
// returns its session cookie.
func oauth2ProxySignIn(base string) (string, error) {
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var res *http.Response
	var err error
	for i := 0; i < 200; i++ {
		res, err = client.PostForm(base+"/oauth2/sign_in", url.Values{"username": {"bench"}, "password": {"bench-password"}, "rd": {"/"}})
		if err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return "", fmt.Errorf("oauth2-proxy does not answer: %w", err)
	}
	res.Body.Close()
	for _, c := range res.Cookies() {
		if c.Name == "_oauth2_proxy" {
			return c.Name + "=" + c.Value, nil
		}
	}
	return "", fmt.Errorf("oauth2-proxy's sign-in set no session cookie (status %d)", res.StatusCode)
}

// countCommands sends n authenticated requests one after another and
// counts every command Redis ran meanwhile (INFO's own aside), whoever
// sent it: Caddy's session_auth or oauth2-proxy.
func countCommands(t *target, rc *redis.Client, n int) (int, int64, error) {
	before := allCommands(rc)
	for i := 0; i < n; i++ {
		if err := answersOK(t); err != nil {
			return 0, 0, err
		}
	}
	return n, allCommands(rc) - before, nil
}

func allCommands(rc *redis.Client) int64 {
	info, _ := rc.Info(context.Background(), "commandstats").Result()
	var n int64
	for _, line := range strings.Split(info, "\r\n") {
		name, rest, ok := strings.Cut(line, ":calls=")
		if !ok || !strings.HasPrefix(name, "cmdstat_") || name == "cmdstat_info" {
			continue
		}
		v, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		n += v
	}
	return n
}
