package sessionauth

import (
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
)

// The pages tell a person what happened and where to go from there:
// these tests read the HTML a browser gets.

// mustShow fails unless the page has every want and none of the nots.
func mustShow(t *testing.T, w *httptest.ResponseRecorder, status int, wants []string, nots ...string) {
	t.Helper()
	body := w.Body.String()
	if w.Code != status {
		t.Fatalf("status %d, want %d: %s", w.Code, status, body)
	}
	for _, s := range wants {
		if !strings.Contains(body, s) {
			t.Fatalf("page lacks %q:\n%s", s, body)
		}
	}
	for _, s := range nots {
		if strings.Contains(body, s) {
			t.Fatalf("page has %q:\n%s", s, body)
		}
	}
}

// Without sign_in there is no step-up: the 403 of a max_age or no_risk
// rule says what the rule wants (a recent sign-in, a session without
// risk flags), not "sign in with another account", which is the advice
// of users and roles only.
func TestForbiddenPageSaysWhatTheRuleWants(t *testing.T) {
	h, clock := stepUpHandler(t)
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	c.signIn("carol", nil)
	h.signInEnabled = false

	clock.Advance(11 * time.Minute)
	_, w := c.admin()
	mustShow(t, w, http.StatusForbidden, []string{"<title>Sign in again to open this page</title>",
		"This page needs a sign-in within the last 10 minutes. You signed in as <strong>carol</strong> 11 minutes ago.",
		"Sign out, then sign in again to open it.", `action="/.auth/logout?next=%2fadmin"`}, "another account")

	c.signIn("carol", nil)
	c.ip = "198.51.100.4"
	_, w = c.admin()
	mustShow(t, w, http.StatusForbidden, []string{"This page needs a session without risk flags.",
		"has a change of network since you signed in.", "sign in again from this device and network"}, "another account")

	roles := testRequire(t, &Require{Roles: []string{"admin"}})
	r := httptest.NewRequest("GET", "/admin", nil)
	r.AddCookie(c.cookies["session"])
	r.Header.Set("Accept", "text/html")
	mustShow(t, serve(t, h, r, chain(roles, &upstream{})), http.StatusForbidden,
		[]string{"You don't have access to this page", "sign out and sign in with that one"}, "risk flags")
}

// A wrong password keeps the user name typed (the focus moves to the
// password); on the step-up page, whose user name is fixed, the error
// speaks of the password alone.
func TestWrongPasswordKeepsTheUserName(t *testing.T) {
	h, clock := stepUpHandler(t)
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	p := c.get("/.auth/sign-in?next=%2Fadmin").Body.String()
	w := c.post(url.Values{"csrf": {field(p, "csrf")}, "next": {"/admin"}, "username": {"carol <x>"}, "password": {"wrong"}})
	mustShow(t, w, http.StatusUnauthorized, []string{"Wrong user name or password.",
		`<input id="username" name="username" value="carol &lt;x&gt;" autocomplete="username" required>`,
		`autocomplete="current-password" required autofocus>`})

	c.signIn("carol", nil)
	clock.Advance(11 * time.Minute)
	p = c.get("/.auth/sign-in?step_up=1&next=%2Fadmin").Body.String()
	w = c.post(url.Values{"csrf": {field(p, "csrf")}, "next": {"/admin"}, "step_up": {"1"}, "username": {"carol"}, "password": {"wrong"}})
	mustShow(t, w, http.StatusUnauthorized, []string{"Confirm it", `<p class="error" role="alert">Wrong password.</p>`,
		`value="carol" autocomplete="username" readonly`}, "user name or password")
}

// The code step links back to the password step, on the sign-in and on
// the step-up page, and the link shows that step.
func TestCodeStepHasAWayBack(t *testing.T) {
	h, clock := stepUpHandler(t)
	code := func() string {
		s, _ := totp.GenerateCodeCustom(stepUpTOTP, clock.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		return s
	}
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	p := c.get("/.auth/sign-in?next=%2Fadmin").Body.String()
	w := c.post(url.Values{"csrf": {field(p, "csrf")}, "next": {"/admin"}, "username": {"bob"}, "password": {"demo"}})
	mustShow(t, w, http.StatusOK, []string{"Code from your authenticator app",
		`<a href="/.auth/sign-in?next=%2fadmin">Back to user name and password</a>`})
	mustShow(t, c.get("/.auth/sign-in?next=%2fadmin"), http.StatusOK, []string{`<label for="password">Password</label>`}, "Code from")

	c.signIn("bob", code)
	clock.Advance(11 * time.Minute)
	p = c.get("/.auth/sign-in?step_up=1&next=%2Fadmin").Body.String()
	w = c.post(url.Values{"csrf": {field(p, "csrf")}, "next": {"/admin"}, "step_up": {"1"}, "username": {"bob"}, "password": {"demo"}})
	mustShow(t, w, http.StatusOK, []string{"Code from your authenticator app",
		`<a href="/.auth/sign-in?step_up=1&amp;next=%2fadmin">Back to the password</a>`})
	mustShow(t, c.get("/.auth/sign-in?step_up=1&next=%2fadmin"), http.StatusOK, []string{"Confirm it", `<button type="submit">Confirm</button>`}, "Code from")
}

// After signing out, the sign-in page the browser lands on says so,
// once; a browser that did not sign out is not told it did.
func TestSignInPageSaysYouSignedOut(t *testing.T) {
	h, _ := stepUpHandler(t)
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	mustShow(t, c.get("/.auth/sign-in"), http.StatusOK, nil, "You signed out.")
	c.signIn("carol", nil)
	r := httptest.NewRequest("POST", "/.auth/logout?next=/admin", nil)
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	if w := c.do(r, nil); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin" {
		t.Fatalf("sign-out: %d %q", w.Code, w.Header().Get("Location"))
	}
	_, landed := c.admin()
	if landed.Code != http.StatusSeeOther {
		t.Fatalf("after the sign-out: %d", landed.Code)
	}
	mustShow(t, c.get(landed.Header().Get("Location")), http.StatusOK, []string{`<p class="notice" role="status">You signed out.</p>`})
	mustShow(t, c.get(landed.Header().Get("Location")), http.StatusOK, []string{"Sign in to"}, "You signed out.")
}

// A refused token and too many attempts are no dead ends: the page links
// on (back to the sessions page; the same page again, or the form).
func TestProblemPagesOfferAWayOn(t *testing.T) {
	t.Run("token not created", func(t *testing.T) {
		h, _ := testHandler(t, func(h *Handler) { h.APITokens = &APITokens{} })
		c := signIn(t, h, "alice")
		mustShow(t, postToken(t, h, c, "192.0.2.10", "", "text/html"), http.StatusBadRequest,
			[]string{"The token was not created", `<p><a href="/.auth/sessions">Back to where you&#39;re signed in</a></p>`})
	})
	t.Run("too many attempts, a page", func(t *testing.T) {
		h, _ := testHandler(t, func(h *Handler) { h.GuessRate = &Rate{Count: 1, Window: caddy.Duration(time.Minute)} })
		guess := func() *http.Request {
			r := get("/reports?q=1", &http.Cookie{Name: "session", Value: "guess"})
			r.Header.Set("Accept", "text/html")
			return r
		}
		serve(t, h, guess(), &upstream{})
		mustShow(t, serve(t, h, guess(), &upstream{}), http.StatusTooManyRequests,
			[]string{"Too many attempts", `<p><a href="/reports?q=1">Try again</a></p>`})
	})
	t.Run("too many attempts, a form", func(t *testing.T) {
		hash, _ := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
		h, _ := testHandler(t, func(h *Handler) {
			h.SignIn = &SignIn{Accounts: []*Account{{User: "carol", Hash: string(hash)}}}
			h.LoginRate = &Rate{Count: 1, Window: caddy.Duration(time.Minute)}
		})
		c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
		p := c.get("/.auth/sign-in").Body.String()
		wrong := url.Values{"csrf": {field(p, "csrf")}, "next": {"/"}, "username": {"carol"}, "password": {"wrong"}}
		c.post(wrong)
		mustShow(t, c.post(wrong), http.StatusTooManyRequests,
			[]string{"Too many attempts", `<p><a href="/.auth/sign-in">Back to the form</a></p>`})
		// The way back keeps where the sign-in was going.
		wrong.Set("next", "/reports?q=1")
		mustShow(t, c.post(wrong), http.StatusTooManyRequests,
			[]string{"Too many attempts", `<p><a href="/.auth/sign-in?next=%2Freports%3Fq%3D1">Back to the form</a></p>`})
	})
}

// The sessions page says which site each session signed in on: sites
// that share a store list each other's sessions.
func TestSessionsPageNamesTheSite(t *testing.T) {
	h, _ := stepUpHandler(t)
	h.BaseURL = "https://wiki.example.com"
	other := &formClient{t: t, h: h, ip: "192.0.2.11", cookies: map[string]*http.Cookie{}}
	other.signIn("carol", nil)
	h.BaseURL = "https://app.example.com"
	wireParts(h) // the pages read base_url from their part
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	c.signIn("carol", nil)
	w := c.get("/.auth/sessions")
	mustShow(t, w, http.StatusOK, []string{"&larr; Back to app.example.com", "Signed in to app.example.com <time", "Signed in to wiki.example.com <time"})
}
