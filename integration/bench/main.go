// Command bench measures session_auth against plain reverse_proxy in one
// interleaved run on this machine: requests per second and latency per
// configuration, each as a ratio to plain reverse_proxy, Redis commands
// per request, Redis memory per session, and validation cost as the store
// grows, and the file store's figures at size (bytes per session,
// sign-ins per second, CPU at rest, signing everyone out). `make bench`
// runs it; it takes a few minutes. `make bench-size` measures the file
// store alone at 10⁶ sessions.
package main

import (
	"bufio"
	"bytes"
	"context"
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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionauth/caddy-sessionauth/session"
)

var (
	caddyBin    = flag.String("caddy", "bin/caddy", "the Caddy binary with session_auth")
	conns       = flag.Int("c", 64, "concurrent connections")
	roundTime   = flag.Duration("d", 4*time.Second, "length of one measured round")
	rounds      = flag.Int("rounds", 7, "rounds per configuration, interleaved in a new random order each round")
	perSession  = flag.Int("sessions", 100_000, "sessions for the memory-per-session measure")
	bigStore    = flag.Int("big", 1_000_000, "sessions in the store for the flat-cost measure")
	redisServer = flag.String("redis-server", "redis-server", "redis-server binary")
	generator   = flag.String("load", "auto", "load generator: wrk, go, or auto (wrk when installed)")
	profileDir  = flag.String("profile", "", "write a CPU profile of Caddy per configuration (first round) to this directory")
)

type target struct {
	name, addr, cookie string
	// baseline marks a plain reverse_proxy that sends the same number of
	// headers as session_auth adds: the cost of forwarding an identity.
	baseline bool
	// gateway, when set, is the site that signs the client in, the target
	// itself otherwise.
	gateway string
}

// identityHeadersUp is what a session_auth request carries upstream in
// the benchmark, as static header_up lines.
const identityHeadersUp = `		header_up X-Auth-User bench-user
		header_up X-Auth-Session 5f1c2a9b8e7d6c5b4a3928171605f4e3
		header_up X-Auth-Session-Created 2026-11-24T01:02:03Z
		header_up X-Auth-IP 127.0.0.1
		header_up X-Auth-Login-IP 127.0.0.1
		header_up X-Auth-IP-Changed false
		header_up X-Auth-Device "Unknown Device"
		header_up X-Auth-Device-Type unknown
		header_up X-Auth-Browser "Unknown Browser"
		header_up X-Auth-OS Unknown
		header_up X-Auth-Risk new-device
		header_up X-Auth-Method handoff
		header_up X-Auth-Authenticated-At 2026-11-24T01:02:03Z
`

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// diesWithUs makes a child process end with the benchmark, even when the
// benchmark is killed or its output pipe closes (make bench | head) before
// its deferred clean-up runs: a Caddy left behind would load the next run.
func diesWithUs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// freePort returns a port nothing listens on, never the same twice: the
// kernel may offer a closed port again at once.
func freePort() int {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !givenPorts[port] {
			givenPorts[port] = true
			return port
		}
	}
}

var givenPorts = map[int]bool{}

func run() error {
	dir, err := os.MkdirTemp("", "sessionauth-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if *fileOnly {
		return fileStoreFigures(dir, *fileSessions)
	}
	if *peersRun {
		return runPeers(dir) // peers.go
	}

	// Redis, on a free port, nothing on disk.
	rport := freePort()
	raddr := "127.0.0.1:" + strconv.Itoa(rport)
	rcmd := exec.Command(*redisServer, "--bind", "127.0.0.1", "--port", strconv.Itoa(rport), "--save", "", "--appendonly", "no", "--dir", dir)
	rcmd.SysProcAttr = diesWithUs()
	if err := rcmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server (apt-get install redis-server): %w", err)
	}
	defer func() { _ = rcmd.Process.Kill(); _ = rcmd.Wait() }()
	rc := redis.NewClient(&redis.Options{Addr: raddr})
	defer rc.Close()
	for i := 0; rc.Ping(context.Background()).Err() != nil; i++ {
		if i > 100 {
			return fmt.Errorf("redis-server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The tiny upstream: 200 "ok"; /login hands off a sign-in.
	ul, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			w.Header().Set("Session-Login", "bench-"+r.URL.Query().Get("u"))
			w.Header().Set("Session-Login-Roles", "staff,bench")
		}
		_, _ = io.WriteString(w, "ok")
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = up.Serve(ul) }()
	defer up.Close()

	// Caddy with one site per configuration. Every site proxies the same
	// way, with enough idle upstream connections kept for the load (Caddy
	// keeps 32 by default, so 64 connections would redial all the time).
	adminPort := freePort()
	proxy := "\treverse_proxy " + ul.Addr().String() + " {\n\t\ttransport http {\n\t\t\tkeepalive_idle_conns_per_host 256\n\t\t}\n%s\t}\n"
	auth := func(store string) string {
		return "\tsession_auth {\n\t\t" + store + "\n\t\tlogin_rate 100000000 1m\n\t\tguess_rate 100000000 1m\n\t\tmax_sessions 0\n\t}\n"
	}
	gatewayAddr := "http://127.0.0.1:" + strconv.Itoa(freePort())
	redisStore := func(prefix string) string {
		return "store redis redis://" + raddr + " {\n\t\t\tkey_prefix " + prefix + "\n\t\t}"
	}
	sites := []struct {
		target
		body string
	}{
		{target{name: "reverse_proxy"}, fmt.Sprintf(proxy, "")},
		{target{name: "reverse_proxy + 13 headers", baseline: true}, fmt.Sprintf(proxy, identityHeadersUp)},
		{target{name: "session_auth memory"}, auth("store memory") + fmt.Sprintf(proxy, "")},
		{target{name: "session_auth file"}, auth("store file "+filepath.Join(dir, "sessions.db")) + fmt.Sprintf(proxy, "")},
		{target{name: "session_auth redis"}, auth(redisStore("b:")) + fmt.Sprintf(proxy, "")},
		{target{name: "session_auth redis + cache"}, auth(redisStore("c:")+"\n\t\tcache 1m") + fmt.Sprintf(proxy, "")},
		// A per-route rule reads the identity session_auth proved: no store
		// round trip more (the commands-per-request line below shows it).
		{target{name: "session_auth redis + require"}, auth(redisStore("d:")) + "\tsession_require {\n\t\troles bench admin\n\t\tmax_age 24h\n\t}\n" + fmt.Sprintf(proxy, "")},
		{target{name: forwardAuthRow, gateway: gatewayAddr}, forwardAuthFront(gatewayAddr) + fmt.Sprintf(proxy, "")},
	}
	for i := range sites {
		sites[i].addr = "http://127.0.0.1:" + strconv.Itoa(freePort())
	}
	// compose writes the Caddyfile: every site, and the gateway that the
	// forward_auth row asks unless that row is left out.
	cfPath := filepath.Join(dir, "Caddyfile")
	compose := func(withForwardAuth bool) error {
		cf := fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\tpersist_config off\n\tauto_https off\n\tlog default {\n\t\tlevel ERROR\n\t}\n}\n", adminPort)
		for _, s := range sites {
			if s.name != forwardAuthRow || withForwardAuth {
				cf += s.addr + " {\n" + s.body + "}\n"
			}
		}
		if withForwardAuth {
			cf += gatewayAddr + " {\n" + forwardAuthGateway(auth("store memory"), gatewayAddr) + fmt.Sprintf(proxy, "") + "}\n"
		}
		return os.WriteFile(cfPath, []byte(cf), 0o644)
	}
	withForwardAuth := true
	if err := compose(true); err != nil {
		return err
	}
	// Before the verify endpoint (SPEC 16) is built, this Caddy refuses
	// the gateway's forward_auth block: the rest still runs.
	if out, err := exec.Command(*caddyBin, "adapt", "--config", cfPath, "--adapter", "caddyfile").CombinedOutput(); err != nil {
		fmt.Printf("skipping the row %q: this Caddy refuses its gateway site: %s\n", forwardAuthRow, firstLine(out))
		withForwardAuth = false
		if err := compose(false); err != nil {
			return err
		}
	}
	var targets []*target
	for i := range sites {
		if sites[i].name != forwardAuthRow || withForwardAuth {
			targets = append(targets, &sites[i].target)
		}
	}
	caddy := exec.Command(*caddyBin, "run", "--config", cfPath, "--adapter", "caddyfile")
	caddy.SysProcAttr = diesWithUs()
	caddy.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	caddy.Stderr = io.Discard
	if err := caddy.Start(); err != nil {
		return fmt.Errorf("starting %s (make build): %w", *caddyBin, err)
	}
	defer func() { _ = caddy.Process.Kill(); _ = caddy.Wait() }()

	if withForwardAuth {
		if err := waitUp(gatewayAddr); err != nil {
			return err
		}
		if reason := verifyMissing(gatewayAddr); reason != "" {
			fmt.Printf("skipping the row %q: %s\n", forwardAuthRow, reason)
			targets = slices.DeleteFunc(targets, func(t *target) bool { return t.name == forwardAuthRow })
		}
	}
	var someCookie string
	for _, t := range targets {
		if err := waitUp(t.addr); err != nil {
			return err
		}
		if t.gateway != "" {
			if t.cookie, err = signIn(t.gateway, t.name); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			if err := answersOK(t); err != nil {
				return err
			}
		}
		if strings.HasPrefix(t.name, "session_auth") {
			if t.cookie, err = signIn(t.addr, t.name); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			someCookie = t.cookie
		}
	}
	// Every site gets the same client request: a browser sends its
	// session cookie whatever is in front of the app, and Caddy copies,
	// logs and forwards it either way.
	for _, t := range targets {
		if t.cookie == "" {
			t.cookie = someCookie
		}
	}

	gen := *generator
	if gen == "auto" {
		gen = "go"
		if _, err := exec.LookPath("wrk"); err == nil {
			gen = "wrk"
		} else {
			fmt.Println("wrk is not installed (apt-get install wrk); using the Go load generator, which takes more of the CPU")
		}
	}
	loadFn := load
	if gen == "wrk" {
		loadFn = wrkLoad
	}
	if *profileDir != "" {
		if err := os.MkdirAll(*profileDir, 0o755); err != nil {
			return err
		}
	}
	fmt.Printf("session_auth benchmark: %s, %d connections, %d rounds of %s per configuration, interleaved in random order; medians; %d cores\n\n",
		gen, *conns, *rounds, *roundTime, numCPU())
	results := map[string][]result{}
	for r := 0; r < *rounds; r++ {
		// A new order each round, so that a slow spell of this shared
		// machine does not always land on the same configuration.
		order := slices.Clone(targets)
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, t := range order {
			var profiled <-chan struct{}
			if *profileDir != "" && r == 0 {
				profiled = profileCaddy("127.0.0.1:"+strconv.Itoa(adminPort), *profileDir, t.name, *roundTime)
			}
			cpu0, rcpu0 := cpuTime(caddy.Process.Pid), cpuTime(rcmd.Process.Pid)
			res := loadFn(t, *conns, *roundTime)
			if res.n > 0 {
				res.cpu = (cpuTime(caddy.Process.Pid) - cpu0) / time.Duration(res.n)
				res.redisCPU = (cpuTime(rcmd.Process.Pid) - rcpu0) / time.Duration(res.n)
			}
			if profiled != nil {
				<-profiled
			}
			results[t.name] = append(results[t.name], res)
		}
	}
	var headers string
	for _, t := range targets {
		if t.baseline {
			headers = t.name
		}
	}
	fmt.Printf("%-34s %12s %10s %10s %9s %11s %14s %14s\n", "configuration", "requests/s", "p50", "p99", "ratio", "vs headers", "Caddy CPU/req", "Redis CPU/req")
	for _, t := range targets {
		m := median(results[t.name])
		fmt.Printf("%-34s %12.0f %10s %10s %8.2f× %11.2f %11.1f µs %11.1f µs\n", t.name, m.rps, m.p50.Round(time.Microsecond), m.p99.Round(time.Microsecond),
			ratioPerRound(results[t.name], results["reverse_proxy"]), ratioPerRound(results[t.name], results[headers]),
			float64(medianCPU(results[t.name], false))/float64(time.Microsecond), float64(medianCPU(results[t.name], true))/float64(time.Microsecond))
	}
	fmt.Println("(ratio and vs headers: medians of each round's ratio, the configurations of a round being measured within half a minute of each other)")
	if withForwardAuth && slices.ContainsFunc(targets, func(t *target) bool { return t.name == forwardAuthRow }) {
		fmt.Printf("(%s: Caddy's own forward_auth asks a second site of the same Caddy, session_auth with store memory and forward_auth, at /.auth/verify, then proxies to the app: compare with session_auth memory, the gateway in the app's own site)\n", forwardAuthRow)
	}
	fmt.Println()
	// Counted apart from the load, since a load generator stops with
	// requests in flight that Caddy served but it did not count.
	for _, t := range targets {
		if strings.HasPrefix(t.name, "session_auth redis") {
			n, trips, err := countTrips(t, rc, 2000)
			if err != nil {
				return err
			}
			fmt.Printf("Redis round trips per authenticated request, %s: %.3f (%d for %d requests)\n",
				strings.TrimPrefix(t.name, "session_auth "), float64(trips)/float64(n), trips, n)
		}
	}

	// Memory per session, with its indexes and events.
	if err := memoryPerSession(rc, *perSession); err != nil {
		return err
	}
	// Validation cost as the store grows.
	if err := flatCost(rc, *bigStore); err != nil {
		return err
	}
	// The default store at size.
	return fileStoreFigures(dir, *fileSessions)
}

func numCPU() int {
	n := 0
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), "processor") {
			n++
		}
	}
	return n
}

func waitUp(addr string) error {
	for i := 0; i < 200; i++ {
		if res, err := http.Get(addr + "/login"); err == nil {
			res.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not come up", addr)
}

func signIn(addr, u string) (string, error) {
	res, err := http.Post(addr+"/login?u="+url.QueryEscape(u), "text/plain", nil)
	if err != nil {
		return "", err
	}
	res.Body.Close()
	for _, c := range res.Cookies() {
		if c.Name == "session" {
			return "session=" + c.Value, nil
		}
	}
	return "", fmt.Errorf("no session cookie (status %d)", res.StatusCode)
}

type result struct {
	n        int64
	cpu      time.Duration // Caddy's CPU time per request
	redisCPU time.Duration // Redis's
	rps      float64
	p50, p99 time.Duration
}

// load keeps conns connections busy against t for d.
func load(t *target, conns int, d time.Duration) result {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var n, errs atomic.Int64
	lat := make([][]time.Duration, conns)
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req, _ := http.NewRequest("GET", t.addr+"/app", nil)
			if t.cookie != "" {
				req.Header.Set("Cookie", t.cookie)
			}
			for time.Now().Before(deadline) {
				t0 := time.Now()
				res, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					errs.Add(1)
					continue
				}
				lat[i] = append(lat[i], time.Since(t0))
				n.Add(1)
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := result{n: n.Load(), rps: float64(n.Load()) / elapsed.Seconds()}
	if len(all) > 0 {
		r.p50, r.p99 = all[len(all)/2], all[len(all)*99/100]
	}
	if e := errs.Load(); e > 0 {
		fmt.Fprintf(os.Stderr, "  %s: %d failed requests\n", t.name, e)
	}
	return r
}

// medianCPU is the median of the rounds' CPU time per request, Caddy's or Redis's.
func medianCPU(rs []result, ofRedis bool) time.Duration {
	c := make([]time.Duration, len(rs))
	for i, r := range rs {
		c[i] = r.cpu
		if ofRedis {
			c[i] = r.redisCPU
		}
	}
	slices.Sort(c)
	return c[len(c)/2]
}

// cpuTime is the user and system CPU time a process has used so far,
// from /proc (clock ticks of 10 ms; a round uses hundreds of them).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// ratioPerRound is the median over rounds of a's requests/s over b's in
// the same round: a slow spell of this shared machine slows both.
func ratioPerRound(a, b []result) float64 {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if b[i].rps > 0 {
			rs = append(rs, a[i].rps/b[i].rps)
		}
	}
	if len(rs) == 0 {
		return 0
	}
	slices.Sort(rs)
	return rs[len(rs)/2]
}

func median(rs []result) result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b result) int {
		switch {
		case a.rps < b.rps:
			return -1
		case a.rps > b.rps:
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

// countTrips sends n authenticated requests one after another and counts
// the Redis commands they cost.
func countTrips(t *target, rc *redis.Client, n int) (int, int64, error) {
	before := roundTrips(rc)
	for i := 0; i < n; i++ {
		req, _ := http.NewRequest("GET", t.addr+"/app", nil)
		req.Header.Set("Cookie", t.cookie)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, 0, err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			return 0, 0, fmt.Errorf("%s: answered %d", t.name, res.StatusCode)
		}
	}
	return n, roundTrips(rc) - before, nil
}

// roundTrips counts the round trips gateways made to Redis while only
// validations run: each, by script or by reading, reads the session's hash
// once (HGETALL, counted by Redis inside scripts too), and revocations
// publish. A read that finds a write due and then runs the script counts
// two, as it should.
func roundTrips(rc *redis.Client) int64 {
	info, _ := rc.Info(context.Background(), "commandstats").Result()
	var n int64
	for _, line := range strings.Split(info, "\r\n") {
		for _, cmd := range []string{"hgetall", "publish"} {
			if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
				v, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
				n += v
			}
		}
	}
	return n
}

func usedMemory(rc *redis.Client) int64 {
	info, _ := rc.Info(context.Background(), "memory").Result()
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

var policy = session.Policy{Lifetime: 720 * time.Hour, IdleTimeout: 720 * time.Hour, TouchInterval: 5 * time.Minute, Retention: 720 * time.Hour}

// fill creates n sessions, perUser to a user, each from its own IP,
// through the store's own sign-in script, 64 at a time, so that each has
// its index entries and audit event.
func fill(st session.Store, n, perUser int, ua string) ([]string, [][32]byte, error) {
	ids := make([]string, n)
	hashes := make([][32]byte, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				user := benchUser(i / perUser)
				id, _, hash, _ := st.NewCredential(context.Background(), user)
				now := time.Now()
				ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
				s := &session.Session{ID: id, UserID: user, TokenHash: hash, Email: user, IP: ip, LoginIP: ip,
					UserAgent: ua, Device: "Mac", DeviceType: "desktop", Browser: "Safari", OS: "macOS", Country: "DE", City: "Berlin",
					LoginCountry: "DE", DeviceID: "0123456789abcdef0123456789abcdef", CreatedAt: now, LastActiveAt: now}
				if _, err := st.Create(context.Background(), s, policy, session.Limit{Max: 5}); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				ids[i], hashes[i] = id, hash
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return nil, nil, err
	}
	return ids, hashes, nil
}

const safariUA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"

func benchUser(i int) string { return "user-" + strconv.Itoa(i) + "@example.com" }

// memoryPerSession creates n sessions twice: one per user (the worst
// case, since every user's own keys count against one session) and three
// per user (a phone, a laptop, a tablet), and prints Redis's used memory
// per session, with what each kind of key costs.
func memoryPerSession(rc *redis.Client, n int) error {
	client := redis.NewClient(&redis.Options{Addr: rc.Options().Addr, PoolSize: 64})
	defer client.Close()
	ctx := context.Background()
	fmt.Printf("\nRedis memory per session, %d sessions, each from its own IP, with every index and audit event:\n", n)
	for _, perUser := range []int{1, 3} {
		if err := client.FlushAll(ctx).Err(); err != nil {
			return err
		}
		prefix := "m" + strconv.Itoa(perUser) + ":"
		st := session.NewRedis(client, prefix, nil)
		before := usedMemory(rc)
		ids, _, err := fill(st, n, perUser, safariUA)
		if err != nil {
			return err
		}
		after := usedMemory(rc)
		fmt.Printf("  %d session(s) per user: %5d bytes per session (used_memory)", perUser, (after-before)/int64(n))
		// What each kind of key costs, per session, from a sample of users.
		kinds := []struct{ name, part string }{{"session", ":s:"}, {"user index", ":u:"}, {"audit trail", ":e:"}}
		sum := map[string]int64{}
		sample := min(300, len(ids)) / perUser * perUser
		for i := 0; i < sample; i++ {
			tag := prefix + "{" + session.LegacyUserTag(benchUser(i/perUser)) + "}"
			keys := []string{tag + ":s:" + ids[i]}
			if i%perUser == 0 {
				keys = append(keys, tag+":u:"+benchUser(i/perUser), tag+":e:"+benchUser(i/perUser))
			}
			for _, k := range keys {
				b, _ := client.MemoryUsage(ctx, k).Result()
				for _, kd := range kinds {
					if strings.Contains(k, kd.part) {
						sum[kd.name] += b
					}
				}
			}
		}
		var ipIndex int64
		buckets, _ := client.Keys(ctx, prefix+"ip:*").Result()
		for _, k := range buckets {
			b, _ := client.MemoryUsage(ctx, k).Result()
			ipIndex += b
		}
		fmt.Printf("; by MEMORY USAGE:")
		for _, kd := range kinds {
			fmt.Printf(" %s %d,", kd.name, sum[kd.name]/int64(max(sample, 1)))
		}
		fmt.Printf(" IP index %d\n", ipIndex/int64(n))
	}
	return client.FlushAll(ctx).Err()
}

// flatCost times validation with few and with many sessions in the store.
func flatCost(rc *redis.Client, big int) error {
	client := redis.NewClient(&redis.Options{Addr: rc.Options().Addr, PoolSize: 64})
	defer client.Close()
	measure := func(st session.Store, ids []string, hashes [][32]byte) time.Duration {
		// Redis rehashes its key space for a while after it grows; a first
		// pass lets that finish before the measured one.
		for i := 0; i < 20000; i++ {
			_, _ = st.Validate(context.Background(), ids[i%len(ids)], hashes[i%len(ids)], "198.51.100.7", time.Now(), policy)
		}
		const calls = 20000
		var lat []time.Duration
		for i := 0; i < calls; i++ {
			j := i % len(ids)
			t0 := time.Now()
			_, _ = st.Validate(context.Background(), ids[j], hashes[j], "198.51.100.7", time.Now(), policy)
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		return lat[len(lat)/2]
	}
	small := session.NewRedis(client, "s:", nil)
	ids, hashes, err := fill(small, 1000, 1, safariUA)
	if err != nil {
		return err
	}
	fmt.Printf("\nvalidation, one Redis round trip, median of 20000 calls:\n")
	fmt.Printf("  %9d sessions in the store: %s\n", 1000, measure(small, ids, hashes).Round(time.Microsecond))
	start := time.Now()
	large := session.NewRedis(client, "l:", nil)
	ids, hashes, err = fill(large, big, 1, safariUA)
	if err != nil {
		return err
	}
	fmt.Printf("  %9d sessions in the store: %s   (filled in %s)\n", big+1000, measure(large, ids, hashes).Round(time.Microsecond), time.Since(start).Round(time.Second))
	return nil
}
