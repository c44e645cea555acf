package integration

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// requireSite is a site with session_auth and the given session_require
// lines after it.
func requireSite(store, rules string) string {
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
		` + store + `
		login_rate 100000 1m
		max_sessions 0
	}
` + rules + `
	reverse_proxy {UPSTREAM}
}
`
}

// Every rule kind through the real Caddy, placed by path and method
// matchers; roles come from the hand-off; refusals are a page in words for
// a browser and JSON for the rest, never reach the upstream, and are
// counted by rule.
func TestSessionRequireRules(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		up := newUpstream(t)
		alice := "alice-" + randomID()
		g := loadCaddy(t, requireSite(store, `
	session_require /admin/* roles admin ops
	@delete method DELETE
	session_require @delete {
		users `+alice+`
	}
	session_require /fresh/* max_age 10m
	session_require /calm/* no_risk ip-changed
	session_require /both/* {
		roles admin
		users nobody
	}
`), up)
		admin := newGeoClient(t, g, "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")
		admin.signInFrom("203.0.113.7", alice)
		// The hand-off's roles: sign in again with them.
		admin.client.signIn(alice, "roles", "ops,billing", "name", "Alice Admin")
		bob := newClient(t, g)
		bob.signIn("bob-"+randomID(), "roles", "billing")

		pass := func(c *client, method, path string, header ...string) {
			t.Helper()
			before := up.count(path)
			res := c.do(method, path, header...)
			if res.StatusCode != 200 || up.count(path) != before+1 {
				t.Fatalf("%s %s: %d %s, want the upstream's 200", method, path, res.StatusCode, res.body)
			}
		}
		refuse := func(c *client, method, path string, header ...string) *response {
			t.Helper()
			before := up.count(path)
			res := c.do(method, path, header...)
			if res.StatusCode != 403 || up.count(path) != before {
				t.Fatalf("%s %s: %d %s, want 403 before the upstream", method, path, res.StatusCode, res.body)
			}
			return res
		}

		pass(admin.client, "GET", "/admin/panel")
		res := refuse(bob, "GET", "/admin/panel")
		if strings.TrimSpace(res.body) != `{"error":"forbidden"}` || res.Header.Get("Content-Type") != "application/json" {
			t.Errorf("API refusal: %q %s", res.body, res.Header.Get("Content-Type"))
		}
		page := refuse(bob, "GET", "/admin/panel", "Accept", "text/html").body
		for _, want := range []string{"You don't have access to this page", "signed in as <strong>bob-",
			`action="/.auth/logout?next=%2fadmin%2fpanel"`, `href="/.auth/sessions"`, "Sign out"} {
			if !strings.Contains(page, want) {
				t.Errorf("403 page lacks %q:\n%s", want, page)
			}
		}
		// The method matcher: only DELETE is limited to alice.
		pass(bob, "GET", "/doc")
		refuse(bob, "DELETE", "/doc")
		pass(admin.client, "DELETE", "/doc")
		// max_age: a sign-in a moment ago is recent enough.
		pass(bob, "GET", "/fresh/x")
		// no_risk: the same session from another IP carries ip-changed.
		calm := newGeoClient(t, g, "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")
		calm.signInFrom("203.0.113.8", "calm-"+randomID())
		if r := calm.from("203.0.113.8", "GET", "/calm/x"); r.StatusCode != 200 {
			t.Fatalf("no_risk from the sign-in IP: %d", r.StatusCode)
		}
		if r := calm.from("198.51.100.80", "GET", "/calm/x"); r.StatusCode != 403 {
			t.Fatalf("no_risk after an IP change: %d %s", r.StatusCode, r.body)
		}
		// All kinds of one rule must hold.
		refuse(admin.client, "GET", "/both/x")
		// Without a session: session_auth's unauthenticated answer.
		anon := newClient(t, g)
		if r := anon.do("GET", "/admin/panel"); r.StatusCode != 401 {
			t.Errorf("anonymous: %d", r.StatusCode)
		}
		if r := anon.do("GET", "/admin/panel", "Accept", "text/html"); r.StatusCode != 303 ||
			!strings.HasPrefix(r.Header.Get("Location"), "/login?next=") {
			t.Errorf("anonymous browser: %d %s", r.StatusCode, r.Header.Get("Location"))
		}
		_, metrics := g.adminDo("GET", "/metrics", "")
		for _, want := range []string{`caddy_session_auth_denied_total{rule="roles"}`, `caddy_session_auth_denied_total{rule="users"}`,
			`caddy_session_auth_denied_total{rule="no_risk"}`} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

// A rule that covers the whole site leaves the login path reachable:
// nobody could sign in otherwise.
func TestSessionRequireLeavesLoginReachable(t *testing.T) {
	up := newUpstream(t)
	g := loadCaddy(t, requireSite("store memory", "\tsession_require roles admin\n"), up)
	c := newClient(t, g)
	c.signIn("plain-"+randomID(), "roles", "viewer")
	if r := c.do("GET", "/app"); r.StatusCode != 403 {
		t.Fatalf("a viewer on an admin-only site: %d", r.StatusCode)
	}
	admin := newClient(t, g)
	admin.signIn("root-"+randomID(), "roles", "admin")
	if r := admin.do("GET", "/app"); r.StatusCode != 200 || r.headers["X-Auth-Roles"] != "admin" {
		t.Fatalf("an admin: %d %v", r.StatusCode, r.headers)
	}
}

// rawGet sends target as it is on the request line (a backslash stays a
// backslash) and answers the status.
func rawGet(t *testing.T, g *gateway, target, cookie string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(g.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET " + target + " HTTP/1.1\r\nHost: " + strings.TrimPrefix(g.base, "http://") + "\r\nAccept: application/json\r\nConnection: close\r\n"
	if cookie != "" {
		req += "Cookie: session=" + cookie + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %q: %v", target, err)
	}
	res.Body.Close()
	return res.StatusCode
}

// Rules hold however the upstream reads the path: the spellings Caddy's
// path matcher does not take for /admin/* or /exact but an upstream may
// (";x" dropped, "\" as "/", decoded once more, trailing dots, spaces and
// controls dropped, a trailing "/") are answered as the rule answers and
// never reach the app; a user the rule lets in gets through, and paths no
// rule covers in any reading (an API's %2F ids) are left alone.
func TestSessionRequireHoldsHoweverThePathIsRead(t *testing.T) {
	up := newUpstream(t)
	g := loadCaddy(t, requireSite("store memory", `
	session_require /admin/* roles admin
	session_require /exact roles admin
`), up)
	admin, viewer := newClient(t, g), newClient(t, g)
	admin.signIn("pa-"+randomID(), "roles", "admin")
	viewer.signIn("pv-"+randomID(), "roles", "viewer")
	for _, target := range []string{
		"/admin;x/panel", "/admin./panel", "/admin%252fpanel", `/admin\panel`, "/admin%5cpanel", "/admin%09/panel",
		"/exact/", "/exact.", "/exact;", "/exact%2f", "/exact%00",
	} {
		before := up.total()
		if code := rawGet(t, g, target, viewer.cookie); code != http.StatusForbidden {
			t.Errorf("%s as a viewer: %d, want the rule's 403", target, code)
		}
		if code := rawGet(t, g, target, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without a session: %d, want 401", target, code)
		}
		if up.total() != before {
			t.Errorf("%s reached the app", target)
		}
		if code := rawGet(t, g, target, admin.cookie); code != http.StatusOK {
			t.Errorf("%s as an admin: %d", target, code)
		}
	}
	for _, target := range []string{"/api/items/a%2Fb", "/api/items/a%252Fb", "/files/a;b", "/blog/", "/exactly/"} {
		if code := rawGet(t, g, target, viewer.cookie); code != http.StatusOK {
			t.Errorf("%s, which no rule covers: %d", target, code)
		}
	}
}
