package sessionauth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"golang.org/x/crypto/bcrypt"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/signature"
)

// verifyHandler is a gateway that answers other proxies for *.example.com.
func verifyHandler(t *testing.T, configure func(*Handler)) (*Handler, func(time.Duration)) {
	t.Helper()
	h, clock := testHandler(t, func(h *Handler) {
		h.BaseURL = "https://auth.example.com"
		h.Cookie = &CookieConfig{Domain: "example.com"}
		h.ForwardAuth = &ForwardAuth{AllowHosts: []string{"*.example.com"}}
		if configure != nil {
			configure(h)
		}
	})
	return h, clock.Advance
}

// nginxVerify is the verify request nginx's auth_request sends for a
// browser's GET of original.
func nginxVerify(query, original string, c *http.Cookie, header ...string) *http.Request {
	r := httptest.NewRequest("GET", "/.auth/verify"+query, nil)
	r.Host = "127.0.0.1:9000" // the gateway as nginx reaches it
	r.Header.Set("X-Original-URL", original)
	r.Header.Set("X-Original-Method", "GET")
	r.Header.Set("Accept", "text/html,application/xhtml+xml")
	if c != nil {
		r.AddCookie(c)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	return r
}

// traefikVerify is the verify request of Traefik's ForwardAuth (and
// Caddy's forward_auth): the original request in X-Forwarded-*.
func traefikVerify(query, method, proto, host, uri string, c *http.Cookie, header ...string) *http.Request {
	r := httptest.NewRequest("GET", "/.auth/verify"+query, nil)
	r.Host = "auth.internal:9000"
	r.Header.Set("X-Forwarded-Method", method)
	r.Header.Set("X-Forwarded-Proto", proto)
	r.Header.Set("X-Forwarded-Host", host)
	r.Header.Set("X-Forwarded-Uri", uri)
	if c != nil {
		r.AddCookie(c)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	return r
}

// A valid session: 200 with the identity headers, signed for the
// original request (what the app behind the proxy receives), and none of
// the client's own X-Auth-* headers, in any spelling.
func TestVerifyAnswersTheIdentity(t *testing.T) {
	h, _ := verifyHandler(t, func(h *Handler) { h.SignHeaders = "s3cret" })
	c := signIn(t, h, "alice")
	for name, r := range map[string]*http.Request{
		"nginx": nginxVerify("", "http://app.example.com/reports/q%2F1?x=1", c,
			"X-Auth-Roles", "admin", "X-Auth_User", "mallory", "x-auth-risk", ""),
		"traefik": traefikVerify("", "GET", "http", "app.example.com", "/reports/q%2F1?x=1", c,
			"X-Auth-Roles", "admin", "X-Auth_User", "mallory"),
	} {
		t.Run(name, func(t *testing.T) {
			up := &upstream{}
			w := serve(t, h, r, up)
			if w.Code != http.StatusOK || up.calls != 0 {
				t.Fatalf("%d (upstream %d): %s", w.Code, up.calls, w.Body)
			}
			got := w.Header()
			if got.Get("X-Auth-User") != "alice" || got.Get("X-Auth-Email") != "alice@example.com" || got.Get("X-Auth-Session") == "" {
				t.Fatalf("identity: %v", got)
			}
			for k := range got {
				if strings.EqualFold(k, "X-Auth-Roles") || strings.Contains(k, "_") {
					t.Fatalf("the client's %s was echoed: %v", k, got)
				}
			}
			// The app sees the original request with these headers.
			app := httptest.NewRequest("GET", "http://app.example.com/reports/q%2F1?x=1", nil)
			for k, v := range got {
				if signature.HasPrefix(k, "x-auth-") {
					app.Header[k] = v
				}
			}
			if err := signature.VerifyPrefix(app, []byte("s3cret"), time.Minute, "X-Auth-", h.now()); err != nil {
				t.Fatalf("the signature does not hold for the original request: %v (%v)", err, got)
			}
			app.Host = "127.0.0.1:9000"
			if signature.VerifyPrefix(app, []byte("s3cret"), time.Minute, "X-Auth-", h.now()) == nil {
				t.Fatal("the signature holds for the verify request's Host, not the original's")
			}
		})
	}
}

// No session: a browser navigation is sent to the gateway's sign-in with
// the original absolute URL (302, or 401 with the Location for nginx);
// an API client gets 401 JSON.
func TestVerifyWithoutASession(t *testing.T) {
	h, _ := testHandler(t, func(h *Handler) {
		hash, _ := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
		h.BaseURL = "https://auth.example.com"
		h.ForwardAuth = &ForwardAuth{AllowHosts: []string{"*.example.com"}}
		h.SignIn = &SignIn{Accounts: []*Account{{User: "alice", Hash: string(hash)}}}
	})
	want := "https://auth.example.com/.auth/sign-in?next=" + url.QueryEscape("https://app.example.com/a?b=c")

	w := serve(t, h, nginxVerify("", "https://app.example.com/a?b=c", nil), &upstream{})
	if w.Code != http.StatusFound || w.Header().Get("Location") != want {
		t.Fatalf("browser: %d %q", w.Code, w.Header().Get("Location"))
	}
	w = serve(t, h, nginxVerify("?status=401", "https://app.example.com/a?b=c", nil), &upstream{})
	if w.Code != http.StatusUnauthorized || w.Header().Get("Location") != want || !strings.Contains(w.Body.String(), `"unauthenticated"`) {
		t.Fatalf("browser, status=401: %d %q %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	w = serve(t, h, traefikVerify("", "GET", "https", "app.example.com", "/a?b=c", nil, "Accept", "text/html"), &upstream{})
	if w.Code != http.StatusFound || w.Header().Get("Location") != want {
		t.Fatalf("traefik browser: %d %q", w.Code, w.Header().Get("Location"))
	}
	for name, r := range map[string]*http.Request{
		"api":  traefikVerify("", "GET", "https", "app.example.com", "/a", nil, "Accept", "application/json"),
		"post": traefikVerify("", "POST", "https", "app.example.com", "/a", nil, "Accept", "text/html"),
	} {
		w = serve(t, h, r, &upstream{})
		if w.Code != http.StatusUnauthorized || w.Header().Get("Location") != "" || strings.TrimSpace(w.Body.String()) != `{"error":"unauthenticated"}` {
			t.Fatalf("%s: %d %q %s", name, w.Code, w.Header().Get("Location"), w.Body)
		}
	}
}

// A session that ended: the answer says why on the way to the sign-in,
// and clears the cookie on the parent domain.
func TestVerifyEndedSession(t *testing.T) {
	h, _ := verifyHandler(t, nil)
	c := signIn(t, h, "alice")
	if _, err := h.store.EndUser(t.Context(), "alice", "", h.now(), session.EndRevoked, session.ActorAdmin, h.policy); err != nil {
		t.Fatal(err)
	}
	w := serve(t, h, nginxVerify("?status=401", "http://app.example.com/", c), &upstream{})
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Header().Get("Location"), "session_ended=revoked") {
		t.Fatalf("%d %q", w.Code, w.Header().Get("Location"))
	}
	cleared := false
	for _, ck := range w.Result().Cookies() {
		cleared = cleared || (ck.Name == "session" && ck.MaxAge < 0 && ck.Domain == "example.com")
	}
	if !cleared {
		t.Fatalf("cookie not cleared: %v", w.Header().Values("Set-Cookie"))
	}
}

// The rules in the verify URL hold as session_require's: 403 when one
// fails, 200 when all hold.
func TestVerifyRules(t *testing.T) {
	h, advance := verifyHandler(t, nil)
	up := &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Session-Login", "alice")
		w.Header().Set("Session-Login-Roles", "dev,ops")
		w.WriteHeader(http.StatusSeeOther)
	}}
	var c *http.Cookie
	for _, ck := range serve(t, h, httptest.NewRequest("POST", "/login", nil), up).Result().Cookies() {
		if ck.Name == "session" {
			c = ck
		}
	}
	cases := []struct {
		query string
		want  int
	}{
		{"?roles=ops", 200},
		{"?roles=admin,dev", 200},
		{"?roles=admin", 403},
		{"?users=bob", 403},
		{"?users=bob,alice&roles=ops", 200},
		{"?users=alice&roles=admin", 403},
		{"?max_age=10m", 200},
		{"?no_risk", 200},
	}
	for _, tc := range cases {
		w := serve(t, h, traefikVerify(tc.query, "GET", "http", "app.example.com", "/", c, "Accept", "application/json"), &upstream{})
		if w.Code != tc.want {
			t.Errorf("%s: %d %s", tc.query, w.Code, w.Body)
		}
		if tc.want == 403 && (strings.TrimSpace(w.Body.String()) != `{"error":"forbidden"}` || w.Header().Get("X-Auth-User") != "") {
			t.Errorf("%s: %s %v", tc.query, w.Body, w.Header())
		}
	}
	advance(11 * time.Minute)
	if w := serve(t, h, traefikVerify("?max_age=10m", "GET", "http", "app.example.com", "/", c), &upstream{}); w.Code != 403 {
		t.Fatalf("max_age past: %d", w.Code)
	}
	// A new IP is flagged, as through the gateway: no_risk refuses it.
	r := traefikVerify("?no_risk=ip-changed", "GET", "http", "app.example.com", "/", c, "Test-Client-IP", "198.51.100.7")
	if w := serve(t, h, r, &upstream{}); w.Code != 403 {
		t.Fatalf("no_risk after an IP change: %d", w.Code)
	}
	r = traefikVerify("", "GET", "http", "app.example.com", "/", c, "Test-Client-IP", "198.51.100.7")
	if w := serve(t, h, r, &upstream{}); w.Code != 200 || w.Header().Get("X-Auth-Risk") != "ip-changed" || w.Header().Get("X-Auth-IP") != "198.51.100.7" {
		t.Fatalf("after an IP change: %d %v", w.Code, w.Header())
	}
	// A browser is told in words.
	r = traefikVerify("?roles=admin", "GET", "http", "app.example.com", "/", c, "Accept", "text/html")
	if w := serve(t, h, r, &upstream{}); w.Code != 403 || !strings.Contains(w.Body.String(), "don&#39;t have access") {
		t.Fatalf("browser: %d %s", w.Code, w.Body)
	}
}

// The checks of a request through the gateway: a verify touches the
// session, records the IP change, and counts unknown cookies towards
// guess_rate.
func TestVerifyIsARequestThroughTheGateway(t *testing.T) {
	h, advance := verifyHandler(t, func(h *Handler) { h.GuessRate = &Rate{Count: 2, Window: caddy.Duration(time.Minute)} })
	c := signIn(t, h, "alice")
	advance(10 * time.Minute)
	r := traefikVerify("", "GET", "http", "app.example.com", "/", c, "Test-Client-IP", "198.51.100.7")
	if w := serve(t, h, r, &upstream{}); w.Code != 200 {
		t.Fatalf("%d", w.Code)
	}
	list, err := h.store.List(t.Context(), "alice", h.now(), h.policy)
	if err != nil || len(list) != 1 {
		t.Fatal(list, err)
	}
	if s := list[0]; !s.LastActiveAt.Equal(h.now()) || s.IP != "198.51.100.7" {
		t.Fatalf("not touched: last active %v, ip %s", s.LastActiveAt, s.IP)
	}
	events, err := h.store.Events(t.Context(), "alice", time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range events {
		found = found || e.Type == session.EventIPChange
	}
	if !found {
		t.Fatalf("no ip_change event: %+v", events)
	}
	last := 0
	for range 3 {
		bad := &http.Cookie{Name: "session", Value: strings.Repeat("A", session.CookieLen)}
		last = serve(t, h, traefikVerify("", "GET", "http", "app.example.com", "/", bad, "Test-Client-IP", "203.0.113.9"), &upstream{}).Code
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("guessing through verify: %d", last)
	}
}

// Bad input from the proxy is a 400 JSON that says what to fix; nothing
// is checked.
func TestVerifyBadInput(t *testing.T) {
	h, _ := verifyHandler(t, nil)
	c := signIn(t, h, "alice")
	cases := map[string]*http.Request{
		"nothing":         httptest.NewRequest("GET", "/.auth/verify", nil),
		"relative url":    nginxVerify("", "/a", c),
		"ftp url":         nginxVerify("", "ftp://app.example.com/a", c),
		"user in url":     nginxVerify("", "https://u:p@app.example.com/a", c),
		"bad host":        nginxVerify("", "https://app_example.com/a", c),
		"bad method":      nginxVerify("", "https://app.example.com/a", c, "X-Original-Method", "GE T"),
		"both shapes":     nginxVerify("", "https://app.example.com/a", c, "X-Forwarded-Uri", "/b"),
		"no proto":        traefikVerify("", "GET", "", "app.example.com", "/a", c),
		"gopher proto":    traefikVerify("", "GET", "gopher", "app.example.com", "/a", c),
		"two hosts":       traefikVerify("", "GET", "https", "app.example.com, evil.example", "/a", c),
		"absolute uri":    traefikVerify("", "GET", "https", "app.example.com", "https://evil.example/a", c),
		"unknown rule":    traefikVerify("?role=admin", "GET", "https", "app.example.com", "/a", c),
		"bad max_age":     traefikVerify("?max_age=soon", "GET", "https", "app.example.com", "/a", c),
		"bad no_risk":     traefikVerify("?no_risk=sunburn", "GET", "https", "app.example.com", "/a", c),
		"bad status":      traefikVerify("?status=302", "GET", "https", "app.example.com", "/a", c),
		"empty role":      traefikVerify("?roles=", "GET", "https", "app.example.com", "/a", c),
		"two max_age":     traefikVerify("?max_age=1m&max_age=2m", "GET", "https", "app.example.com", "/a", c),
		"control in host": traefikVerify("", "GET", "https", "app.example.com\x01", "/a", c),
	}
	for name, r := range cases {
		w := serve(t, h, r, &upstream{})
		var body verifyError
		if w.Code != http.StatusBadRequest || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Error == "" || body.Detail == "" || w.Header().Get("X-Auth-User") != "" {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
		}
	}
}

// Without forward_auth there is no verify endpoint.
func TestVerifyNeedsForwardAuth(t *testing.T) {
	h, _ := testHandler(t, nil)
	c := signIn(t, h, "alice")
	if w := serve(t, h, nginxVerify("", "http://app.example.com/", c), &upstream{}); w.Code != http.StatusNotFound || w.Header().Get("X-Auth-User") != "" {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
}

// With a Secure cookie (__Secure-session on the parent domain), the
// cookie read is the one the browser sent to the https original, even
// when the proxy reaches the gateway over plain HTTP.
func TestVerifyReadsTheOriginalSchemesCookie(t *testing.T) {
	h, _ := verifyHandler(t, nil)
	c := signIn(t, h, "alice")
	c.Name = "__Secure-session"
	if w := serve(t, h, traefikVerify("", "GET", "https", "app.example.com", "/", c), &upstream{}); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if w := serve(t, h, traefikVerify("", "GET", "http", "app.example.com", "/", c), &upstream{}); w.Code != 401 {
		t.Fatalf("a Secure cookie over http: %d", w.Code)
	}
}

func TestSignInNext(t *testing.T) {
	h := &Handler{ForwardAuth: &ForwardAuth{AllowHosts: []string{"*.example.com", "app.example.org"}}}
	cases := map[string]string{
		"/reports?x=1":                      "/reports?x=1",
		"https://app.example.com/a?b=c":     "https://app.example.com/a?b=c",
		"http://APP.example.com:8080/a":     "http://APP.example.com:8080/a",
		"https://app.example.org/":          "https://app.example.org/",
		"https://example.com/":              "/",
		"https://a.b.example.com/":          "/",
		"https://evil.example.org/":         "/",
		"https://app.example.com.evil.net/": "/",
		"javascript://app.example.com/%0a":  "/",
		"//app.example.com/":                "/",
		"https://u@app.example.com/":        "/",
		"https://app.example.com\\@evil/":   "/",
		"https://app.example.com/a b":       "/",
		"https:app.example.com":             "/",
	}
	for in, want := range cases {
		if got := h.ForwardAuth.signInNext(in); got != want {
			t.Errorf("signInNext(%q) = %q, want %q", in, got, want)
		}
	}
	if got := (&Handler{}).ForwardAuth.signInNext("https://app.example.com/"); got != "/" {
		t.Errorf("without forward_auth: %q", got)
	}
}

// The sign-in page keeps an absolute next on an allowed host and sends
// the browser there after the password; another host lands on "/".
func TestSignInSendsBackToTheApp(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
	h, _ := verifyHandler(t, func(h *Handler) {
		h.Cookie = nil
		h.SignIn = &SignIn{Accounts: []*Account{{User: "alice", Hash: string(hash)}}}
	})
	next := "https://app.example.com/reports?x=1"
	r := httptest.NewRequest("GET", "/.auth/sign-in?next="+url.QueryEscape(next), nil)
	r.Header.Set("Accept", "text/html")
	if w := serve(t, h, r, &upstream{}); w.Code != 200 || !strings.Contains(w.Body.String(), `name="next" value="https://app.example.com/reports?x=1"`) {
		t.Fatalf("page: %d %s", w.Code, w.Body)
	}
	const token = "0123456789abcdef0123456789abcdef"
	for target, want := range map[string]string{next: next, "https://evil.example/": "/"} {
		form := url.Values{"username": {"alice"}, "password": {"demo"}, "csrf": {token}, "next": {target}}
		r = httptest.NewRequest("POST", "/.auth/sign-in", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Accept", "text/html")
		r.AddCookie(&http.Cookie{Name: "session" + signInCookieSuffix, Value: token})
		if w := serve(t, h, r, &upstream{}); w.Code != http.StatusSeeOther || w.Header().Get("Location") != want {
			t.Fatalf("next %q: %d %q", target, w.Code, w.Header().Get("Location"))
		}
	}
}

func TestForwardAuthCaddyfileErrors(t *testing.T) {
	cases := []struct{ name, input, want string }{
		{"no base_url", "session_auth {\n  lifetime 1h\n  forward_auth {\n    allow_hosts *.example.com\n  }\n}", "forward_auth needs base_url"},
		{"no base_url line", "session_auth {\n  lifetime 1h\n  forward_auth {\n    allow_hosts *.example.com\n  }\n}", "Testfile:3"},
		{"unknown", "session_auth {\n  base_url https://a.example.com\n  forward_auth {\n    hosts x\n  }\n}", `forward_auth: unknown subdirective "hosts"`},
		{"empty hosts", "session_auth {\n  base_url https://a.example.com\n  forward_auth {\n    allow_hosts\n  }\n}", "Testfile:4"},
		{"hosts twice", "session_auth {\n  base_url https://a.example.com\n  forward_auth {\n    allow_hosts a.example.com\n    allow_hosts b.example.com\n  }\n}", "allow_hosts given more than once"},
		{"scheme", "session_auth {\n  base_url https://a.example.com\n  forward_auth {\n    allow_hosts https://a.example.com\n  }\n}", "must be a host name"},
		{"port", "session_auth {\n  base_url https://a.example.com\n  forward_auth {\n    allow_hosts a.example.com:8080\n  }\n}", "without scheme or port"},
		{"inner wildcard", "session_auth {\n  base_url https://a.example.com\n  forward_auth {\n    allow_hosts app.*.example.com\n  }\n}", "Testfile:4"},
		{"bare wildcard", "session_auth {\n  base_url https://a.example.com\n  forward_auth {\n    allow_hosts *\n  }\n}", "must be a host name"},
		{"argument", "session_auth {\n  base_url https://a.example.com\n  forward_auth on\n}", "wrong argument count"},
		{"twice", "session_auth {\n  base_url https://a.example.com\n  forward_auth\n  forward_auth\n}", "forward_auth given more than once"},
	}
	for _, tc := range cases {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	var h Handler
	ok := "session_auth {\n  base_url https://auth.example.com\n  forward_auth {\n    allow_hosts app.example.com *.example.org\n  }\n}"
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(ok)); err != nil || len(h.ForwardAuth.AllowHosts) != 2 {
		t.Fatalf("%v %+v", err, h.ForwardAuth)
	}
}
