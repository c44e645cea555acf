package sessionauth

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessionauth/caddy-sessionauth/session/storetest"
	"github.com/sessionauth/caddy-sessionauth/signature"
)

// testHandler provisions a handler with a clock the test moves. Without a
// store of its own choosing it gets the default, the file store, in a
// file of its own: a test starts with no sessions, as with memory.
func testHandler(t testing.TB, configure func(*Handler)) (*Handler, *storetest.Clock) {
	t.Helper()
	clock := storetest.NewClock()
	h := &Handler{now: clock.Now, logger: testLogger(t)}
	if configure != nil {
		configure(h)
	}
	if h.Store == nil {
		h.Store = &StoreConfig{Type: "file", Path: filepath.Join(t.TempDir(), "sessions.db")}
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return h, clock
}

// upstream records what reached it and answers as the test says.
type upstream struct {
	calls   int
	header  http.Header
	respond func(w http.ResponseWriter, r *http.Request)
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	u.calls++
	u.header = r.Header.Clone()
	if u.respond != nil {
		u.respond(w, r)
	}
	return nil
}

func serve(t testing.TB, h *Handler, r *http.Request, next caddyhttp.Handler) *httptest.ResponseRecorder {
	t.Helper()
	repl := caddy.NewReplacer()
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ip := "192.0.2.10"
	if v := r.Header.Get("Test-Client-IP"); v != "" {
		ip = v
	}
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: ip})
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r.WithContext(ctx), next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	return w
}

// signIn hands off a sign-in for user and returns the session cookie.
func signIn(t testing.TB, h *Handler, user string) *http.Cookie {
	t.Helper()
	up := &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Session-Login", user)
		w.Header().Set("Session-Login-Email", user+"@example.com")
		w.WriteHeader(http.StatusSeeOther)
	}}
	w := serve(t, h, httptest.NewRequest("POST", "/login", nil), up)
	for _, c := range w.Result().Cookies() {
		if c.Name == "session" && c.Value != "" {
			return c
		}
	}
	t.Fatalf("no session cookie after hand-off: %v", w.Header())
	return nil
}

func get(path string, c *http.Cookie) *http.Request {
	r := httptest.NewRequest("GET", path, nil)
	if c != nil {
		r.AddCookie(c)
	}
	return r
}

func TestIdleTimeoutAndTouch(t *testing.T) {
	h, clock := testHandler(t, func(h *Handler) {
		idle := caddy.Duration(time.Hour)
		h.IdleTimeout = &idle
		h.Lifetime = caddy.Duration(6 * time.Hour)
	})
	c := signIn(t, h, "alice")
	for i := 0; i < 4; i++ { // 4 × 59 min: each request keeps it alive
		clock.Advance(59 * time.Minute)
		up := &upstream{}
		if w := serve(t, h, get("/", c), up); w.Code != 200 || up.header.Get("X-Auth-User") != "alice" {
			t.Fatalf("step %d: %d %v", i, w.Code, up.header)
		}
	}
	clock.Advance(time.Hour)
	up := &upstream{}
	w := serve(t, h, get("/api", c), up)
	if w.Code != http.StatusUnauthorized || up.calls != 0 {
		t.Fatalf("after idle timeout: %d, upstream calls %d", w.Code, up.calls)
	}
	if !strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("dead cookie not cleared: %q", w.Header().Get("Set-Cookie"))
	}
}

func TestLifetimeIsAbsolute(t *testing.T) {
	h, clock := testHandler(t, func(h *Handler) {
		idle := caddy.Duration(time.Hour)
		h.IdleTimeout = &idle
		h.Lifetime = caddy.Duration(2 * time.Hour)
	})
	c := signIn(t, h, "alice")
	clock.Advance(50 * time.Minute)
	serve(t, h, get("/", c), &upstream{})
	clock.Advance(50 * time.Minute)
	serve(t, h, get("/", c), &upstream{})
	clock.Advance(19 * time.Minute)
	if w := serve(t, h, get("/", c), &upstream{}); w.Code != 200 {
		t.Fatalf("before lifetime: %d", w.Code)
	}
	clock.Advance(time.Minute)
	if w := serve(t, h, get("/", c), &upstream{}); w.Code != http.StatusUnauthorized {
		t.Fatalf("at lifetime: %d", w.Code)
	}
}

func TestIdentityHeadersAndPlaceholders(t *testing.T) {
	h, _ := testHandler(t, nil)
	c := signIn(t, h, "alice")
	var repl *caddy.Replacer
	up := &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
		repl = r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	}}
	r := get("/", c)
	r.Header.Set("Test-Client-IP", "198.51.100.9")
	serve(t, h, r, up)
	hdr := up.header
	for name, want := range map[string]string{
		"X-Auth-User": "alice", "X-Auth-Email": "alice@example.com", "X-Auth-IP": "198.51.100.9",
		"X-Auth-Login-IP": "192.0.2.10", "X-Auth-Ip-Changed": "true", "X-Auth-Risk": "ip-changed",
	} {
		if got := hdr.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if _, err := time.Parse(time.RFC3339, hdr.Get("X-Auth-Session-Created")); err != nil {
		t.Errorf("X-Auth-Session-Created: %v", err)
	}
	if id := hdr.Get("X-Auth-Session"); len(id) != 32 || strings.Contains(c.Value, "."+id) {
		t.Errorf("X-Auth-Session %q is not a public id", id)
	}
	if strings.Contains(strings.Join(flatten(hdr), " "), c.Value[33:]) {
		t.Error("the secret reached the upstream in a header other than Cookie")
	}
	for ph, want := range map[string]string{
		"http.auth.user.id": "alice", "http.auth.user.email": "alice@example.com",
		"http.auth.session.ip": "198.51.100.9", "http.auth.session.ip_changed": "true",
		"http.auth.session.login_ip": "192.0.2.10", "http.auth.session.id": hdr.Get("X-Auth-Session"),
	} {
		if got, _ := repl.GetString(ph); got != want {
			t.Errorf("{%s} = %q, want %q", ph, got, want)
		}
	}
}

func flatten(h http.Header) []string {
	var out []string
	for k, v := range h {
		if k != "Cookie" {
			out = append(out, v...)
		}
	}
	return out
}

func TestClientIdentityHeadersAreStripped(t *testing.T) {
	h, _ := testHandler(t, func(h *Handler) { h.Optional = true })
	c := signIn(t, h, "alice")
	spoof := []string{"X-Auth-User", "x-auth-user", "X_Auth_User", "X.Auth.User", "x-AUTH-roles", "X-Auth-Anything-New", "X_AUTH-EMAIL"}
	for _, withSession := range []bool{false, true} {
		for _, path := range []string{"/", "/login"} {
			r := get(path, nil)
			if withSession {
				r.AddCookie(c)
			}
			for _, name := range spoof {
				r.Header[name] = []string{"mallory"}
			}
			up := &upstream{}
			serve(t, h, r, up)
			for k, v := range up.header {
				if signature.HasPrefix(k, "x-auth-") && strings.Contains(strings.Join(v, ""), "mallory") {
					t.Errorf("session=%v path=%s: %s: %v reached the upstream", withSession, path, k, v)
				}
			}
			if withSession && path == "/" && up.header.Get("X-Auth-User") != "alice" {
				t.Errorf("real identity missing: %v", up.header)
			}
		}
	}
}

// Connection and Trailer keep every token but those under the prefix, and
// the request without them costs no allocation.
func TestStripIdentityHopByHopTokens(t *testing.T) {
	hn := newHeaderNames("X-Auth-")
	for in, want := range map[string]string{
		"keep-alive":                          "keep-alive",
		"Upgrade, X-Auth-Risk":                "Upgrade",
		"x_auth_ip ,X.Auth.Roles,X-AUTH-USER": "",
		"close, x-auth-ip-changed, X-Other":   "close, X-Other",
		"X-Authority, X-Auth":                 "X-Authority, X-Auth",
	} {
		for _, name := range []string{"Connection", "Trailer"} {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set(name, in)
			hn.stripIdentity(r)
			if got, ok := r.Header[name]; strings.Join(got, "|") != want || ok != (want != "") {
				t.Errorf("%s: %q became %q (present %v), want %q", name, in, got, ok, want)
			}
		}
	}
	r := httptest.NewRequest("POST", "/", strings.NewReader("body"))
	r.Trailer = http.Header{"X-Auth-User": nil, "X-Other": nil}
	hn.stripIdentity(r)
	if _, ok := r.Trailer["X-Auth-User"]; ok || len(r.Trailer) != 1 {
		t.Errorf("declared trailers %v", r.Trailer)
	}
	r.Trailer.Set("X_Auth_Roles", "admin") // as the server merges an undeclared one at EOF
	if _, err := io.ReadAll(r.Body); err != nil {
		t.Fatal(err)
	}
	if r.Trailer.Get("X_Auth_Roles") != "" || len(r.Trailer) != 1 {
		t.Errorf("trailers after EOF %v", r.Trailer)
	}

	for _, conn := range []string{"", "keep-alive"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept", "*/*")
		if conn != "" {
			r.Header.Set("Connection", conn)
		}
		if n := testing.AllocsPerRun(100, func() { hn.stripIdentity(r) }); n != 0 {
			t.Errorf("Connection %q: %v allocations", conn, n)
		}
	}
}

func TestCustomHeaderPrefix(t *testing.T) {
	h, _ := testHandler(t, func(h *Handler) { h.HeaderPrefix = "Remote-" })
	c := signIn(t, h, "alice")
	r := get("/", c)
	r.Header.Set("Remote-User", "mallory")
	r.Header.Set("X-Auth-User", "kept, not ours")
	up := &upstream{}
	serve(t, h, r, up)
	if up.header.Get("Remote-User") != "alice" || up.header.Get("X-Auth-User") != "kept, not ours" {
		t.Fatalf("headers: %v", up.header)
	}
}

func TestUnauthenticatedAnswers(t *testing.T) {
	cases := []struct {
		name      string
		configure func(*Handler)
		method    string
		accept    string
		wantCode  int
		wantLoc   string
	}{
		{"browser", nil, "GET", "text/html,application/xhtml+xml", 303, "/login?next=%2Fdocs%3Fa%3D1%26b%3D2"},
		{"head", nil, "HEAD", "text/html", 303, "/login?next=%2Fdocs%3Fa%3D1%26b%3D2"},
		{"api", nil, "GET", "application/json", 401, ""},
		{"post form", nil, "POST", "text/html", 401, ""},
		{"status", func(h *Handler) { h.Unauthenticated = &Unauthenticated{Status: 403} }, "GET", "text/html", 403, ""},
		{"redirect always", func(h *Handler) { h.Unauthenticated = &Unauthenticated{Redirect: true} }, "POST", "", 303, "/login?next=%2Fdocs%3Fa%3D1%26b%3D2"},
		{"redirect url", func(h *Handler) {
			h.Unauthenticated = &Unauthenticated{Redirect: true, URL: "https://id.example.com/signin?app=x"}
		}, "GET", "", 303, "https://id.example.com/signin?app=x&next=%2Fdocs%3Fa%3D1%26b%3D2"},
		{"first login path", func(h *Handler) { h.Login = []string{"/auth/*", "/login"} }, "GET", "text/html", 303, "/auth/?next=%2Fdocs%3Fa%3D1%26b%3D2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := testHandler(t, tc.configure)
			r := httptest.NewRequest(tc.method, "/docs?a=1&b=2", nil)
			if tc.accept != "" {
				r.Header.Set("Accept", tc.accept)
			}
			up := &upstream{}
			w := serve(t, h, r, up)
			if w.Code != tc.wantCode || w.Header().Get("Location") != tc.wantLoc || up.calls != 0 {
				t.Fatalf("got %d %q (upstream %d), want %d %q", w.Code, w.Header().Get("Location"), up.calls, tc.wantCode, tc.wantLoc)
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("Cache-Control %q", w.Header().Get("Cache-Control"))
			}
			if w.Code != 303 {
				var body errorBody
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error != "unauthenticated" {
					t.Fatalf("body %q", w.Body)
				}
			}
		})
	}
}

func TestOptionalPassesAnonymous(t *testing.T) {
	h, _ := testHandler(t, func(h *Handler) { h.Optional = true })
	r := get("/", &http.Cookie{Name: "session", Value: "garbage"})
	up := &upstream{}
	if w := serve(t, h, r, up); w.Code != 200 || up.calls != 1 || up.header.Get("X-Auth-User") != "" {
		t.Fatalf("optional: %d %d %v", w.Code, up.calls, up.header)
	}
	c := signIn(t, h, "bob")
	up = &upstream{}
	serve(t, h, get("/", c), up)
	if up.header.Get("X-Auth-User") != "bob" {
		t.Fatalf("optional with session: %v", up.header)
	}
}

func TestCookieAttributes(t *testing.T) {
	cases := []struct {
		name      string
		configure func(*Handler)
		tls       bool
		want      []string
		notWant   []string
	}{
		{"plain http", nil, false, []string{"session=", "Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=2592000"}, []string{"Secure", "Domain"}},
		{"https host", nil, true, []string{"__Host-session=", "Secure", "Path=/", "HttpOnly"}, []string{"Domain"}},
		{"https domain", func(h *Handler) { h.Cookie = &CookieConfig{Domain: "example.com"} }, true, []string{"__Secure-session=", "Domain=example.com", "Secure"}, nil},
		{"https path", func(h *Handler) { h.Cookie = &CookieConfig{Path: "/app"} }, true, []string{"__Secure-session=", "Path=/app"}, nil},
		{"always", func(h *Handler) { h.Cookie = &CookieConfig{Secure: "always", SameSite: "strict"} }, false, []string{"__Host-session=", "Secure", "SameSite=Strict"}, nil},
		{"named", func(h *Handler) { h.Cookie = &CookieConfig{Name: "sid", SameSite: "none", Secure: "always"} }, false, []string{"sid=", "SameSite=None", "Secure"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := testHandler(t, tc.configure)
			r := httptest.NewRequest("POST", "/login", nil)
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			up := &upstream{respond: func(w http.ResponseWriter, r *http.Request) { w.Header().Set("Session-Login", "alice") }}
			w := serve(t, h, r, up)
			sc := w.Header().Get("Set-Cookie")
			if len(sc) >= 4096 {
				t.Errorf("Set-Cookie is %d bytes", len(sc))
			}
			for _, s := range tc.want {
				if !strings.Contains(sc, s) {
					t.Errorf("Set-Cookie %q lacks %q", sc, s)
				}
			}
			for _, s := range tc.notWant {
				if strings.Contains(sc, s) {
					t.Errorf("Set-Cookie %q has %q", sc, s)
				}
			}
		})
	}
}

func TestBadCookiesAreNoSession(t *testing.T) {
	h, _ := testHandler(t, nil)
	good := signIn(t, h, "alice")
	id, secret, _ := strings.Cut(good.Value, ".")
	cases := map[string]string{
		"garbage":       "session=garbage",
		"empty":         "session=",
		"oversized":     "session=" + strings.Repeat("a", 5000),
		"non-ascii":     "session=" + id + ".ÿÿÿ" + secret[3:],
		"wrong secret":  "session=" + id + "." + strings.Repeat("A", 43),
		"id only":       "session=" + id,
		"secret only":   "session=" + secret,
		"upper-case id": "session=" + strings.ToUpper(id) + "." + secret,
		"trailing junk": "session=" + good.Value + "x",
		"nul":           "session=" + good.Value[:40] + "\x00" + good.Value[41:],
	}
	for name, cookie := range cases {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Cookie", cookie)
			up := &upstream{}
			w := serve(t, h, r, up)
			if w.Code != http.StatusUnauthorized || up.calls != 0 {
				t.Fatalf("got %d, upstream %d", w.Code, up.calls)
			}
		})
	}
	t.Run("token elsewhere", func(t *testing.T) {
		for _, r := range []*http.Request{
			httptest.NewRequest("GET", "/?session="+good.Value, nil),
			httptest.NewRequest("GET", "/?token="+good.Value, nil),
		} {
			r.Header.Set("Authorization", "Bearer "+good.Value)
			r.Header.Set("X-Session", good.Value)
			up := &upstream{}
			if w := serve(t, h, r, up); w.Code != http.StatusUnauthorized || up.calls != 0 {
				t.Fatalf("token outside the cookie accepted: %d", w.Code)
			}
		}
	})
}

func TestLoginPathMatching(t *testing.T) {
	h, _ := testHandler(t, func(h *Handler) { h.Login = []string{"/login", "/auth/*"} })
	cases := map[string]bool{
		"/login":               true,
		"/login/":              true,
		"/login?next=/x":       true,
		"//login":              false,
		"//auth/admin/users":   false,
		"/auth//admin":         false,
		"/login//":             false,
		"/auth/":               true,
		"/auth":                true,
		"/auth/callback":       true,
		"/login/x":             false,
		"/loginx":              false,
		"/LOGIN":               false,
		"/login/../admin":      false,
		"/auth/../admin":       false,
		"/x/../login":          false,
		"/login/./":            false,
		"/login%2F..%2Fadmin":  false,
		"/x%2F..%2Flogin":      false,
		"/login%23":            false,
		"/admin%23/login":      false,
		"/login;jsessionid=1":  false,
		"/admin;/login":        false,
		"/admin?/login":        false,
		"/admin#/login":        false,
		"/auth%2fcallback":     false,
		"/auth/..%2Fadmin":     false,
		"/%2e%2e/login":        false,
		"/auth\\..\\admin":     false,
		"/.auth/../login/../x": false,
	}
	for target, want := range cases {
		r := httptest.NewRequest("GET", "http://example.com"+strings.ReplaceAll(target, "\\", "%5C"), nil)
		if strings.Contains(target, "\\") {
			r.URL.Path = strings.Split(target, "?")[0]
			r.URL.RawPath = ""
		}
		if got := h.isLogin(requestPath(r)); got != want {
			t.Errorf("isLogin(%q) = %v, want %v", target, got, want)
		}
	}
}

func TestSafeNext(t *testing.T) {
	cases := map[string]string{
		"/":                    "/",
		"/docs?a=1#x":          "/docs?a=1#x",
		"/a/b/../c":            "/a/b/../c",
		"":                     "/",
		"//evil.example":       "/",
		"///evil.example":      "/",
		"/\\evil.example":      "/",
		"\\\\evil.example":     "/",
		"https://evil.example": "/",
		"http:evil.example":    "/",
		"javascript:alert(1)":  "/",
		"evil.example":         "/",
		"/\tevil":              "/",
		"/ /evil":              "/",
		"/\r\nLocation: x":     "/",
		"/\u00a0evil":          "/",
		"/\u2028evil":          "/",
		"/ok\x00":              "/",
		"/é":                   "/é",
	}
	for in, want := range cases {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSanitise(t *testing.T) {
	cases := []struct {
		in   string
		max  int
		want string
	}{
		{"alice", 10, "alice"},
		{"a\r\nSet-Cookie: x", 100, "aSet-Cookie: x"},
		{"tab\there", 100, "tab here"},
		{"bad\xffutf8", 100, "badutf8"},
		{"c1\u0085x", 100, "c1x"},
		{"zoë", 3, "zo"},
		{"  trimmed  ", 100, "trimmed"},
	}
	for _, tc := range cases {
		if got := sanitise(tc.in, tc.max); got != tc.want {
			t.Errorf("sanitise(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

// Provision opens no connection: a config naming an unreachable Redis
// validates, and only requests find out (503, never anonymous).
func TestProvisionDoesNotDial(t *testing.T) {
	h, _ := testHandler(t, func(h *Handler) {
		h.Store = &StoreConfig{Type: "redis", URL: "redis://127.0.0.1:1/0", Password: "{env.SA_NOT_SET}"}
	})
	c := &http.Cookie{Name: "session", Value: "0123456789abcdef0123456789abcdef." + strings.Repeat("A", 43)}
	up := &upstream{}
	w := serve(t, h, get("/", c), up)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || up.calls != 0 {
		t.Fatalf("unreachable Redis: %d, upstream %d", w.Code, up.calls)
	}
}

func TestUserIDPlaceholderOnGatewayAnswers(t *testing.T) {
	h, _ := testHandler(t, nil)
	up := &upstream{respond: func(w http.ResponseWriter, r *http.Request) { w.Header().Set("Session-Login", "zed") }}
	r := httptest.NewRequest("POST", "/login", nil)
	repl := caddy.NewReplacer()
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r.WithContext(ctx), up); err != nil {
		t.Fatal(err)
	}
	if got, _ := repl.GetString("http.auth.user.id"); got != "zed" {
		t.Fatalf("after hand-off, user id placeholder = %q", got)
	}
}

func BenchmarkServeHTTPMemory(b *testing.B) {
	benchServeHTTP(b, &StoreConfig{Type: "memory"})
}

func BenchmarkServeHTTPFile(b *testing.B) {
	benchServeHTTP(b, &StoreConfig{Type: "file", Path: filepath.Join(b.TempDir(), "sessions.db")})
}

// benchServeHTTP measures an authenticated request with no touch due.
func benchServeHTTP(b *testing.B, store *StoreConfig) {
	h, _ := testHandler(b, func(h *Handler) { h.Store = store })
	c := signIn(b, h, "bench")
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
	r := get("/app", c)
	r.Header.Set("Accept", "text/html")
	repl := caddy.NewReplacer()
	vars := map[string]any{caddyhttp.ClientIPVarKey: "192.0.2.10"}
	ctx := context.WithValue(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl), caddyhttp.VarsCtxKey, vars)
	r = r.WithContext(ctx)
	w := httptest.NewRecorder()
	cookie := []string{"session=" + c.Value}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Header["Cookie"] = cookie // the handler keeps its cookie from the upstream
		if err := h.ServeHTTP(w, r, next); err != nil {
			b.Fatal(err)
		}
	}
	if got := r.Header.Get("X-Auth-User"); got != "bench" {
		b.Fatalf("the benchmark did not measure an authenticated request (X-Auth-User %q)", got)
	}
}

func TestOwnCookiesDoNotReachTheUpstream(t *testing.T) {
	h, _ := testHandler(t, nil)
	c := signIn(t, h, "alice")
	for _, path := range []string{"/", "/login"} {
		r := get(path, nil)
		r.Header.Add("Cookie", "theme=dark; session="+c.Value+"; session_device=0123456789abcdef0123456789abcdef")
		r.Header.Add("Cookie", "cart=3; session_signin=5a8b5be1c34dac3a511515e23a5ac6b5; session_oidc=x; session_signed_out=1; session_other=kept")
		up := &upstream{}
		serve(t, h, r, up)
		got := strings.Join(up.header.Values("Cookie"), " | ")
		if got != "theme=dark | cart=3; session_other=kept" {
			t.Errorf("%s: upstream saw Cookie %q", path, got)
		}
	}
	r := get("/", c)
	up := &upstream{}
	serve(t, h, r, up)
	if _, ok := up.header["Cookie"]; ok || up.header.Get("X-Auth-User") != "alice" {
		t.Errorf("only our cookie: upstream saw %v", up.header)
	}
}

// A 100 KB user agent with control characters and invalid UTF-8 (past
// Caddy's header limit, straight into the handler): stored bounded and
// clean, the session intact.
func TestHugeUserAgent(t *testing.T) {
	h, _ := testHandler(t, nil)
	ua := "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) \x01\xff" + strings.Repeat("z", 100<<10)
	r := httptest.NewRequest("POST", "/login", nil)
	r.Header.Set("User-Agent", ua)
	up := &upstream{respond: func(w http.ResponseWriter, r *http.Request) { w.Header().Set("Session-Login", "ua") }}
	w := serve(t, h, r, up)
	var c *http.Cookie
	for _, ck := range w.Result().Cookies() {
		if ck.Name == "session" {
			c = ck
		}
	}
	if c == nil {
		t.Fatal("no session")
	}
	up = &upstream{}
	serve(t, h, get("/", c), up)
	if up.header.Get("X-Auth-Device") != "iPhone" {
		t.Fatalf("device from a huge UA: %v", up.header)
	}
	id, _, _ := strings.Cut(c.Value, ".")
	s, err := h.store.Get(context.Background(), id)
	if err != nil || len(s.UserAgent) > maxUserAgent || !utf8.ValidString(s.UserAgent) || strings.ContainsRune(s.UserAgent, 1) {
		t.Fatalf("stored user agent: %d bytes, %v", len(s.UserAgent), err)
	}
}

func TestGeoIPProvisionErrors(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/garbage.mmdb"
	if err := os.WriteFile(bad, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{dir + "/missing.mmdb", bad} {
		h := &Handler{GeoIP: path}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := h.Provision(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "geoip database") || !strings.Contains(err.Error(), path) && !strings.Contains(err.Error(), "no such file") {
			t.Errorf("%s: %v", path, err)
		}
	}
}

func TestSignedHeaders(t *testing.T) {
	t.Setenv("SA_TEST_SIGN_SECRET", "s3cret")
	h, clock := testHandler(t, func(h *Handler) { h.SignHeaders = "{env.SA_TEST_SIGN_SECRET}" })
	c := signIn(t, h, "alice")
	r := get("/docs/a%2Fb?q=1", c)
	r.Header.Set("X-Auth-Signature", "t=1,v1=forged")
	up := &upstream{}
	serve(t, h, r, up)
	got := httptest.NewRequest("GET", "/docs/a%2Fb?q=1", nil)
	got.Header = up.header
	if err := signature.VerifyPrefix(got, []byte("s3cret"), time.Minute, "X-Auth-", clock.Now()); err != nil {
		t.Fatalf("upstream cannot verify: %v (headers %v)", err, up.header)
	}
	got.URL.RawQuery = "q=2&to=mallory"
	if err := signature.VerifyPrefix(got, []byte("s3cret"), time.Minute, "X-Auth-", clock.Now()); err == nil {
		t.Fatal("a replayed query still verifies")
	}
	got.URL.RawQuery = "q=1"
	got.Header.Set("X-Auth-User", "mallory")
	if err := signature.VerifyPrefix(got, []byte("s3cret"), time.Minute, "X-Auth-", clock.Now()); err == nil {
		t.Fatal("a changed identity still verifies")
	}
	// Anonymous (optional) requests carry no signature at all.
	h2, _ := testHandler(t, func(h *Handler) { h.SignHeaders = "k"; h.Optional = true })
	up = &upstream{}
	r = get("/", nil)
	r.Header.Set("X-Auth-Signature", "t=1,v1=forged")
	serve(t, h2, r, up)
	if up.header.Get("X-Auth-Signature") != "" {
		t.Fatal("a client's signature header reached the upstream")
	}
}

// Logs name sessions by their public id; no line ever holds a token or
// its secret (ASVS 16.2.5), while sign-ins, sign-outs and rejected tokens
// are all logged (ASVS 16.3.1).
func TestLogsNeverHoldTokens(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	h, clock := testHandler(t, func(h *Handler) { h.GuessRate = &Rate{Count: 1, Window: caddy.Duration(time.Minute)} })
	h.logger = zap.New(core)
	wireParts(h)
	c := signIn(t, h, "alice")
	serve(t, h, get("/", c), &upstream{})
	r := get("/", c)
	r.Header.Set("Test-Client-IP", "198.51.100.1") // an IP change
	serve(t, h, r, &upstream{})
	serve(t, h, httptest.NewRequest("POST", "/login", nil), &upstream{respond: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(401) }})
	for i := 0; i < 3; i++ {
		g := get("/", &http.Cookie{Name: "session", Value: c.Value[:33] + strings.Repeat("B", 43)})
		g.Header.Set("Test-Client-IP", "203.0.113.9")
		serve(t, h, g, &upstream{})
	}
	logout := httptest.NewRequest("POST", "/.auth/logout", nil)
	logout.AddCookie(c)
	clock.Advance(time.Second)
	serve(t, h, logout, &upstream{})

	secret := c.Value[33:]
	var msgs []string
	for _, e := range logs.All() {
		msgs = append(msgs, e.Message)
		line := e.Message
		for _, f := range e.Context {
			line += " " + f.String + fmt.Sprint(f.Interface)
		}
		if strings.Contains(line, secret) || strings.Contains(line, c.Value) {
			t.Fatalf("a log line holds the token: %s", line)
		}
	}
	all := strings.Join(msgs, " | ")
	for _, want := range []string{"session login", "session ip_change", "sign-in attempt not handed off",
		"session token rejected", "session rate_limited", "session logout"} {
		if !strings.Contains(all, want) {
			t.Errorf("no %q in the log: %s", want, all)
		}
	}
}
