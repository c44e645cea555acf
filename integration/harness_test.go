// Package integration drives a real Caddy, with session_auth and the
// standard modules loaded in this process, in front of a test upstream,
// with a real redis-server where the store is Redis.
package integration

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/sessionauth/caddy-sessionauth"
	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// gateway is a running Caddy config.
type gateway struct {
	t     *testing.T
	base  string // http://127.0.0.1:port
	admin string // http://127.0.0.1:port
	port  int
}

// loadCaddy adapts a Caddyfile and loads it into this process's Caddy.
// {PORT}, {ADMIN} and {UPSTREAM} in the text are filled in.
func loadCaddy(t *testing.T, caddyfile string, up *testUpstream) *gateway {
	t.Helper()
	g := &gateway{t: t, port: redisserver.FreePort(t)}
	adminPort := redisserver.FreePort(t)
	g.base = fmt.Sprintf("http://127.0.0.1:%d", g.port)
	g.admin = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	upstream := "127.0.0.1:1"
	if up != nil {
		upstream = up.addr
	}
	text := strings.NewReplacer("{PORT}", fmt.Sprint(g.port), "{ADMIN}", fmt.Sprint(adminPort),
		"{UPSTREAM}", upstream).Replace(caddyfile)
	g.load(text)
	t.Cleanup(stopCaddy)
	return g
}

func stopCaddy() { _ = caddy.Stop() }

func (g *gateway) load(text string) {
	g.t.Helper()
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(text), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		g.t.Fatalf("adapting:\n%s\n%v", text, err)
	}
	for _, w := range warnings {
		g.t.Logf("adapt warning: %s", w)
	}
	if err := caddy.Load(cfg, true); err != nil {
		g.t.Fatalf("loading config: %v", err)
	}
}

// site wraps session_auth options in a whole Caddyfile on free ports.
// Tests sign in many times from one address: unless they test login_rate,
// it is set out of their way.
func site(options string) string {
	if !strings.Contains(options, "login_rate") {
		options += "\nlogin_rate 100000 1m"
	}
	return `{
	admin 127.0.0.1:{ADMIN}
	persist_config off
	auto_https off
	servers {
		trusted_proxies static 127.0.0.0/8
	}
}
http://127.0.0.1:{PORT} {
	session_auth {
` + options + `
	}
	reverse_proxy {UPSTREAM}
}
`
}

// testUpstream is the app behind the gateway. It counts what reaches it
// and answers with the identity headers it received.
type testUpstream struct {
	addr  string
	mu    sync.Mutex
	calls map[string]int
	last  http.Header
	req   *http.Request // the last request: method, Host, RequestURI, headers and trailers as received
}

func newUpstream(t *testing.T) *testUpstream {
	t.Helper()
	u := &testUpstream{calls: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = l.Addr().String()
	srv := &http.Server{Handler: u, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return u
}

func (u *testUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20)) // to EOF: the trailers arrive there
	u.mu.Lock()
	u.calls[r.URL.Path]++
	u.last = r.Header.Clone()
	u.req = &http.Request{Method: r.Method, Host: r.Host, RequestURI: r.RequestURI, Proto: r.Proto, Header: u.last, Trailer: r.Trailer.Clone()}
	u.mu.Unlock()
	q := r.URL.Query()
	if user := q.Get("user"); user != "" {
		w.Header().Set("Session-Login", user)
		for _, f := range []string{"Email", "Name", "Roles"} {
			if v := q.Get(strings.ToLower(f)); v != "" {
				w.Header().Set("Session-Login-"+f, v)
			}
		}
	}
	if mode := q.Get("logout"); mode != "" {
		w.Header().Set("Session-Logout", mode)
	}
	status := http.StatusOK
	if s := q.Get("status"); s != "" {
		fmt.Sscan(s, &status)
	}
	if status == http.StatusSeeOther {
		w.Header().Set("Location", "/")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	seen := map[string]string{}
	for k, v := range r.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-auth") || strings.HasPrefix(k, "X-Test-") || strings.HasPrefix(k, "X-User-") {
			seen[k] = strings.Join(v, "|")
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "headers": seen, "body": "upstream-body"})
}

// lastRequest is the last request the upstream received.
func (u *testUpstream) lastRequest() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.req
}

func (u *testUpstream) count(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls[path]
}

func (u *testUpstream) total() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, c := range u.calls {
		n += c
	}
	return n
}

// client is a browser-like client that does not follow redirects.
type client struct {
	t      *testing.T
	g      *gateway
	http   *http.Client
	cookie string // the session cookie value; "" for none
	name   string // the session cookie name
}

func newClient(t *testing.T, g *gateway) *client {
	return &client{t: t, g: g, name: "session", http: &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type response struct {
	*http.Response
	body    string
	headers map[string]string // identity headers the upstream saw
}

// do sends a request; header pairs are name, value, name, value….
func (c *client) do(method, target string, header ...string) *response {
	c.t.Helper()
	r, err := c.try(method, target, header...)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, target, err)
	}
	return r
}

// doThroughHandOver is do for a request sent right after a reload: a
// connection reset while Caddy hands its listener to the new config
// (plain reverse_proxy shows the same) is retried a few times; it says
// nothing of the module, whose answers are what the tests check.
func (c *client) doThroughHandOver(method, target string, header ...string) *response {
	c.t.Helper()
	var err error
	for range 5 {
		var r *response
		if r, err = c.try(method, target, header...); err == nil {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("%s %s failed 5 times: %v", method, target, err)
	return nil
}

// try sends a request and answers the transport's error, if any.
func (c *client) try(method, target string, header ...string) (*response, error) {
	req, err := http.NewRequest(method, c.g.base+target, nil)
	if err != nil {
		return nil, err
	}
	if strings.Contains(target, "%") || strings.Contains(target, "\\") {
		// keep the path exactly as written, encoded bytes and all
		p, q, _ := strings.Cut(target, "?")
		req.URL.Opaque = "//" + req.URL.Host + p
		req.URL.RawQuery = q
	}
	if c.cookie != "" {
		req.Header.Set("Cookie", c.name+"="+c.cookie)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := &response{Response: res, body: string(b)}
	var echo struct {
		Headers map[string]string `json:"headers"`
	}
	if json.Unmarshal(b, &echo) == nil {
		r.headers = echo.Headers
	}
	return r, nil
}

// signIn hands off a sign-in for user through the login path and keeps
// the cookie.
func (c *client) signIn(user string, extra ...string) *response {
	c.t.Helper()
	q := url.Values{"user": {user}, "status": {"303"}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	res := c.do("POST", "/login?"+q.Encode())
	if res.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("sign-in answered %d: %s", res.StatusCode, res.body)
	}
	got := sessionCookie(res, c.name)
	if got == nil || got.Value == "" {
		c.t.Fatalf("sign-in set no %s cookie: %v", c.name, res.Header.Values("Set-Cookie"))
	}
	c.cookie = got.Value
	return res
}

func sessionCookie(res *response, name string) *http.Cookie {
	var found *http.Cookie
	for _, ck := range res.Cookies() {
		if ck.Name == name {
			found = ck
		}
	}
	return found
}

func (c *client) clone() *client {
	cc := *c
	return &cc
}

// stores runs fn once per store: the file store (in a file of its own),
// the memory store and a real Redis (with its own key prefix), so that
// runs do not see each other.
func stores(t *testing.T, fn func(t *testing.T, storeLine string, srv *redisserver.Server)) {
	t.Run("file", func(t *testing.T) { fn(t, "store file "+filepath.Join(t.TempDir(), "sessions.db"), nil) })
	t.Run("memory", func(t *testing.T) { fn(t, "store memory", nil) })
	t.Run("redis", func(t *testing.T) {
		srv := redisserver.Start(t)
		fn(t, fmt.Sprintf("store redis redis://%s {\n key_prefix %s:\n read_timeout 300ms\n }", srv.Addr, randomID()), srv)
	})
}

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// adminDo calls the admin API; body may be empty.
func (g *gateway) adminDo(method, path, body string) (int, string) {
	g.t.Helper()
	req, _ := http.NewRequest(method, g.admin+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestMain(m *testing.M) {
	// Caddy keeps its data under HOME; give the run its own.
	dir, err := os.MkdirTemp("", "sessionauth-it-")
	if err == nil {
		os.Setenv("XDG_DATA_HOME", dir)
		os.Setenv("XDG_CONFIG_HOME", dir)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// guess sends n session cookies that match no session and returns the
// status of the last answer.
func guess(c *client, n int, header ...string) int {
	last := 0
	for i := 0; i < n; i++ {
		c.cookie = randomToken()
		last = c.do("GET", "/", header...).StatusCode
	}
	return last
}

// underLoad keeps 8 copies of c sending requests until the returned stop
// is called. Every answer must be 200 with user's identity, or 503 (the
// store unavailable): never anonymous, never a lost session. stop reports
// how many answers there were, how many were 503, and the first bad one.
func underLoad(c *client, user string, header ...string) (stop func() (answered, unavailable int64, bad any)) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var first atomic.Value
	var n, u atomic.Int64
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lc := c.clone()
			for {
				select {
				case <-done:
					return
				default:
				}
				res := lc.do("GET", "/", header...)
				n.Add(1)
				switch {
				case res.StatusCode == 503:
					u.Add(1)
				case res.StatusCode == 200 && res.headers["X-Auth-User"] == user:
				default:
					first.CompareAndSwap(nil, fmt.Sprintf("%d %v", res.StatusCode, res.headers))
				}
			}
		}()
	}
	return func() (int64, int64, any) {
		close(done)
		wg.Wait()
		return n.Load(), u.Load(), first.Load()
	}
}
