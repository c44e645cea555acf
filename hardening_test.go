package sessionauth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
