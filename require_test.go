package sessionauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func testRequire(t *testing.T, q *Require) *Require {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := q.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	return q
}

// chain runs the request through session_auth and then the rule, as a
// route does.
func chain(q *Require, up *upstream) caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return q.ServeHTTP(w, r, up)
	})
}

// max_age counts from the last proof of identity: with the clock moved
// past it the browser is sent to the step-up when sign_in is there, and
// refused with 403 when it is not.
func TestRequireMaxAgeAndStepUp(t *testing.T) {
	h, clock := testHandler(t, nil)
	q := testRequire(t, &Require{MaxAge: caddy.Duration(10 * time.Minute)})
	c := signIn(t, h, "ana")
	up := &upstream{}
	page := func() *http.Request {
		r := get("/reports/q3?x=1", c)
		r.Header.Set("Accept", "text/html")
		return r
	}
	if w := serve(t, h, page(), chain(q, up)); w.Code != 200 || up.calls != 1 {
		t.Fatalf("fresh sign-in: %d", w.Code)
	}
	clock.Advance(11 * time.Minute)
	w := serve(t, h, page(), chain(q, up))
	if w.Code != 403 || up.calls != 1 || !strings.Contains(w.Body.String(), "signed in as <strong>ana</strong>") {
		t.Fatalf("without sign_in: %d %s", w.Code, w.Body)
	}
	h.signInEnabled = true
	w = serve(t, h, page(), chain(q, up))
	if w.Code != 303 || w.Header().Get("Location") != "/.auth/sign-in?step_up=1&next=%2Freports%2Fq3%3Fx%3D1" || up.calls != 1 {
		t.Fatalf("with sign_in: %d %q", w.Code, w.Header().Get("Location"))
	}
	// An API client is never redirected: JSON 403.
	api := get("/reports/q3", c)
	w = serve(t, h, api, chain(q, up))
	if w.Code != 403 || strings.TrimSpace(w.Body.String()) != `{"error":"forbidden"}` {
		t.Fatalf("API client: %d %s", w.Code, w.Body)
	}
}

// Roles and users cannot be cured by signing in again: no step-up.
func TestRequireRolesNeverStepUp(t *testing.T) {
	h, _ := testHandler(t, nil)
	h.signInEnabled = true
	q := testRequire(t, &Require{Roles: []string{"admin"}})
	c := signIn(t, h, "ben")
	r := get("/admin", c)
	r.Header.Set("Accept", "text/html")
	up := &upstream{}
	if w := serve(t, h, r, chain(q, up)); w.Code != 403 || up.calls != 0 {
		t.Fatalf("roles: %d", w.Code)
	}
}

// Without session_auth before it, a rule refuses everything: nothing
// proved who the client is.
func TestRequireWithoutSessionAuthFailsClosed(t *testing.T) {
	q := testRequire(t, &Require{Users: []string{"ana"}})
	up := &upstream{}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("X-Auth-User", "ana")
	if err := q.ServeHTTP(w, r, up); err != nil || w.Code != 403 || up.calls != 0 {
		t.Fatalf("%d %v", w.Code, err)
	}
}

func TestRequireCaddyfileErrors(t *testing.T) {
	cases := []struct{ name, input, want string }{
		{"empty", "session_require", "needs at least one of"},
		{"empty block", "session_require {\n}", "needs at least one of"},
		{"unknown", "session_require {\n  groups a\n}", `unknown session_require rule "groups"`},
		{"repeated", "session_require {\n  roles a\n  roles b\n}", "roles given more than once"},
		{"no roles", "session_require {\n  roles\n}", "wrong argument count"},
		{"bad age", "session_require max_age soon", `max_age: bad duration "soon"`},
		{"zero age", "session_require max_age 0s", "max_age must be positive"},
		{"bad flag", "session_require no_risk sunburn", `no_risk flag "sunburn"`},
		{"line and block", "session_require roles a {\n  users b\n}", "a rule on its line or a block, not both"},
		{"comma", "session_require roles a,b", "no commas"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var q Require
			err := q.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Testfile:") {
				t.Fatalf("error %v, want %q with file:line", err, tc.want)
			}
		})
	}
}

// session_require where no session_auth comes before it is an adapt-time
// error naming the line; inside a route after one, or at the site's level
// beside one, it adapts, ordered after session_auth.
func TestRequireNeedsSessionAuthBefore(t *testing.T) {
	adapt := func(body string) (string, error) {
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(":8080 {\n"+body+"\n}\n"), map[string]any{"filename": "Caddyfile"})
		return string(out), err
	}
	for _, body := range []string{
		"\tsession_require roles admin\n\trespond ok",
		"\troute {\n\t\tsession_require roles admin\n\t\tsession_auth\n\t}",
		"\troute /a {\n\t\tsession_auth\n\t}\n\troute /b {\n\t\tsession_require roles admin\n\t}",
	} {
		if _, err := adapt(body); err == nil || !strings.Contains(err.Error(), "needs a session_auth before it") || !strings.Contains(err.Error(), "Caddyfile:") {
			t.Errorf("%s\nadapted, or error %v", body, err)
		}
	}
	out, err := adapt("\tsession_require /admin/* roles admin\n\tsession_auth\n\trespond ok")
	if err == nil {
		t.Fatalf("session_require written before session_auth adapted: %s", out)
	}
	out, err = adapt("\tsession_auth\n\tsession_require /admin/* roles admin\n\troute /x {\n\t\tsession_require max_age 5m\n\t}\n\trespond ok")
	if err != nil {
		t.Fatal(err)
	}
	if a, r := strings.Index(out, `"handler":"session_auth"`), strings.Index(out, `"handler":"session_require"`); a < 0 || r < a {
		t.Fatalf("order: %s", out)
	}
}

// pathRuleOf is a rule under a provisioned path matcher, as a route holds it.
func pathRuleOf(t *testing.T, q *Require, paths ...string) pathRule {
	t.Helper()
	mp := caddyhttp.MatchPath(paths)
	if err := mp.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	return pathRule{chain: []caddyhttp.MatcherSets{{caddyhttp.MatcherSet{mp}}}, q: testRequire(t, q)}
}

// The spellings of a protected path that Caddy's path matcher does not
// read as it (and so never runs the rule for) but an upstream may: each is
// answered as the rule answers, for a user who fails it and for no
// session at all; a user who passes gets through; a path no rule covers
// in any reading (an API's %2F ids) is left alone.
func TestRuleHoldsHoweverThePathIsRead(t *testing.T) {
	h, _ := testHandler(t, func(h *Handler) { h.Optional = true })
	h.rules = &pathRules{list: []pathRule{
		pathRuleOf(t, &Require{Roles: []string{"admin"}}, "/admin/*"),
		pathRuleOf(t, &Require{Roles: []string{"admin"}}, "/exact"),
	}}
	admin, viewer := signIn(t, h, "root"), signIn(t, h, "viewer")
	h.rules.list[0].q.Users, h.rules.list[0].q.Roles = []string{"root"}, nil // roles come from the hand-off; users will do
	h.rules.list[1].q.Users, h.rules.list[1].q.Roles = []string{"root"}, nil
	send := func(raw string, c *http.Cookie) (*httptest.ResponseRecorder, *upstream) {
		r := httptest.NewRequest("GET", "http://example.com"+raw, nil)
		r.Header.Set("Accept", "application/json")
		if c != nil {
			r.AddCookie(c)
		}
		up := &upstream{}
		return serve(t, h, r, up), up
	}
	for _, raw := range []string{
		"/admin;x/panel", "/admin./panel", "/admin%252fpanel", `/admin\panel`, "/admin%5cpanel", "/admin%09/panel",
		"/admin%20/panel", "/x/..%252fadmin/panel", "/admin%00/panel", "/admin;/", "/admin%2e/panel",
		"/exact/", "/exact.", "/exact;", "/exact%2f", "/exact%00", "/exact%3bx", "/exact%252f", `/exact\`, "/exact%09",
	} {
		if w, up := send(raw, viewer); w.Code != http.StatusForbidden || up.calls != 0 || strings.TrimSpace(w.Body.String()) != `{"error":"forbidden"}` {
			t.Errorf("%s as a user the rule refuses: %d %s, upstream %d", raw, w.Code, w.Body, up.calls)
		}
		if w, up := send(raw, nil); w.Code != http.StatusUnauthorized || up.calls != 0 {
			t.Errorf("%s without a session: %d, upstream %d", raw, w.Code, up.calls)
		}
		if w, up := send(raw, admin); w.Code != http.StatusOK || up.calls != 1 {
			t.Errorf("%s as a user the rule lets in: %d", raw, w.Code)
		}
	}
	for _, raw := range []string{
		"/api/items/a%2Fb", "/api/items/a%252Fb", "/files/a;b/c", `/files/a\b`, "/docs/v1.2./x", "/blog/",
		"/administrator/x;y", "/exactly/", "/admin", "/", "/x/../admin",
	} {
		if w, up := send(raw, viewer); w.Code != http.StatusOK || up.calls != 1 {
			t.Errorf("%s, which no rule covers in any reading: %d %s", raw, w.Code, w.Body)
		}
	}
}
