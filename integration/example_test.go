package integration

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/examples/demoapp"
	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// The README's demo, as a user walks through it: Caddyfile.example in
// front of the demo app, with the file store, the memory store and Redis.
func TestCaddyfileExampleWithDemoApp(t *testing.T) {
	stores(t, func(t *testing.T, storeLine string, srv *redisserver.Server) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		app := &http.Server{Handler: demoapp.New(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = app.Serve(l) }()
		t.Cleanup(func() { _ = app.Close() })

		port, adminPort := redisserver.FreePort(t), redisserver.FreePort(t)
		t.Setenv("PORT", fmt.Sprint(port))
		t.Setenv("ADMIN_PORT", fmt.Sprint(adminPort))
		signInPort := redisserver.FreePort(t)
		t.Setenv("SIGNIN_PORT", fmt.Sprint(signInPort))
		t.Setenv("UPSTREAM", l.Addr().String())
		store := strings.TrimPrefix(storeLine, "store ")
		if srv != nil {
			store = "redis redis://" + srv.Addr
		}
		t.Setenv("SESSION_STORE", store)
		text, err := os.ReadFile("../Caddyfile.example")
		if err != nil {
			t.Fatal(err)
		}
		g := &gateway{t: t, base: fmt.Sprintf("http://localhost:%d", port), admin: fmt.Sprintf("http://localhost:%d", adminPort), port: port}
		g.load(string(text))
		t.Cleanup(func() { stopCaddy() })

		browser := newClient(t, g)
		form := func(c *client, user, pass string) *response {
			req, _ := http.NewRequest("POST", g.base+"/login?next=%2Fheaders", strings.NewReader(url.Values{"username": {user}, "password": {pass}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if c.cookie != "" {
				req.Header.Set("Cookie", "session="+c.cookie)
			}
			res, err := c.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			r := &response{Response: res}
			if ck := sessionCookie(r, "session"); ck != nil && ck.Value != "" {
				c.cookie = ck.Value
			}
			return r
		}

		res := browser.do("GET", "/", "Accept", "text/html")
		if res.StatusCode != 303 || res.Header.Get("Location") != "/login?next=%2F" {
			t.Fatalf("home without a session: %d %q", res.StatusCode, res.Header.Get("Location"))
		}
		if res := browser.do("GET", "/login?next=%2F", "Accept", "text/html"); res.StatusCode != 200 || !strings.Contains(res.body, "<form") {
			t.Fatalf("sign-in page: %d", res.StatusCode)
		}
		if res := form(browser, "alice", "wrong"); res.StatusCode != 401 || browser.cookie != "" {
			t.Fatalf("wrong password: %d, cookie %q", res.StatusCode, browser.cookie)
		}
		res = form(browser, "alice", demoapp.Password)
		if res.StatusCode != 303 || res.Header.Get("Location") != "/headers" || browser.cookie == "" {
			t.Fatalf("sign-in: %d %q", res.StatusCode, res.Header.Get("Location"))
		}
		if res.Header.Get("Session-Login") != "" {
			t.Fatal("hand-off header reached the browser")
		}
		if res := browser.do("GET", "/", "Accept", "text/html"); res.StatusCode != 200 || !strings.Contains(res.body, "Hello, Alice Liddell") || !strings.Contains(res.body, "X-Auth-Session") {
			t.Fatalf("home: %d %s", res.StatusCode, res.body)
		}
		if res := browser.do("GET", "/headers"); !strings.Contains(res.body, `"X-Auth-User":"alice"`) {
			t.Fatalf("headers: %s", res.body)
		}

		phone := newClient(t, g)
		form(phone, "alice", demoapp.Password)
		if res := browser.do("POST", "/change-password", "Origin", g.base); res.StatusCode != 303 {
			t.Fatalf("change password: %d", res.StatusCode)
		}
		if res := phone.do("GET", "/", "Accept", "text/html"); res.StatusCode != 303 {
			t.Fatalf("other session survived the password change: %d", res.StatusCode)
		}
		if res := browser.do("POST", "/.auth/logout?next=/login", "Origin", g.base); res.StatusCode != 303 || res.Header.Get("Location") != "/login" {
			t.Fatalf("sign out: %d %q", res.StatusCode, res.Header.Get("Location"))
		}
		if res := browser.do("GET", "/", "Accept", "text/html"); res.StatusCode != 303 {
			t.Fatalf("session valid after sign out: %d", res.StatusCode)
		}
		code, body := g.adminDo("GET", "/session-auth/users/alice/sessions", "")
		if code != 200 || strings.Count(body, `"active":false`) < 2 {
			t.Fatalf("admin list after the walk: %d %s", code, body)
		}

		// The second site: a page with no login, behind the gateway's sign-in.
		noLogin := newBrowser(t, fmt.Sprintf("http://localhost:%d", signInPort))
		if p := noLogin.get("/"); p.status != 303 || p.header.Get("Location") != "/.auth/sign-in?next=%2F" {
			t.Fatalf("no-login site without a session: %d %q", p.status, p.header.Get("Location"))
		}
		if p := noLogin.signInForm("/", "alice", "demo"); p.status != 303 {
			t.Fatalf("no-login site, alice: %d %s", p.status, p.body)
		}
		if p := noLogin.get("/"); p.status != 200 || !strings.Contains(p.body, "Hello, Alice Example") || !strings.Contains(p.body, "signed you in as <b>alice</b>") {
			t.Fatalf("no-login page: %d %s", p.status, p.body)
		}
		bob := newBrowser(t, noLogin.base)
		step := bob.signInForm("/", "bob", "demo")
		if p := bob.codeStep(step, codeFor(t, "JBSWY3DPEHPK3PXP" /* the secret the banner prints */, time.Now())); p.status != 303 {
			t.Fatalf("no-login site, bob with his code: %d %s", p.status, p.body)
		}
		if p := bob.get("/"); !strings.Contains(p.body, "Hello, Bob Example") {
			t.Fatalf("bob's page: %s", p.body)
		}
	})
}
