package sessionauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/bcrypt"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

const stepUpTOTP = "JBSWY3DPEHPK3PXP"

// stepUpHandler has accounts alice (named "Alice <A>"), carol, and bob
// with TOTP; every password is "demo".
func stepUpHandler(t *testing.T) (*Handler, *storetest.Clock) {
	t.Helper()
	hash, _ := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
	return testHandler(t, func(h *Handler) {
		h.SignIn = &SignIn{Accounts: []*Account{
			{User: "alice", Hash: string(hash), Name: "Alice <A>"},
			{User: "bob", Hash: string(hash), TOTP: stepUpTOTP},
			{User: "carol", Hash: string(hash)},
		}}
	})
}

// formClient is a browser on the unit handler: its cookies and IP.
type formClient struct {
	t       *testing.T
	h       *Handler
	ip      string
	cookies map[string]*http.Cookie
}

func (c *formClient) do(r *http.Request, next http.Handler) *httptest.ResponseRecorder {
	c.t.Helper()
	for _, k := range c.cookies {
		r.AddCookie(k)
	}
	r.Header.Set("Accept", "text/html")
	r.Header.Set("Test-Client-IP", c.ip)
	up := &upstream{}
	if next != nil {
		up.respond = next.ServeHTTP
	}
	rule := testRequire(c.t, &Require{MaxAge: caddy.Duration(10 * time.Minute), NoRisk: &[]string{}})
	w := serve(c.t, c.h, r, chain(rule, up))
	for _, k := range w.Result().Cookies() {
		if k.MaxAge < 0 {
			delete(c.cookies, k.Name)
		} else {
			c.cookies[k.Name] = k
		}
	}
	return w
}

func (c *formClient) get(target string) *httptest.ResponseRecorder {
	c.t.Helper()
	return c.do(httptest.NewRequest("GET", target, nil), nil)
}

func (c *formClient) post(form url.Values) *httptest.ResponseRecorder {
	c.t.Helper()
	r := httptest.NewRequest("POST", "/.auth/sign-in", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(r, nil)
}

// field is a hidden field's value on a page.
func field(body, name string) string {
	_, rest, ok := strings.Cut(body, `name="`+name+`" value="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// admin fetches /admin behind max_age 10m and no_risk: the headers the
// upstream saw, or nil with the answer when it was refused.
func (c *formClient) admin() (http.Header, *httptest.ResponseRecorder) {
	c.t.Helper()
	var seen http.Header
	w := c.do(httptest.NewRequest("GET", "/admin", nil), http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { seen = r.Header.Clone() }))
	return seen, w
}

func (c *formClient) signIn(user string, code func() string) {
	c.t.Helper()
	p := c.get("/.auth/sign-in?next=%2Fadmin")
	w := c.post(url.Values{"csrf": {field(p.Body.String(), "csrf")}, "next": {"/admin"}, "username": {user}, "password": {"demo"}})
	if code != nil {
		w = c.post(url.Values{"csrf": {field(w.Body.String(), "csrf")}, "next": {"/admin"}, "pending": {field(w.Body.String(), "pending")}, "code": {code()}})
	}
	if w.Code != http.StatusSeeOther || c.cookies["session"] == nil {
		c.t.Fatalf("%s's sign-in: %d %s", user, w.Code, w.Body)
	}
}

func (c *formClient) sessionID() string {
	id, _, _ := session.ParseCredential(c.cookies["session"].Value)
	return id
}

// Past max_age, an account's session is sent to the step-up page, which
// names the account with the user name fixed; the password keeps the same
// session (no new cookie) with a new authenticated_at and a step_up event,
// and the page is served again at once. A wrong password keeps nothing
// new and ends nothing.
func TestStepUpAccountKeepsSession(t *testing.T) {
	h, clock := stepUpHandler(t)
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	c.signIn("alice", nil)
	id := c.sessionID()
	if seen, w := c.admin(); seen == nil {
		t.Fatalf("fresh sign-in: %d", w.Code)
	}
	clock.Advance(11 * time.Minute)
	_, w := c.admin()
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/.auth/sign-in?step_up=1&next=%2Fadmin" {
		t.Fatalf("past max_age: %d %q", w.Code, w.Header().Get("Location"))
	}
	p := c.get(w.Header().Get("Location"))
	body := p.Body.String()
	for _, want := range []string{"<h1>Confirm it's you</h1>", "signed in as <strong>Alice &lt;A&gt;</strong> (alice)",
		`name="username" value="alice" autocomplete="username" readonly`, `name="step_up" value="1"`, `name="password"`,
		`href="/.auth/sign-in?next=%2Fadmin">Sign in as someone else`} {
		if !strings.Contains(body, want) {
			t.Fatalf("step-up page lacks %q:\n%s", want, body)
		}
	}
	if p.Code != 200 || strings.Contains(body, "<script") {
		t.Fatalf("step-up page: %d", p.Code)
	}
	form := url.Values{"csrf": {field(body, "csrf")}, "next": {field(body, "next")}, "step_up": {"1"}, "username": {"alice"}, "password": {"nope"}}
	w = c.post(form)
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "Wrong password.") ||
		!strings.Contains(w.Body.String(), "Confirm it") || c.sessionID() != id {
		t.Fatalf("wrong password: %d %s", w.Code, w.Body)
	}
	if _, w := c.admin(); w.Code != http.StatusSeeOther {
		t.Fatalf("after a wrong password: %d", w.Code)
	}
	clock.Advance(time.Second)
	form.Set("password", "demo")
	w = c.post(form)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin" {
		t.Fatalf("step-up: %d %q %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	for _, k := range w.Result().Cookies() {
		if k.Name == "session" {
			t.Fatalf("a step-up set the session cookie: %v", k)
		}
	}
	seen, w := c.admin()
	if seen == nil || seen.Get("X-Auth-Session") != id || seen.Get("X-Auth-Authenticated-At") != clock.Now().UTC().Format(time.RFC3339) ||
		seen.Get("X-Auth-Method") != "password" {
		t.Fatalf("after the step-up: %d %v", w.Code, seen)
	}
	evs, _ := h.store.Events(context.Background(), "alice", time.Time{}, 0)
	if len(evs) == 0 || evs[0].Type != session.EventStepUp || evs[0].SessionID != id || evs[0].Reason != "password" || evs[0].IP != "192.0.2.10" {
		t.Fatalf("events %+v", evs)
	}
}

// no_risk is cured by a step-up too: after it, the session's place is
// where the user proved who they are, so ip-changed is gone.
func TestStepUpCuresRisk(t *testing.T) {
	h, _ := stepUpHandler(t)
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	c.signIn("carol", nil)
	c.ip = "198.51.100.4"
	_, w := c.admin()
	if w.Code != http.StatusSeeOther || !strings.Contains(w.Header().Get("Location"), "step_up=1") {
		t.Fatalf("ip-changed under no_risk: %d %q", w.Code, w.Header().Get("Location"))
	}
	p := c.get(w.Header().Get("Location")).Body.String()
	w = c.post(url.Values{"csrf": {field(p, "csrf")}, "next": {"/admin"}, "step_up": {"1"}, "username": {"carol"}, "password": {"demo"}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("step-up: %d %s", w.Code, w.Body)
	}
	seen, w := c.admin()
	if seen == nil || seen.Get("X-Auth-Risk") != "" || seen.Get("X-Auth-IP-Changed") != "true" {
		t.Fatalf("after the step-up from the new IP: %d %v", w.Code, seen)
	}
}

// A TOTP account steps up with its code, on the step-up page's code step;
// a replayed code is refused as at sign-in.
func TestStepUpWithTOTP(t *testing.T) {
	h, clock := stepUpHandler(t)
	code := func() string {
		s, err := totp.GenerateCodeCustom(stepUpTOTP, clock.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	c.signIn("bob", code)
	id := c.sessionID()
	clock.Advance(11 * time.Minute)
	p := c.get("/.auth/sign-in?step_up=1&next=%2Fadmin").Body.String()
	w := c.post(url.Values{"csrf": {field(p, "csrf")}, "next": {"/admin"}, "step_up": {"1"}, "username": {"bob"}, "password": {"demo"}})
	step := w.Body.String()
	if w.Code != 200 || !strings.Contains(step, "Confirm it") || field(step, "pending") == "" || field(step, "step_up") != "1" {
		t.Fatalf("code step: %d %s", w.Code, step)
	}
	w = c.post(url.Values{"csrf": {field(step, "csrf")}, "next": {"/admin"}, "step_up": {"1"}, "pending": {field(step, "pending")}, "code": {code()}})
	if w.Code != http.StatusSeeOther || c.sessionID() != id {
		t.Fatalf("code: %d %s", w.Code, w.Body)
	}
	if seen, w := c.admin(); seen == nil || seen.Get("X-Auth-Session") != id {
		t.Fatalf("after the step-up: %d", w.Code)
	}
	evs, _ := h.store.Events(context.Background(), "bob", time.Time{}, 0)
	if len(evs) == 0 || evs[0].Type != session.EventStepUp || evs[0].Reason != "password+totp" {
		t.Fatalf("events %+v", evs)
	}
}

// Another user on the step-up page gets a session of their own, and the
// one the browser held ends; a hand-off's session gets the plain sign-in
// page; without a session, step_up=1 is the plain page too.
func TestStepUpOtherUserOrSessionKind(t *testing.T) {
	h, _ := stepUpHandler(t)
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	c.signIn("alice", nil)
	old := c.sessionID()
	p := c.get("/.auth/sign-in?step_up=1&next=%2Fadmin").Body.String()
	w := c.post(url.Values{"csrf": {field(p, "csrf")}, "next": {"/admin"}, "step_up": {"1"}, "username": {"carol"}, "password": {"demo"}})
	if w.Code != http.StatusSeeOther || c.sessionID() == old {
		t.Fatalf("another user: %d %s", w.Code, w.Body)
	}
	if s, err := h.store.Get(context.Background(), old); err != nil || s.Active() {
		t.Fatalf("alice's session after carol signed in on its step-up page: %+v %v", s, err)
	}
	if seen, _ := c.admin(); seen == nil || seen.Get("X-Auth-User") != "carol" {
		t.Fatalf("carol: %v", seen)
	}

	handoff := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{"session": signIn(t, h, "alice")}}
	if body := handoff.get("/.auth/sign-in?step_up=1&next=%2Fadmin").Body.String(); !strings.Contains(body, "<h1>Sign in to") || strings.Contains(body, "step_up") {
		t.Fatalf("hand-off session's step-up page:\n%s", body)
	}
	anon := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	if body := anon.get("/.auth/sign-in?step_up=1").Body.String(); !strings.Contains(body, "<h1>Sign in to") {
		t.Fatalf("no session:\n%s", body)
	}
}

// A step-up keeps the session only for the same user proved the same
// way: the same user id and, for OIDC, the same provider and sub; an
// account for a session an account signed in; never an API token's.
func TestStepUpSameUser(t *testing.T) {
	oidc := &session.Session{UserID: "a@x", AuthMethod: session.MethodOIDC("corp"), Provider: "corp", Subject: "s1"}
	acct := &session.Session{UserID: "alice", AuthMethod: session.MethodPassword}
	totpAcct := &session.Session{UserID: "alice", AuthMethod: session.MethodPasswordTOTP}
	handoff := &session.Session{UserID: "alice", AuthMethod: session.MethodHandoff}
	token := &session.Session{UserID: "alice", AuthMethod: session.MethodPassword, Kind: session.KindToken}
	byCorp := signedIn{userID: "a@x", provider: "corp", subject: "s1"}
	byAcct := signedIn{userID: "alice", method: session.MethodPassword}
	cases := []struct {
		s    *session.Session
		who  signedIn
		want bool
	}{
		{oidc, byCorp, true},
		{oidc, signedIn{userID: "a@x", provider: "corp", subject: "s2"}, false},
		{oidc, signedIn{userID: "a@x", provider: "other", subject: "s1"}, false},
		{oidc, signedIn{userID: "b@x", provider: "corp", subject: "s1"}, false},
		{oidc, signedIn{userID: "a@x"}, false},
		{acct, byAcct, true},
		{totpAcct, byAcct, true},
		{acct, signedIn{userID: "bob"}, false},
		{acct, byCorp, false},
		{handoff, byAcct, false},
		{token, byAcct, false},
	}
	for i, tc := range cases {
		if got := sameUser(tc.s, tc.who); got != tc.want {
			t.Errorf("case %d: sameUser(%+v, %+v) = %v", i, tc.s, tc.who, got)
		}
	}
}
