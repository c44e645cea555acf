package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// The README's "Behind another proxy": its gateway Caddyfile and each
// proxy's configuration, run as written, with the README's names on
// *.test.localhost (app.test.localhost and auth.test.localhost share the
// parent test.localhost, as app.example.com and auth.example.com share
// example.com) and its ports on free ones.

// forwardAuthGateway loads the README's gateway site on
// http://auth.<parent>:<port>, plus extra Caddyfile sites (with {PORT}
// and {UPSTREAM}, the app's address, filled in), and answers the gateway.
func forwardAuthGateway(t *testing.T, parent, extra, upstream string) *gateway {
	t.Helper()
	ownDataDir(t)
	block := docBlock(t, "docs/forward-auth.md", "## Behind another proxy", "caddyfile")
	for _, want := range []string{"\tservers {", "auth.example.com {", "base_url https://auth.example.com", "domain example.com", "allow_hosts *.example.com"} {
		if !strings.Contains(block, want) {
			t.Fatalf("the README's gateway changed shape (no %q):\n%s", want, block)
		}
	}
	g := &gateway{t: t, port: redisserver.FreePort(t)}
	adminPort := redisserver.FreePort(t)
	g.base = fmt.Sprintf("http://auth.%s:%d", parent, g.port)
	g.admin = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	text := strings.NewReplacer(
		"\tservers {", fmt.Sprintf("\tadmin 127.0.0.1:%d\n\tpersist_config off\n\tauto_https off\n\tservers {", adminPort),
		"https://auth.example.com", g.base,
		"auth.example.com {", g.base+" {",
		"domain example.com", "domain "+parent,
		"*.example.com", "*."+parent,
	).Replace(block) + strings.NewReplacer("{PORT}", fmt.Sprint(g.port), "{UPSTREAM}", upstream).Replace(extra)
	g.load(text)
	t.Cleanup(stopCaddy)
	return g
}

// localhostDialer reaches every *.localhost name on the loopback, as
// browsers do (Go's resolver asks DNS, which does not know them).
func localhostDialer(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && (host == "localhost" || strings.HasSuffix(host, ".localhost")) {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
}

// appBrowser is a browser-like client with a cookie jar that reaches
// *.localhost and follows no redirect by itself.
type appBrowser struct {
	t    *testing.T
	http *http.Client
}

func newAppBrowser(t *testing.T) *appBrowser {
	jar, _ := cookiejar.New(nil)
	return &appBrowser{t: t, http: &http.Client{
		Jar: jar, Timeout: 15 * time.Second,
		Transport:     &http.Transport{DialContext: localhostDialer},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *appBrowser) send(method, target string, body url.Values, header ...string) page {
	b.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(body.Encode())
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := b.http.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return page{status: res.StatusCode, header: res.Header, body: string(raw)}
}

// signInThroughTheApp opens appURL, is sent to the gateway's sign-in,
// signs in as alice and is sent back: it answers what the app received.
func (b *appBrowser) signInThroughTheApp(g *gateway, appURL string) map[string]string {
	b.t.Helper()
	p := b.send("GET", appURL, nil)
	want := g.base + "/.auth/sign-in?next=" + url.QueryEscape(appURL)
	if p.status != http.StatusFound || p.header.Get("Location") != want {
		b.t.Fatalf("the app, signed out: %d %q, want 302 to %q\n%s", p.status, p.header.Get("Location"), want, p.body)
	}
	p = b.send("GET", want, nil)
	if p.status != http.StatusOK || p.field("next") != appURL {
		b.t.Fatalf("sign-in page: %d next %q", p.status, p.field("next"))
	}
	p = b.send("POST", g.base+"/.auth/sign-in", url.Values{"csrf": {p.field("csrf")}, "next": {p.field("next")}, "username": {"alice"}, "password": {"demo"}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != appURL {
		b.t.Fatalf("signing in: %d %q, want 303 to %q", p.status, p.header.Get("Location"), appURL)
	}
	// The client's own identity header is replaced by the proxy.
	p = b.send("GET", appURL, nil, "X-Auth-Roles", "admin", "X-Auth-User", "mallory")
	if p.status != http.StatusOK {
		b.t.Fatalf("the app, signed in: %d %s", p.status, p.body)
	}
	return echoHeaders(b.t, &response{body: p.body})
}

// revokeAndRetry ends alice's sessions at the gateway's admin API, then
// asks for appURL again: the proxy must send the browser to sign in.
func (b *appBrowser) revokeAndRetry(g *gateway, appURL string) {
	b.t.Helper()
	if code, body := g.adminDo("DELETE", "/session-auth/users/alice/sessions", ""); code != http.StatusOK {
		b.t.Fatalf("revoking: %d %s", code, body)
	}
	p := b.send("GET", appURL, nil)
	if p.status != http.StatusFound || !strings.HasPrefix(p.header.Get("Location"), g.base+"/.auth/sign-in?next=") ||
		!strings.Contains(p.header.Get("Location"), "session_ended=revoked") {
		b.t.Fatalf("after the revocation: %d %q", p.status, p.header.Get("Location"))
	}
	if api := b.send("GET", appURL, nil, "Accept", "application/json"); api.status != http.StatusUnauthorized || api.header.Get("Location") != "" {
		b.t.Fatalf("an API client after the revocation: %d %q", api.status, api.header.Get("Location"))
	}
}

func checkAppIdentity(t *testing.T, seen map[string]string) {
	t.Helper()
	if seen["X-Auth-User"] != "alice" || seen["X-Auth-Email"] != "alice@example.com" || seen["X-Auth-Roles"] != "" {
		t.Fatalf("the app received %v", seen)
	}
}

// nginxPath finds Debian's nginx; without it the test skips, except with
// CI=true, where it fails.
func nginxPath(t *testing.T) string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if os.Getenv("CI") != "" {
		t.Fatal("nginx not found and CI=true: install it (apt-get install nginx-light)")
	}
	t.Skip("nginx not installed; with CI=true this is a failure")
	return ""
}

// startNginx runs nginx in the foreground with server (a server block)
// inside an http block whose files all live in a temporary directory;
// upstreams stands in for DNS. It waits until port answers.
func startNginx(t *testing.T, server, upstreams string, port int) {
	t.Helper()
	bin := nginxPath(t)
	dir := t.TempDir()
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events {
    worker_connections 64;
}
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
%[2]s
%[3]s
}
`, dir, upstreams, server)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir+"/", "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx's error log:\n%s", log)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %v\n%s\n%s\nconfig:\n%s", err, out, log, conf)
		default:
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not listen on %d: %s", port, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The README's nginx server block in front of an app: nginx asks the
// gateway with auth_request, a browser goes to the sign-in on the
// gateway's host and back, the app gets the identity, and a revocation at
// the gateway shuts nginx's door at the next request.
func TestREADMEBehindNginx(t *testing.T) {
	nginxPath(t)
	up := newUpstream(t)
	g := forwardAuthGateway(t, "test.localhost", "", up.addr)
	server := docBlock(t, "docs/forward-auth.md", "### Behind nginx", "nginx")
	for _, want := range []string{"listen 80;", "server_name app.example.com;", "proxy_pass http://127.0.0.1:3000;", "proxy_pass https://auth.example.com/"} {
		if !strings.Contains(server, want) {
			t.Fatalf("the README's nginx block changed shape (no %q):\n%s", want, server)
		}
	}
	port := redisserver.FreePort(t)
	server = strings.NewReplacer(
		"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", port),
		"server_name app.example.com;", "server_name app.test.localhost;",
		"proxy_pass http://127.0.0.1:3000;", "proxy_pass http://"+up.addr+";",
		"https://auth.example.com/", "http://auth.test.localhost/",
	).Replace(server)
	// nginx resolves proxy_pass names at start: this upstream block is
	// the DNS record of auth.test.localhost.
	startNginx(t, server, fmt.Sprintf("upstream auth.test.localhost {\n    server 127.0.0.1:%d;\n}", g.port), port)

	b := newAppBrowser(t)
	appURL := fmt.Sprintf("http://app.test.localhost:%d/reports?q=1", port)
	checkAppIdentity(t, b.signInThroughTheApp(g, appURL))
	if got := up.lastRequest(); got.Host != fmt.Sprintf("app.test.localhost:%d", port) || got.RequestURI != "/reports?q=1" {
		t.Fatalf("the app got %s %s", got.Host, got.RequestURI)
	}
	b.revokeAndRetry(g, appURL)
	if api := newAppBrowser(t).send("GET", appURL, nil, "Accept", "application/json"); api.status != http.StatusUnauthorized {
		t.Fatalf("an API client without a session: %d", api.status)
	}
}

// readmeCaddyApp is the README's Caddy site with Caddy's own
// forward_auth, on http://app.<parent>:{PORT}.
func readmeCaddyApp(t *testing.T, parent string) string {
	t.Helper()
	site := docBlock(t, "docs/forward-auth.md", "### Behind another Caddy", "caddyfile")
	for _, want := range []string{"app.example.com {", "uri /.auth/verify?\n", "forward_auth https://auth.example.com {", "header_up Host auth.example.com", "localhost:3000"} {
		if !strings.Contains(site, want) {
			t.Fatalf("the README's Caddy block changed shape (no %q):\n%s", want, site)
		}
	}
	site = strings.NewReplacer(
		"app.example.com {", "http://app."+parent+":{PORT} {",
		// Caddy's resolver does not know *.localhost: the loopback, by address.
		"forward_auth https://auth.example.com {", "forward_auth http://127.0.0.1:{PORT} {",
		"header_up Host auth.example.com", "header_up Host auth."+parent,
		"localhost:3000", "{UPSTREAM}",
	).Replace(site)
	return "\n" + site
}

// The README's Caddy site with Caddy's own forward_auth, beside the
// gateway's site in the same Caddy.
func TestREADMEBehindCaddy(t *testing.T) {
	up := newUpstream(t)
	g := forwardAuthGateway(t, "test.localhost", readmeCaddyApp(t, "test.localhost"), up.addr)

	b := newAppBrowser(t)
	appURL := fmt.Sprintf("http://app.test.localhost:%d/reports?q=1", g.port)
	checkAppIdentity(t, b.signInThroughTheApp(g, appURL))
	b.revokeAndRetry(g, appURL)
}

// traefikConfig is the part of the README's Traefik dynamic
// configuration that the test plays.
type traefikConfig struct {
	HTTP struct {
		Middlewares map[string]struct {
			ForwardAuth struct {
				Address                  string `yaml:"address"`
				AuthResponseHeadersRegex string `yaml:"authResponseHeadersRegex"`
			} `yaml:"forwardAuth"`
		} `yaml:"middlewares"`
		Routers map[string]struct {
			Rule        string   `yaml:"rule"`
			Middlewares []string `yaml:"middlewares"`
			Service     string   `yaml:"service"`
		} `yaml:"routers"`
		Services map[string]struct {
			LoadBalancer struct {
				Servers []struct {
					URL string `yaml:"url"`
				} `yaml:"servers"`
			} `yaml:"loadBalancer"`
		} `yaml:"services"`
	} `yaml:"http"`
}

// traefikForwardAuth does what Traefik's documentation says its
// forwardAuth middleware does: a GET to address with the request's
// headers and X-Forwarded-Method, -Proto, -Host, -Uri and -For; a 2xx
// lets the request on, with the answer's headers that match copy, after
// the request's own that match are removed; any other answer goes back to
// the client as it is.
func traefikForwardAuth(t *testing.T, address string, copyHeaders *regexp.Regexp, host string, app http.Handler) http.Handler {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: localhostDialer},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, _, _ := net.SplitHostPort(r.Host); h != host {
			http.NotFound(w, r)
			return
		}
		req, err := http.NewRequest(http.MethodGet, address, nil)
		if err != nil {
			t.Error(err)
			return
		}
		req.Header = r.Header.Clone()
		clientIP, _, _ := net.SplitHostPort(r.RemoteAddr)
		req.Header.Set("X-Forwarded-Method", r.Method)
		req.Header.Set("X-Forwarded-Proto", "http")
		req.Header.Set("X-Forwarded-Host", r.Host)
		req.Header.Set("X-Forwarded-Uri", r.URL.RequestURI())
		req.Header.Set("X-Forwarded-For", clientIP)
		res, err := client.Do(req)
		if err != nil {
			t.Errorf("forward auth: %v", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer res.Body.Close()
		if res.StatusCode < 200 || res.StatusCode > 299 {
			for k, v := range res.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(res.StatusCode)
			_, _ = io.Copy(w, res.Body)
			return
		}
		for k := range r.Header {
			if copyHeaders.MatchString(k) {
				r.Header.Del(k)
			}
		}
		for k, v := range res.Header {
			if copyHeaders.MatchString(k) {
				r.Header[k] = v
			}
		}
		app.ServeHTTP(w, r)
	})
}

// The README's Traefik configuration, played as Traefik's documentation
// says (Traefik is not in Debian's package lists), against the gateway.
func TestREADMEBehindTraefik(t *testing.T) {
	up := newUpstream(t)
	g := forwardAuthGateway(t, "test.localhost", "", up.addr)
	var cfg traefikConfig
	if err := yaml.Unmarshal([]byte(docBlock(t, "docs/forward-auth.md", "### Behind Traefik", "yaml")), &cfg); err != nil {
		t.Fatal(err)
	}
	router, ok := cfg.HTTP.Routers["app"]
	if !ok || len(router.Middlewares) != 1 {
		t.Fatalf("the README's Traefik routers changed shape: %+v", cfg.HTTP.Routers)
	}
	mw := cfg.HTTP.Middlewares[router.Middlewares[0]].ForwardAuth
	servers := cfg.HTTP.Services[router.Service].LoadBalancer.Servers
	host := strings.TrimSuffix(strings.TrimPrefix(router.Rule, "Host(`"), "`)")
	if mw.Address != "https://auth.example.com/.auth/verify" || host != "app.example.com" || len(servers) != 1 || servers[0].URL != "http://127.0.0.1:3000" {
		t.Fatalf("the README's Traefik configuration changed shape: %+v %q %+v", mw, router.Rule, servers)
	}
	copyHeaders, err := regexp.Compile(mw.AuthResponseHeadersRegex)
	if err != nil {
		t.Fatal(err)
	}
	appURL, _ := url.Parse("http://" + up.addr)
	proxy := traefikForwardAuth(t, strings.Replace(mw.Address, "https://auth.example.com", g.base, 1), copyHeaders,
		strings.Replace(host, "example.com", "test.localhost", 1), httputil.NewSingleHostReverseProxy(appURL))
	addr := serveLocal(t, proxy)
	_, port, _ := net.SplitHostPort(addr)

	b := newAppBrowser(t)
	target := fmt.Sprintf("http://app.test.localhost:%s/reports?q=1", port)
	seen := b.signInThroughTheApp(g, target)
	if seen["X-Auth-User"] != "alice" || seen["X-Auth-Email"] != "alice@example.com" || seen["X-Auth-Roles"] != "" || seen["X-Auth-Session"] == "" {
		t.Fatalf("the app received %v", seen)
	}
	b.revokeAndRetry(g, target)
}
