package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
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
		appAddr := serveLocal(t, demoapp.New())
		t.Setenv("NOLOGIN_UPSTREAM", serveLocal(t, demoapp.NewNoLogin()))
		accessLog := filepath.Join(t.TempDir(), "access.log")
		t.Setenv("ACCESS_LOG", accessLog)

		port, adminPort := redisserver.FreePort(t), redisserver.FreePort(t)
		t.Setenv("PORT", fmt.Sprint(port))
		t.Setenv("ADMIN_PORT", fmt.Sprint(adminPort))
		t.Setenv("UPSTREAM", appAddr)
		sink := newMailServer(t, "", false, 0) // the demo's mail sink: plain, on loopback
		t.Setenv("MAIL_PORT", strings.TrimPrefix(sink.addr, "127.0.0.1:"))
		signInPort := redisserver.FreePort(t)
		t.Setenv("SIGNIN_PORT", fmt.Sprint(signInPort))
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
		if res := browser.do("GET", "/", "Accept", "text/html"); res.StatusCode != 200 || !strings.Contains(res.body, "Hello, Alice Liddell") || !strings.Contains(res.body, "X-Auth-Session") || !strings.Contains(res.body, `<a href="/.auth/sessions">Where you're signed in</a>`) {
			t.Fatalf("home: %d %s", res.StatusCode, res.body)
		}
		if res := browser.do("GET", "/headers"); !strings.Contains(res.body, `"X-Auth-User":"alice"`) {
			t.Fatalf("headers: %s", res.body)
		}

		phone := newClient(t, g)
		form(phone, "alice", demoapp.Password)
		// A second browser: the new-sign-in mail goes to alice's address.
		waitUntil(t, 20*time.Second, func() bool { return len(sink.received()) == 1 })
		m := parseMail(t, sink.received()[0].data)
		if to, err := mail.ParseAddress(m.header.Get("To")); err != nil || to.Address != "alice@example.com" || to.Name != "Alice Liddell" ||
			!strings.Contains(m.text, "This wasn't me") || !strings.Contains(m.text, g.base+"/.auth/revoke?token=") {
			t.Errorf("the demo's mail: To %q\n%s", m.header.Get("To"), m.text)
		}
		if res := browser.do("POST", "/change-password", "Origin", g.base); res.StatusCode != 303 {
			t.Fatalf("change password: %d", res.StatusCode)
		}
		// The phone lands on the sign-in page, which says why.
		res = phone.do("GET", "/", "Accept", "text/html")
		if res.StatusCode != 303 || res.Header.Get("Location") != "/login?next=%2F&session_ended=revoked" {
			t.Fatalf("other session after the password change: %d %q", res.StatusCode, res.Header.Get("Location"))
		}
		if res := phone.do("GET", res.Header.Get("Location"), "Accept", "text/html"); !strings.Contains(res.body, "You were signed out from another device.") {
			t.Fatalf("the sign-in page does not say why: %s", res.body)
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
		if p := noLogin.get("/"); p.status != 200 || !strings.Contains(p.body, "Hello, Alice Example") || !strings.Contains(p.body, "signed you in as <b>alice</b>") ||
			!strings.Contains(p.body, `<meta name="viewport"`) || !strings.Contains(p.body, `<form class="inline" method="post" action="/.auth/logout?next=/">`) ||
			!strings.Contains(p.body, "X-Auth-User") {
			t.Fatalf("no-login page: %d %s", p.status, p.body)
		}
		// The no-login app has no /login: nothing there hands a sign-in
		// off, so bob cannot skip the gateway's form (and his code).
		handOff, err := http.PostForm(noLogin.base+"/login", url.Values{"username": {"bob"}, "password": {demoapp.Password}})
		if err != nil {
			t.Fatal(err)
		}
		handOff.Body.Close()
		if handOff.StatusCode == http.StatusSeeOther || len(handOff.Cookies()) != 0 {
			t.Fatalf("a hand-off on the no-login site: %d, cookies %v", handOff.StatusCode, handOff.Cookies())
		}
		// The full access log, headers and all, is in its file.
		waitUntil(t, 10*time.Second, func() bool {
			b, _ := os.ReadFile(accessLog)
			return strings.Contains(string(b), `"uri":"/headers"`) && strings.Contains(string(b), `"User-Agent":`)
		})
		bob := newBrowser(t, noLogin.base)
		step := bob.signInForm("/", "bob", "demo")
		if p := bob.codeStep(step, codeFor(t, "JBSWY3DPEHPK3PXP" /* the secret the banner prints */, time.Now())); p.status != 303 {
			t.Fatalf("no-login site, bob with his code: %d %s", p.status, p.body)
		}
		if p := bob.get("/"); !strings.Contains(p.body, "Hello, Bob Example") {
			t.Fatalf("bob's page: %s", p.body)
		}
		// alice, the demo's admin, sees the demo's own traffic in the
		// console; bob may not open it.
		if p := bob.get("/.auth/admin"); p.status != http.StatusForbidden {
			t.Fatalf("bob at the console: %d", p.status)
		}
		if p := noLogin.get("/.auth/admin"); p.status != 200 || !strings.Contains(p.body, "<h1>Admin console</h1>") || !strings.Contains(p.body, `data-chart="hourly"`) {
			t.Fatalf("alice at the console: %d %s", p.status, p.body)
		}
		p := noLogin.get("/.auth/admin/stats", "Accept", "application/json")
		var st struct {
			Active int `json:"active_sessions"`
			Daily  []struct {
				SignIns int `json:"sign_ins"`
			} `json:"daily"`
		}
		if err := json.Unmarshal([]byte(p.body), &st); err != nil || st.Active < 2 || st.Daily[len(st.Daily)-1].SignIns < 3 {
			t.Fatalf("the console's figures of the demo: %v %s", err, p.body)
		}
	})
}

// The README's quick starts, run as written with bash and curl against
// Caddyfile.example and the demo app, on this test's ports instead of
// 8080 and 2019.
func TestREADMEQuickStarts(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("curl is needed to run the README's recipes: %v", err)
		}
		t.Skipf("curl not found (%v); CI=true makes this a failure", err)
	}
	appAddr := serveLocal(t, demoapp.New())
	port, adminPort := redisserver.FreePort(t), redisserver.FreePort(t)
	t.Setenv("PORT", fmt.Sprint(port))
	t.Setenv("ADMIN_PORT", fmt.Sprint(adminPort))
	t.Setenv("UPSTREAM", appAddr)
	t.Setenv("SESSION_STORE", "memory")
	t.Setenv("NOLOGIN_UPSTREAM", serveLocal(t, demoapp.NewNoLogin()))
	t.Setenv("ACCESS_LOG", filepath.Join(t.TempDir(), "access.log"))
	text, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, base: fmt.Sprintf("http://localhost:%d", port), admin: fmt.Sprintf("http://localhost:%d", adminPort), port: port}
	g.load(string(text))
	t.Cleanup(func() { stopCaddy() })

	run := func(script string) string {
		t.Helper()
		script = strings.NewReplacer("localhost:8080", fmt.Sprintf("localhost:%d", port), "localhost:2019", fmt.Sprintf("localhost:%d", adminPort)).Replace(script)
		cmd := exec.Command(bash, "-euo", "pipefail", "-c", script)
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s\n%s", err, script, out)
		}
		return string(out)
	}

	own := docBlocks(t, "README.md", "### My app has its own login", "sh")
	if len(own) != 2 {
		t.Fatalf("own login: %d sh blocks", len(own))
	}
	out := run(own[1])
	for _, want := range []string{"HTTP/1.1 303", "Set-Cookie: session=", `"X-Auth-User":"alice"`, `"user_id":"alice"`, "HTTP/1.1 204"} {
		if !strings.Contains(out, want) {
			t.Errorf("own-login quick start lacks %q:\n%s", want, out)
		}
	}

	mint := docBlocks(t, "README.md", "### My app can't change but can call an API", "sh")
	if len(mint) != 2 {
		t.Fatalf("API quick start: %d sh blocks", len(mint))
	}
	if out := run(mint[0]); !strings.Contains(out, `"set_cookie":"session=`) || !strings.Contains(out, "SameSite=Lax") || strings.Contains(out, "Secure") {
		t.Errorf("mint: %s", out)
	}
	if out := run(mint[1]); !strings.Contains(out, `"X-Auth-User":"carol"`) || !strings.Contains(out, `"X-Auth-Roles":"viewer,billing"`) {
		t.Errorf("the minted cookie, sent as given: %s", out)
	}
}
