package sessionauth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// handOffAs answers a POST to /login with the given hand-off headers.
func handOffAs(t *testing.T, h *Handler, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	up := &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
		for k, v := range hdr {
			w.Header()[k] = []string{v}
		}
		w.WriteHeader(http.StatusSeeOther)
	}}
	return serve(t, h, httptest.NewRequest("POST", "/login", nil), up)
}

func sessionCookieOf(w *httptest.ResponseRecorder) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == "session" && c.Value != "" {
			return c
		}
	}
	return nil
}

// Over-long hand-off values are refused like an over-long user id, never
// cut in the middle: a cut role list or address can mean something else.
func TestHandOffRefusesOverlongValues(t *testing.T) {
	h, _ := testHandler(t, nil)
	cases := map[string]map[string]string{
		"roles": {"Session-Login": "alice", "Session-Login-Roles": strings.Repeat("y", 2042) + ",admin-readonly"},
		"email": {"Session-Login": "alice", "Session-Login-Email": strings.Repeat("a", 495) + "@corp.example.com.attacker.net"},
		"name":  {"Session-Login": "alice", "Session-Login-Name": strings.Repeat("n", 513)},
	}
	for name, hdr := range cases {
		t.Run(name, func(t *testing.T) {
			w := handOffAs(t, h, hdr)
			if w.Code != http.StatusBadGateway || sessionCookieOf(w) != nil {
				t.Fatalf("got %d with cookie %v, want 502 and no session", w.Code, sessionCookieOf(w))
			}
		})
	}
	t.Run("at the bound", func(t *testing.T) {
		w := handOffAs(t, h, map[string]string{"Session-Login": "alice", "Session-Login-Roles": strings.Repeat("y", 2048)})
		c := sessionCookieOf(w)
		if c == nil {
			t.Fatalf("a role list of exactly 2048 bytes was refused: %d", w.Code)
		}
		up := &upstream{}
		serve(t, h, get("/", c), up)
		if got := up.header.Get("X-Auth-Roles"); got != strings.Repeat("y", 2048) {
			t.Fatalf("roles forwarded as %d bytes", len(got))
		}
	})
}

// A user id that sanitising would change is refused; HTTP itself trims
// outer whitespace before the gateway sees it (the integration test shows
// that), so an id handed in with it here is refused too.
func TestHandOffRefusesIDsThatSanitisingChanges(t *testing.T) {
	h, _ := testHandler(t, nil)
	for _, id := range []string{"al\x01ice", "alice\x7f", "alice ", " alice", "al\tice", strings.Repeat("u", 257), "\xffalice"} {
		w := handOffAs(t, h, map[string]string{"Session-Login": id})
		if w.Code != http.StatusBadGateway || sessionCookieOf(w) != nil {
			t.Errorf("user id %q: got %d, want 502 and no session", id, w.Code)
		}
	}
}

// The ?next= of the gateway's own redirect to the login page follows the
// logout's safe-next rule: never a path a browser reads as another site.
func TestLoginRedirectNextIsSafe(t *testing.T) {
	h, _ := testHandler(t, nil)
	cases := map[string]string{
		"//evil.com/x":         "/login?next=%2F",
		"///evil.com/x":        "/login?next=%2F",
		"/%5Cevil.com":         "/login?next=%2F%255Cevil.com",
		"/docs?a=1":            "/login?next=%2Fdocs%3Fa%3D1",
		"/ok/path?next=//evil": "/login?next=%2Fok%2Fpath%3Fnext%3D%2F%2Fevil",
	}
	for target, want := range cases {
		r := httptest.NewRequest("GET", target, nil)
		r.Header.Set("Accept", "text/html")
		w := serve(t, h, r, &upstream{})
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != want {
			t.Errorf("%s: got %d %q, want 303 %q", target, w.Code, w.Header().Get("Location"), want)
		}
	}
}

// The answer to "no session" is the same on the gateway's own pages as on
// the upstream's paths: the configured redirect or status, not a fixed 303
// to the login path.
func TestNoSessionAnswerIsTheSameOnEveryPath(t *testing.T) {
	cases := []struct {
		name      string
		configure func(*Handler)
		wantCode  int
		wantLoc   string
	}{
		{"default", nil, 303, "/login?next="},
		{"status", func(h *Handler) { h.Unauthenticated = &Unauthenticated{Status: 401} }, 401, ""},
		{"redirect url", func(h *Handler) {
			h.Unauthenticated = &Unauthenticated{Redirect: true, URL: "https://id.example.com/signin"}
		}, 303, "https://id.example.com/signin?next="},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := testHandler(t, tc.configure)
			for _, path := range []string{"/app", "/.auth/sessions"} {
				r := get(path, &http.Cookie{Name: "session", Value: "garbage"})
				r.Header.Set("Accept", "text/html")
				w := serve(t, h, r, &upstream{})
				loc := w.Header().Get("Location")
				if w.Code != tc.wantCode || !strings.HasPrefix(loc, tc.wantLoc) || (tc.wantLoc == "") != (loc == "") {
					t.Errorf("%s: got %d %q, want %d %q…", path, w.Code, loc, tc.wantCode, tc.wantLoc)
				}
				if !strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") {
					t.Errorf("%s: the dead cookie was not cleared: %q", path, w.Header().Get("Set-Cookie"))
				}
			}
		})
	}
}

// The "Not you?" link answers an unknown session id exactly as it answers
// a wrong MAC: otherwise it tells anyone which ids exist.
func TestRevokeLinkIsNoOracle(t *testing.T) {
	h, _ := testHandler(t, nil)
	c := signIn(t, h, "alice")
	id, _, _ := strings.Cut(c.Value, ".")
	ghost, _, _, _ := session.LegacyCredential("alice")
	mac := strings.Repeat("0", 32)
	known := serve(t, h, get("/.auth/revoke?token="+id+"."+mac, nil), &upstream{})
	unknown := serve(t, h, get("/.auth/revoke?token="+ghost+"."+mac, nil), &upstream{})
	if known.Code != http.StatusNotFound || unknown.Code != known.Code || unknown.Body.String() != known.Body.String() {
		t.Fatalf("wrong MAC: %d, unknown id: %d; bodies equal: %v", known.Code, unknown.Code, unknown.Body.String() == known.Body.String())
	}
}

// Origin is compared as an origin: scheme, host and port.
func TestCrossSiteComparesWholeOrigin(t *testing.T) {
	cases := []struct {
		origin string
		tls    bool
		cross  bool
	}{
		{"http://example.com", false, false},
		{"http://example.com:80", false, false},
		{"https://example.com", false, true},
		{"http://example.com:8080", false, true},
		{"http://evil.example", false, true},
		{"null", false, true},
		{"https://example.com", true, false},
		{"https://example.com:443", true, false},
		{"http://example.com", true, true},
	}
	for _, tc := range cases {
		h, _ := testHandler(t, nil)
		c := signIn(t, h, "alice")
		r := httptest.NewRequest("POST", "/.auth/logout", nil)
		if tc.tls {
			r.TLS = tlsPlaceholder
			c.Name = "__Host-session"
		}
		r.AddCookie(c)
		r.Header.Set("Origin", tc.origin)
		w := serve(t, h, r, &upstream{})
		if got := w.Code == http.StatusForbidden; got != tc.cross {
			t.Errorf("Origin %s on a %s site: %d, want cross-site %v", tc.origin, map[bool]string{true: "https", false: "http"}[tc.tls], w.Code, tc.cross)
		}
	}
}

// A session cookie tossed from a sibling subdomain beside the real one
// neither signs the victim out nor counts as a guess against the victim's
// IP; the cookie that validates is used (at most three are tried).
func TestCookieTossing(t *testing.T) {
	h, _ := testHandler(t, func(h *Handler) { h.GuessRate = &Rate{Count: 2, Window: caddy.Duration(time.Minute)} })
	victim := signIn(t, h, "victim")
	send := func(cookie string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", cookie)
		return serve(t, h, r, &upstream{})
	}
	for i := range 5 {
		for _, cookie := range []string{
			"session=tossed; session=" + victim.Value,
			"session=" + victim.Value + "; session=tossed",
			"session=x1; session=x2; session=" + victim.Value,
		} {
			w := send(cookie)
			if w.Code != http.StatusOK || strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") {
				t.Fatalf("round %d, %q: %d %q", i, cookie, w.Code, w.Header().Get("Set-Cookie"))
			}
		}
	}
	// None of those counted: two real guesses pass as 401, the third is over.
	for i, want := range []int{401, 401, 429} {
		if w := send("session=guess"); w.Code != want {
			t.Fatalf("guess %d: %d, want %d", i+1, w.Code, want)
		}
	}
	// Blocked for guessing, the IP still gets its real sessions through.
	if w := send("session=" + victim.Value); w.Code != http.StatusOK {
		t.Fatalf("a valid session from a blocked IP: %d", w.Code)
	}
	if w := send("session=tossed; session=" + victim.Value); w.Code != http.StatusOK {
		t.Fatalf("a valid session beside a tossed one from a blocked IP: %d", w.Code)
	}
	// Two users' valid sessions: the planted one must not swap the victim
	// into the planter's account, so neither is used.
	planted := signIn(t, h, "planter")
	for _, cookie := range []string{"session=" + planted.Value + "; session=" + victim.Value, "session=" + victim.Value + "; session=" + planted.Value} {
		up := &upstream{}
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", cookie)
		r.Header.Set("Accept", "application/json")
		w := serve(t, h, r, up)
		if w.Code != http.StatusUnauthorized || up.calls != 0 || strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") {
			t.Fatalf("two users' cookies: %d, upstream %d, %q", w.Code, up.calls, w.Header().Get("Set-Cookie"))
		}
	}
}

// Cookies tossed past the three-cookie window (junk, junk, the planter's,
// the victim's) or a valid cookie after one that failed never pick the
// user: the request has no session, no cookie is cleared (the clearing
// could hit the victim's own) and nothing counts towards guess_rate.
func TestCookieTossingPastTheWindow(t *testing.T) {
	h, _ := testHandler(t, func(h *Handler) { h.GuessRate = &Rate{Count: 2, Window: caddy.Duration(time.Minute)} })
	victim, planted := signIn(t, h, "victim"), signIn(t, h, "planter")
	ended := signIn(t, h, "victim")
	logout := httptest.NewRequest("POST", "/.auth/logout", nil)
	logout.AddCookie(ended)
	serve(t, h, logout, &upstream{})
	junk := func(i int) string { // our length, our shape, no session
		return victim.Value[:len(victim.Value)-1] + string(rune('a'+i))
	}
	malformed := strings.Repeat("A", session.CookieLen)
	cases := map[string]string{
		"junk, junk, planted, victim's":        "session=" + junk(0) + "; session=" + junk(1) + "; session=" + planted.Value + "; session=" + victim.Value,
		"three junk, victim's":                 "session=" + junk(0) + "; session=" + malformed + "; session=" + junk(2) + "; session=" + victim.Value,
		"four short, victim's":                 "session=a; session=b; session=c; session=d; session=" + victim.Value,
		"victim's ended, planted":              "session=" + ended.Value + "; session=" + planted.Value,
		"unknown, planted":                     "session=" + junk(3) + "; session=" + planted.Value,
		"malformed, planted":                   "session=" + malformed + "; session=" + planted.Value,
		"victim's, unknown, planted":           "session=" + victim.Value + "; session=" + junk(4) + "; session=" + planted.Value,
		"junk in a second Cookie line, victim": "session=" + junk(0) + "; session=" + junk(1) + "; session=" + junk(2) + "\x00session=" + victim.Value,
	}
	for i := range 3 {
		for name, cookie := range cases {
			up := &upstream{}
			r := httptest.NewRequest("GET", "/", nil)
			for _, line := range strings.Split(cookie, "\x00") {
				r.Header.Add("Cookie", line)
			}
			r.Header.Set("Accept", "application/json")
			w := serve(t, h, r, up)
			if w.Code != http.StatusUnauthorized || up.calls != 0 || w.Header().Get("Set-Cookie") != "" {
				t.Fatalf("round %d, %s: %d, upstream %d (as %q), Set-Cookie %q", i, name, w.Code, up.calls, up.header.Get("X-Auth-User"), w.Header().Get("Set-Cookie"))
			}
		}
	}
	// None of those counted: two real guesses pass as 401, the third is over.
	for i, want := range []int{401, 401, 429} {
		if w := serve(t, h, get("/", &http.Cookie{Name: "session", Value: junk(5)}), &upstream{}); w.Code != want {
			t.Fatalf("guess %d: %d, want %d", i+1, w.Code, want)
		}
	}
	// Within the window, the victim's own valid cookie before a failed
	// one still signs the victim in, and the victim was never signed out.
	for _, cookie := range []string{"session=" + victim.Value + "; session=" + junk(0), "session=" + victim.Value} {
		up := &upstream{}
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", cookie)
		if w := serve(t, h, r, up); w.Code != http.StatusOK || up.header.Get("X-Auth-User") != "victim" {
			t.Fatalf("%q: %d as %q", cookie, w.Code, up.header.Get("X-Auth-User"))
		}
	}
}

// No page can spend its visitors' login_rate: a cross-site request to a
// login path or a provider start that is no top-level navigation gets
// 403 before it counts or reaches the upstream.
func TestCrossSiteLoginAttemptsSpendNothing(t *testing.T) {
	h, _ := testHandler(t, func(h *Handler) { h.LoginRate = &Rate{Count: 2, Window: caddy.Duration(time.Minute)} })
	up := &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Session-Login", "planted")
		w.WriteHeader(http.StatusSeeOther)
	}}
	for i := range 10 {
		for _, dest := range []string{"empty", "image", "iframe", ""} {
			for _, method := range []string{"POST", "GET"} {
				r := httptest.NewRequest(method, "/login", nil)
				r.Header.Set("Sec-Fetch-Site", "cross-site")
				if dest != "" {
					r.Header.Set("Sec-Fetch-Dest", dest)
				}
				if w := serve(t, h, r, up); w.Code != http.StatusForbidden || sessionCookieOf(w) != nil {
					t.Fatalf("%d: cross-site %s to /login, dest %q: %d", i, method, dest, w.Code)
				}
			}
		}
		r := httptest.NewRequest("GET", "/.auth/sign-in/corp", nil)
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		r.Header.Set("Sec-Fetch-Dest", "image")
		if w := serve(t, h, r, up); w.Code != http.StatusForbidden {
			t.Fatalf("%d: cross-site image of a provider start: %d", i, w.Code)
		}
	}
	if up.calls != 0 {
		t.Fatalf("cross-site attempts reached the upstream %d times", up.calls)
	}
	// A top-level navigation from another site, and the site's own
	// sign-ins, pass: login_rate (2) was not spent.
	for i, site := range []string{"cross-site", "same-origin"} {
		r := httptest.NewRequest("POST", "/login", nil)
		r.Header.Set("Sec-Fetch-Site", site)
		r.Header.Set("Sec-Fetch-Dest", "document")
		if w := serve(t, h, r, up); w.Code != http.StatusSeeOther || sessionCookieOf(w) == nil {
			t.Fatalf("sign-in %d (%s navigation): %d", i+1, site, w.Code)
		}
	}
}

// Logout CSRF: a GET of the logout from a sibling subdomain, another
// site or a client without Sec-Fetch-* ends nothing and answers a page
// whose button posts the sign-out; a POST must be same-origin (a sibling
// subdomain's same-site is refused). A same-origin GET, a typed address
// (none) and a same-origin POST sign out.
func TestLogoutNeedsSameOrigin(t *testing.T) {
	h, _ := testHandler(t, nil)
	c := signIn(t, h, "alice")
	alive := func(when string) {
		t.Helper()
		up := &upstream{}
		if w := serve(t, h, get("/", c), up); w.Code != http.StatusOK || up.header.Get("X-Auth-User") != "alice" {
			t.Fatalf("%s: the session ended (%d)", when, w.Code)
		}
	}
	logout := func(method string, hdr ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/.auth/logout?next=%2Fbye", nil)
		r.AddCookie(c)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		return serve(t, h, r, &upstream{})
	}
	for name, hdr := range map[string][]string{
		"sibling subdomain":  {"Sec-Fetch-Site", "same-site", "Sec-Fetch-Dest", "document", "Accept", "text/html"},
		"another site":       {"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Dest", "document", "Accept", "text/html"},
		"without Sec-Fetch":  {"Accept", "text/html"},
		"same-origin, wrong": {"Sec-Fetch-Site", "same-origin", "Origin", "http://sibling.example.com", "Accept", "text/html"},
	} {
		w := logout("GET", hdr...)
		body := w.Body.String()
		if w.Code != http.StatusOK || strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") ||
			!strings.Contains(body, `<form method="post" action="/.auth/logout?next=%2fbye">`) ||
			!strings.Contains(body, "Sign out</button>") || w.Header().Get("Referrer-Policy") != "same-origin" {
			t.Fatalf("GET from %s: %d %q\n%s", name, w.Code, w.Header().Get("Set-Cookie"), body)
		}
		alive("GET from " + name)
	}
	if w := logout("GET", "Sec-Fetch-Site", "same-site", "Sec-Fetch-Dest", "image", "Accept", "image/*"); w.Code != http.StatusForbidden {
		t.Fatalf("an image of the logout on a sibling subdomain: %d", w.Code)
	}
	if w := logout("GET", "Accept", "application/json"); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "cross_site_request") {
		t.Fatalf("a JSON GET without Sec-Fetch-*: %d %s", w.Code, w.Body)
	}
	alive("images and JSON GETs")
	for _, site := range []string{"same-site", "cross-site"} {
		if w := logout("POST", "Sec-Fetch-Site", site, "Origin", "http://sibling.example.com"); w.Code != http.StatusForbidden {
			t.Fatalf("POST from %s: %d", site, w.Code)
		}
		if w := logout("POST", "Sec-Fetch-Site", site); w.Code != http.StatusForbidden {
			t.Fatalf("POST from %s without Origin: %d", site, w.Code)
		}
	}
	alive("cross-origin POSTs")
	for name, do := range map[string]func() *httptest.ResponseRecorder{
		"same-origin GET": func() *httptest.ResponseRecorder { return logout("GET", "Sec-Fetch-Site", "same-origin") },
		"typed GET":       func() *httptest.ResponseRecorder { return logout("GET", "Sec-Fetch-Site", "none") },
		"same-origin POST": func() *httptest.ResponseRecorder {
			return logout("POST", "Sec-Fetch-Site", "same-origin", "Origin", "http://example.com")
		},
		"POST without Sec-Fetch": func() *httptest.ResponseRecorder { return logout("POST") },
	} {
		c = signIn(t, h, "alice")
		if w := do(); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/bye" || !strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") {
			t.Fatalf("%s: %d %q", name, w.Code, w.Header().Get("Location"))
		}
		if w := serve(t, h, get("/", c), &upstream{}); w.Code != http.StatusUnauthorized {
			t.Fatalf("%s: the session still works (%d)", name, w.Code)
		}
	}
}
