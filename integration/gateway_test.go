package integration

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

func TestHandOffAndIdentity(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		up := newUpstream(t)
		g := loadCaddy(t, site(store), up)
		c := newClient(t, g)

		res := c.signIn("alice", "email", "alice@example.com", "name", "Alice L", "roles", "admin,dev")
		for k := range res.Header {
			if strings.HasPrefix(strings.ToLower(k), "session-log") {
				t.Errorf("hand-off header %s reached the client", k)
			}
		}
		if res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("hand-off response Cache-Control %q", res.Header.Get("Cache-Control"))
		}
		sc := strings.Join(res.Header.Values("Set-Cookie"), "\n")
		for _, want := range []string{"session=", "Path=/", "Max-Age=2592000", "HttpOnly", "SameSite=Lax"} {
			if !strings.Contains(sc, want) {
				t.Errorf("Set-Cookie %q lacks %s", sc, want)
			}
		}
		if strings.Contains(sc, "Secure") {
			t.Errorf("Set-Cookie on plain HTTP is Secure: %q", sc)
		}

		res = c.do("GET", "/app", "X-Auth-User", "mallory", "X_Auth_Roles", "root", "x.auth.admin", "true", "X-AUTH-EMAIL", "m@evil")
		if res.StatusCode != 200 {
			t.Fatalf("GET /app: %d %s", res.StatusCode, res.body)
		}
		h := res.headers
		for name, want := range map[string]string{
			"X-Auth-User": "alice", "X-Auth-Email": "alice@example.com", "X-Auth-Name": "Alice L",
			"X-Auth-Roles": "admin,dev", "X-Auth-Ip": "127.0.0.1", "X-Auth-Login-Ip": "127.0.0.1",
			"X-Auth-Ip-Changed": "false", "X-Auth-Method": "handoff",
		} {
			if h[name] != want {
				t.Errorf("upstream saw %s = %q, want %q (all: %v)", name, h[name], want, h)
			}
		}
		if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(h["X-Auth-Session"]) {
			t.Errorf("X-Auth-Session %q", h["X-Auth-Session"])
		}
		if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(h["X-Auth-Session-Created"]) {
			t.Errorf("X-Auth-Session-Created %q", h["X-Auth-Session-Created"])
		}
		if h["X-Auth-Authenticated-At"] != h["X-Auth-Session-Created"] {
			t.Errorf("X-Auth-Authenticated-At %q, created %q", h["X-Auth-Authenticated-At"], h["X-Auth-Session-Created"])
		}
		for k, v := range h {
			if strings.Contains(v, "mallory") || strings.Contains(v, "root") || strings.Contains(v, "evil") || k == "X-Auth-Admin" {
				t.Errorf("spoofed header reached the upstream: %s: %s", k, v)
			}
		}
		if _, ok := h["X-Auth-Risk"]; ok {
			t.Errorf("risk flagged without a reason: %v", h)
		}

		// From another address, through a trusted proxy: the IP moves.
		res = c.do("GET", "/app", "X-Forwarded-For", "203.0.113.5")
		if res.headers["X-Auth-Ip"] != "203.0.113.5" || res.headers["X-Auth-Ip-Changed"] != "true" || res.headers["X-Auth-Risk"] != "ip-changed" {
			t.Errorf("after an IP change: %v", res.headers)
		}

		res = c.do("GET", "/.auth/me")
		var me struct {
			User struct {
				ID    string   `json:"id"`
				Roles []string `json:"roles"`
			} `json:"user"`
			Session map[string]any `json:"session"`
		}
		if res.StatusCode != 200 || json.Unmarshal([]byte(res.body), &me) != nil {
			t.Fatalf("/.auth/me: %d %s", res.StatusCode, res.body)
		}
		if me.User.ID != "alice" || len(me.User.Roles) != 2 || me.Session["current"] != true ||
			me.Session["id"] != h["X-Auth-Session"] || me.Session["active"] != true || me.Session["ip_address"] != "127.0.0.1" || me.Session["login_ip_address"] != "127.0.0.1" {
			t.Errorf("/.auth/me: %s", res.body)
		}
		if me.Session["auth_method"] != "handoff" || me.Session["kind"] != "browser" ||
			me.Session["authenticated_at"] != h["X-Auth-Session-Created"] || me.Session["name"] != nil {
			t.Errorf("/.auth/me: how and when the user signed in: %s", res.body)
		}
		if strings.Contains(res.body, c.cookie[33:]) {
			t.Error("/.auth/me shows the secret")
		}
		if res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("/.auth/me Cache-Control %q", res.Header.Get("Cache-Control"))
		}
		if up.count("/.auth/me") != 0 {
			t.Error("/.auth/me reached the upstream")
		}
	})
}

func TestUnauthenticated(t *testing.T) {
	up := newUpstream(t)
	g := loadCaddy(t, site("store memory"), up)
	c := newClient(t, g)
	res := c.do("GET", "/app/page?x=1&y=%2F", "Accept", "text/html,application/xhtml+xml")
	if res.StatusCode != 303 || res.Header.Get("Location") != "/login?next=%2Fapp%2Fpage%3Fx%3D1%26y%3D%252F" {
		t.Errorf("browser: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	res = c.do("GET", "/api/items", "Accept", "application/json", "X-Auth-User", "alice")
	if res.StatusCode != 401 || strings.TrimSpace(res.body) != `{"error":"unauthenticated"}` || res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("api: %d %q", res.StatusCode, res.body)
	}
	res = c.do("GET", "/.auth/me")
	if res.StatusCode != 401 {
		t.Errorf("/.auth/me without a session: %d", res.StatusCode)
	}
	if res := c.do("GET", "/.auth/nothing"); res.StatusCode != 404 {
		t.Errorf("unknown endpoint: %d", res.StatusCode)
	}
	if up.total() != 0 {
		t.Errorf("the upstream was reached %d times without a session", up.total())
	}
	// The login path itself needs no session.
	if res := c.do("GET", "/login?next=/x"); res.StatusCode != 200 || up.count("/login") != 1 {
		t.Errorf("login page: %d", res.StatusCode)
	}
}

func TestOptional(t *testing.T) {
	up := newUpstream(t)
	g := loadCaddy(t, site("store memory\noptional"), up)
	c := newClient(t, g)
	res := c.do("GET", "/", "X-Auth-User", "mallory")
	if res.StatusCode != 200 || len(res.headers) != 0 {
		t.Fatalf("anonymous: %d %v", res.StatusCode, res.headers)
	}
	c.signIn("bob")
	if res := c.do("GET", "/"); res.headers["X-Auth-User"] != "bob" {
		t.Fatalf("signed in: %v", res.headers)
	}
}

func TestSignOut(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		up := newUpstream(t)
		g := loadCaddy(t, site(store), up)
		c := newClient(t, g)
		c.signIn("alice")

		for _, hdr := range [][]string{
			{"Sec-Fetch-Site", "cross-site"},
			{"Sec-Fetch-Site", "same-site"},
			{"Origin", "http://evil.example"},
			{"Origin", "null"},
		} {
			if res := c.do("POST", "/.auth/logout", hdr...); res.StatusCode != 403 {
				t.Errorf("cross-site logout %v: %d", hdr, res.StatusCode)
			}
		}
		if res := c.do("GET", "/app"); res.StatusCode != 200 {
			t.Fatalf("session gone after refused logouts: %d", res.StatusCode)
		}

		for next, want := range map[string]string{
			"//evil.example": "/", "/%5Cevil.example": "/", "https://evil.example": "/",
			"/%09/evil": "/", "/bye?x=1": "/bye?x=1",
		} {
			cc := c.clone()
			cc.signIn("alice")
			res := cc.do("POST", "/.auth/logout?next="+strings.ReplaceAll(next, "?", "%3F"), "Origin", g.base, "Sec-Fetch-Site", "same-origin")
			if res.StatusCode != 303 || res.Header.Get("Location") != want {
				t.Errorf("next=%s: %d %q, want 303 %q", next, res.StatusCode, res.Header.Get("Location"), want)
			}
			if ck := sessionCookie(res, "session"); ck == nil || ck.MaxAge >= 0 {
				t.Errorf("next=%s: cookie not cleared: %v", next, res.Header.Values("Set-Cookie"))
			}
			if res.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("logout Cache-Control %q", res.Header.Get("Cache-Control"))
			}
			if res := cc.do("GET", "/app"); res.StatusCode != 401 {
				t.Errorf("session valid after logout: %d", res.StatusCode)
			}
		}

		cc := c.clone()
		cc.signIn("alice")
		if res := cc.do("GET", "/.auth/logout", "Accept", "application/json", "Sec-Fetch-Site", "same-origin"); res.StatusCode != 204 {
			t.Errorf("JSON logout: %d", res.StatusCode)
		}
		if res := cc.do("GET", "/app"); res.StatusCode != 401 {
			t.Errorf("session valid after GET logout: %d", res.StatusCode)
		}
		// Signing out without a session still clears the cookie.
		if res := newClient(t, g).do("POST", "/.auth/logout"); res.StatusCode != 303 || res.Header.Get("Location") != "/" {
			t.Errorf("logout without a session: %d", res.StatusCode)
		}
		if up.count("/.auth/logout") != 0 {
			t.Error("logout reached the upstream")
		}
	})
}

func TestUpstreamLogout(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		up := newUpstream(t)
		g := loadCaddy(t, site(store+"\nmax_sessions 0"), up)
		var cs []*client
		for i := 0; i < 3; i++ {
			c := newClient(t, g)
			c.signIn("bob")
			cs = append(cs, c)
		}
		other := newClient(t, g)
		other.signIn("carol")

		res := cs[0].do("POST", "/account/password?logout=others")
		if res.StatusCode != 200 || res.Header.Get("Session-Logout") != "" {
			t.Fatalf("logout=others: %d %v", res.StatusCode, res.Header)
		}
		if cs[0].do("GET", "/").StatusCode != 200 || cs[1].do("GET", "/").StatusCode != 401 ||
			cs[2].do("GET", "/").StatusCode != 401 || other.do("GET", "/").StatusCode != 200 {
			t.Fatal("others: wrong sessions ended")
		}
		res = cs[0].do("POST", "/account/close?logout=current")
		if ck := sessionCookie(res, "session"); ck == nil || ck.MaxAge >= 0 {
			t.Errorf("logout=current did not clear the cookie")
		}
		if cs[0].do("GET", "/").StatusCode != 401 {
			t.Fatal("current: session still valid")
		}
		a, b := newClient(t, g), newClient(t, g)
		a.signIn("dave")
		b.signIn("dave")
		a.do("POST", "/x?logout=all")
		if a.do("GET", "/").StatusCode != 401 || b.do("GET", "/").StatusCode != 401 || other.do("GET", "/").StatusCode != 200 {
			t.Fatal("all: wrong sessions ended")
		}
		// An unknown value is ignored, and never shown to the client.
		res = other.do("GET", "/x?logout=everything")
		if res.StatusCode != 200 || res.Header.Get("Session-Logout") != "" || other.do("GET", "/").StatusCode != 200 {
			t.Fatal("unknown Session-Logout value acted on")
		}
	})
}

func TestNoSessionFixation(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		g := loadCaddy(t, site(store), newUpstream(t))
		c := newClient(t, g)
		c.signIn("alice")
		planted := c.clone()
		c.signIn("alice") // signs in again carrying the old cookie
		if c.cookie == planted.cookie {
			t.Fatal("sign-in kept the cookie the client came with")
		}
		if planted.do("GET", "/").StatusCode != 401 {
			t.Fatal("the replaced session is still valid")
		}
		if c.do("GET", "/").StatusCode != 200 {
			t.Fatal("the new session is not valid")
		}
	})
}

func TestHandOffOnlyOnLoginPaths(t *testing.T) {
	up := newUpstream(t)
	g := loadCaddy(t, site("store memory\noptional"), up)
	c := newClient(t, g)
	c.signIn("alice")
	for _, target := range []string{"/app?user=mallory", "/login/../app?user=mallory", "/login?user=mallory&status=401", "/login?user=mallory&status=500"} {
		res := c.do("POST", target)
		if sessionCookie(res, "session") != nil {
			t.Errorf("%s: a cookie was set: %v", target, res.Header.Values("Set-Cookie"))
		}
		if res.Header.Get("Session-Login") != "" {
			t.Errorf("%s: Session-Login reached the client", target)
		}
	}
	if res := c.do("GET", "/"); res.headers["X-Auth-User"] != "alice" {
		t.Fatalf("identity changed: %v", res.headers)
	}
	// A hand-off with a control character in the user id is refused.
	res := newClient(t, g).do("POST", "/login?user=a%09b&status=303")
	if res.StatusCode != 502 || !strings.Contains(res.body, "bad_handoff") || sessionCookie(res, "session") != nil {
		t.Errorf("bad user id: %d %v", res.StatusCode, res.Header.Values("Set-Cookie"))
	}
	if res := newClient(t, g).do("POST", "/login?user="+strings.Repeat("u", 300)+"&status=303"); res.StatusCode != 502 || !strings.Contains(res.body, "bad_handoff") {
		t.Errorf("oversized user id: %d", res.StatusCode)
	}
	// Control characters from the upstream never reach a header (Go's
	// HTTP stack already refuses CR, LF and most others; a tab gets here).
	cc := newClient(t, g)
	cc.signIn("erin", "name", "Erin\tSmith ", "email", "erin@example.com")
	if res := cc.do("GET", "/"); res.headers["X-Auth-Name"] != "Erin Smith" {
		t.Errorf("unsanitised name: %q", res.headers["X-Auth-Name"])
	}
}

func TestMaxSessions(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		g := loadCaddy(t, site(store+"\nmax_sessions 2"), newUpstream(t))
		var cs []*client
		for i := 0; i < 3; i++ {
			c := newClient(t, g)
			c.signIn("frank")
			cs = append(cs, c)
		}
		if cs[0].do("GET", "/").StatusCode != 401 || cs[1].do("GET", "/").StatusCode != 200 || cs[2].do("GET", "/").StatusCode != 200 {
			t.Fatal("max_sessions 2 did not end the oldest")
		}
	})
	t.Run("reject", func(t *testing.T) {
		g := loadCaddy(t, site("store memory\nmax_sessions 1 reject"), newUpstream(t))
		newClient(t, g).signIn("grace")
		res := newClient(t, g).do("POST", "/login?user=grace&status=303")
		if res.StatusCode != 429 || sessionCookie(res, "session") != nil || strings.Contains(res.body, "upstream-body") {
			t.Fatalf("reject: %d %s", res.StatusCode, res.body)
		}
	})
}

func TestLoginPathTricks(t *testing.T) {
	up := newUpstream(t)
	g := loadCaddy(t, site("store memory\nlogin /login /auth/*"), up)
	c := newClient(t, g)
	for _, target := range []string{
		"/login/../secret", "/login/..%2Fsecret", "/login%2F..%2Fsecret", "/login%2fsecret",
		"/login%23/../secret", "/secret%23/login", "/secret;/login", "/login;/../secret",
		"/auth/..%2Fsecret", "/auth/%2e%2e/secret", "/auth/..%5Csecret", "/secret?/login",
		"/x/../login/../secret", "/secret/..;/login",
	} {
		before := up.total()
		res := c.do("GET", target)
		if res.StatusCode == 200 || res.StatusCode >= 500 || up.total() != before {
			t.Errorf("%s: %d, upstream reached %d times", target, res.StatusCode, up.total()-before)
		}
	}
	for _, target := range []string{"/login", "/login?next=/secret", "/auth/callback?code=1", "/auth/"} {
		if res := c.do("GET", target); res.StatusCode != 200 {
			t.Errorf("%s: %d, want the login path to pass", target, res.StatusCode)
		}
	}
}

func TestBadCookies(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		up := newUpstream(t)
		g := loadCaddy(t, site(store), up)
		good := newClient(t, g)
		good.signIn("alice")
		id, secret, _ := strings.Cut(good.cookie, ".")
		for name, cookie := range map[string]string{
			"garbage":     "session=garbage",
			"oversized":   "session=" + strings.Repeat("x", 6000),
			"wrong":       "session=" + id + "." + strings.Repeat("B", 43),
			"non-ascii":   "session=" + id + ".é" + secret[2:],
			"quoted junk": `session="` + id + `"`,
		} {
			req, _ := http.NewRequest("GET", g.base+"/app", nil)
			req.Header.Set("Cookie", cookie)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 401 {
				t.Errorf("%s: %d", name, res.StatusCode)
			}
		}
		// A tossed cookie beside the real one (SECURITY.md, cookie tossing):
		// the valid one is used.
		for name, cookie := range map[string]string{
			"duplicated": "session=" + good.cookie + "; session=" + good.cookie,
			"tossed":     "session=junk; session=" + good.cookie,
		} {
			res := newClient(t, g).do("GET", "/ok", "Cookie", cookie)
			if res.StatusCode != 200 || res.headers["X-Auth-User"] != "alice" {
				t.Errorf("%s: %d %v", name, res.StatusCode, res.headers)
			}
		}
		anon := newClient(t, g)
		for _, res := range []*response{
			anon.do("GET", "/app?session="+good.cookie),
			anon.do("GET", "/app", "Authorization", "Bearer "+good.cookie),
			anon.do("GET", "/app", "X-Session", good.cookie),
		} {
			if res.StatusCode != 401 {
				t.Errorf("token outside the cookie: %d", res.StatusCode)
			}
		}
		if up.count("/app") != 0 {
			t.Errorf("bad cookies reached the upstream %d times", up.count("/app"))
		}
	})
}

func TestPlaceholders(t *testing.T) {
	up := newUpstream(t)
	g := loadCaddy(t, `{
	admin 127.0.0.1:{ADMIN}
	persist_config off
}
http://127.0.0.1:{PORT} {
	route {
		session_auth {
			store memory
		}
		request_header X-Test-User "{http.auth.user.id}"
		request_header X-Test-Session "{http.auth.session.id}/{http.auth.session.ip}/{http.auth.session.ip_changed}"
		reverse_proxy {UPSTREAM}
	}
}`, up)
	c := newClient(t, g)
	c.signIn("heidi")
	res := c.do("GET", "/")
	want := res.headers["X-Auth-Session"] + "/127.0.0.1/false"
	if res.headers["X-Test-User"] != "heidi" || res.headers["X-Test-Session"] != want {
		t.Fatalf("placeholders: %v", res.headers)
	}
}

// Twenty sign-ins of one user at once, through Caddy, with max_sessions 5:
// exactly five stay active, on both stores.
func TestConcurrentSignInsHonourTheLimit(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		// Twenty sign-ins of one user queue behind each other in Redis: give
		// them the time a busy machine needs, so the test is about the limit.
		store = strings.Replace(store, "read_timeout 300ms", "read_timeout 3s", 1)
		g := loadCaddy(t, site(store+"\nmax_sessions 5"), newUpstream(t))
		user := "par-" + randomID()
		var wg sync.WaitGroup
		codes := make(chan int, 20)
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := http.Post(g.base+"/login?user="+user+"&status=200", "text/plain", nil)
				if err != nil {
					codes <- 0
					return
				}
				res.Body.Close()
				codes <- res.StatusCode
			}()
		}
		wg.Wait()
		close(codes)
		for c := range codes {
			if c != 200 {
				t.Fatalf("a parallel sign-in answered %d", c)
			}
		}
		_, body := g.adminDo("GET", "/session-auth/users/"+user+"/sessions", "")
		if active := strings.Count(body, `"active":true`); active != 5 {
			t.Fatalf("20 parallel sign-ins with max_sessions 5 left %d active", active)
		}
		if ended := strings.Count(body, `"end_reason":"limit"`); ended != 15 {
			t.Fatalf("%d ended by the limit, want 15", ended)
		}
	})
}

// A browser whose session ended elsewhere is sent to sign in with the
// reason, so that the sign-in page can say why; a browser that never had
// a session gets no reason.
func TestRedirectSaysWhyTheSessionEnded(t *testing.T) {
	g := loadCaddy(t, site("store memory\nmax_sessions 1"), newUpstream(t))
	user := "ended-" + randomID()
	first, second := newClient(t, g), newClient(t, g)
	first.signIn(user)
	second.signIn(user) // max_sessions 1: the first gives way
	if res := first.do("GET", "/x", "Accept", "text/html"); res.StatusCode != 303 || res.Header.Get("Location") != "/login?next=%2Fx&session_ended=limit" {
		t.Fatalf("ended for the limit: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	id := strings.SplitN(second.cookie, ".", 2)[0]
	if code, body := g.adminDo("DELETE", "/session-auth/sessions/"+id, ""); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if res := second.do("GET", "/x", "Accept", "text/html"); res.StatusCode != 303 || res.Header.Get("Location") != "/login?next=%2Fx&session_ended=revoked" {
		t.Fatalf("revoked: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if res := newClient(t, g).do("GET", "/x", "Accept", "text/html"); res.StatusCode != 303 || res.Header.Get("Location") != "/login?next=%2Fx" {
		t.Fatalf("never signed in: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
}
