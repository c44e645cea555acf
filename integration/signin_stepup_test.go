package integration

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// stepUpMaxAge is max_age on /admin in the step-up tests: real time
// passes in a real Caddy, so it is short.
const stepUpMaxAge = 2 * time.Second

// stepUpSite has accounts alice, carol (password demo) and bob (demo and
// TOTP), and /admin behind session_require max_age.
func stepUpSite(t *testing.T, storeLine string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	text := site(storeLine + `
sign_in {
	accounts {
		alice ` + string(hash) + ` {
			name "Alice Example"
		}
		bob ` + string(hash) + ` {
			totp ` + bobTOTP + `
		}
		carol ` + string(hash) + `
	}
}`)
	return strings.Replace(text, "\treverse_proxy {UPSTREAM}", "\tsession_require /admin* max_age "+stepUpMaxAge.String()+"\n\treverse_proxy {UPSTREAM}", 1)
}

// me is the browser's session as /.auth/me tells it.
func (b *browser) me() (id, user string, authenticatedAt time.Time) {
	b.t.Helper()
	p := b.send("GET", "/.auth/me", nil, "Accept", "application/json")
	var m struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
		Session struct {
			ID              string `json:"id"`
			AuthenticatedAt string `json:"authenticated_at"`
		} `json:"session"`
	}
	if p.status != http.StatusOK || jsonUnmarshal(p.body, &m) != nil {
		b.t.Fatalf("/.auth/me: %d %s", p.status, p.body)
	}
	at, err := time.Parse(time.RFC3339, m.Session.AuthenticatedAt)
	if err != nil {
		b.t.Fatalf("authenticated_at %q: %v", m.Session.AuthenticatedAt, err)
	}
	return m.Session.ID, m.User.ID, at
}

// stepUpPage follows /admin, past max_age, to the step-up page.
func (b *browser) stepUpPage() page {
	b.t.Helper()
	p := b.get("/admin")
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/.auth/sign-in?step_up=1&next=%2Fadmin" {
		b.t.Fatalf("/admin past max_age: %d %q", p.status, p.header.Get("Location"))
	}
	return b.get(p.header.Get("Location"))
}

func setsSessionCookie(p page) bool {
	for _, c := range p.header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "session=") {
			return true
		}
	}
	return false
}

// Past max_age, an account's session goes to the step-up page, which
// names the account with the user name fixed; the password (and the code
// for a TOTP account) keeps the same session and cookie with a new
// authenticated_at and a step_up event, and /admin is served again. A
// wrong password changes nothing; another user signing in on the page
// gets a new session and the old one ends. Every store.
func TestStepUpAccounts(t *testing.T) {
	stores(t, func(t *testing.T, storeLine string, _ *redisserver.Server) {
		g := loadCaddy(t, stepUpSite(t, storeLine), newUpstream(t))
		alice, bob := newBrowser(t, g.base), newBrowser(t, g.base)
		if p := alice.signInForm("/admin", "alice", "demo"); p.status != http.StatusSeeOther {
			t.Fatalf("alice's sign-in: %d %s", p.status, p.body)
		}
		if p := bob.codeStep(bob.signInForm("/admin", "bob", "demo"), currentCode(t, time.Now())); p.status != http.StatusSeeOther {
			t.Fatalf("bob's sign-in: %d %s", p.status, p.body)
		}
		if p := alice.get("/admin"); p.status != http.StatusOK {
			t.Fatalf("/admin after the sign-in: %d", p.status)
		}
		aliceID, _, aliceAt := alice.me()
		bobID, _, bobAt := bob.me()
		time.Sleep(stepUpMaxAge + 100*time.Millisecond)

		p := alice.stepUpPage()
		for _, want := range []string{"Confirm it's you", "<strong>Alice Example</strong> (alice)", `name="username" value="alice" autocomplete="username" readonly`} {
			if !strings.Contains(p.body, want) {
				t.Fatalf("step-up page lacks %q:\n%s", want, p.body)
			}
		}
		form := url.Values{"csrf": {p.field("csrf")}, "next": {p.field("next")}, "step_up": {"1"}, "username": {"alice"}, "password": {"wrong"}}
		if w := alice.post("/.auth/sign-in", form); w.status != http.StatusUnauthorized || !strings.Contains(w.body, "Wrong password.") {
			t.Fatalf("wrong password: %d %s", w.status, w.body)
		}
		if id, _, at := alice.me(); id != aliceID || !at.Equal(aliceAt) {
			t.Fatalf("after a wrong password: %s %v", id, at)
		}
		form.Set("password", "demo")
		w := alice.post("/.auth/sign-in", form)
		if w.status != http.StatusSeeOther || w.header.Get("Location") != "/admin" || setsSessionCookie(w) {
			t.Fatalf("step-up: %d %q %v", w.status, w.header.Get("Location"), w.header.Values("Set-Cookie"))
		}
		if id, _, at := alice.me(); id != aliceID || !at.After(aliceAt) {
			t.Fatalf("after the step-up: session %s (was %s), authenticated_at %v (was %v)", id, aliceID, at, aliceAt)
		}
		if p := alice.get("/admin"); p.status != http.StatusOK {
			t.Fatalf("/admin after the step-up: %d", p.status)
		}
		_, events := g.adminDo("GET", "/session-auth/users/alice/events", "")
		if !strings.Contains(events, `"type":"step_up"`) || !strings.Contains(events, `"reason":"password"`) || !strings.Contains(events, aliceID) {
			t.Fatalf("alice's events: %s", events)
		}

		// bob: the password, then the code on the step-up page's code step.
		p = bob.stepUpPage()
		step := bob.post("/.auth/sign-in", url.Values{"csrf": {p.field("csrf")}, "next": {"/admin"}, "step_up": {"1"}, "username": {"bob"}, "password": {"demo"}})
		if step.status != http.StatusOK || step.field("pending") == "" || !strings.Contains(step.body, `name="step_up" value="1"`) || !strings.Contains(step.body, "Confirm it's you") {
			t.Fatalf("bob's code step: %d %s", step.status, step.body)
		}
		// The next 30 s step's code: the sign-in's is used already.
		w = bob.post("/.auth/sign-in", url.Values{"csrf": {step.field("csrf")}, "next": {"/admin"}, "step_up": {"1"},
			"pending": {step.field("pending")}, "code": {currentCode(t, time.Now().Add(30*time.Second))}})
		if w.status != http.StatusSeeOther || setsSessionCookie(w) {
			t.Fatalf("bob's step-up: %d %s", w.status, w.body)
		}
		if id, _, at := bob.me(); id != bobID || !at.After(bobAt) {
			t.Fatalf("bob after the step-up: %s %v", id, at)
		}
		if _, events := g.adminDo("GET", "/session-auth/users/bob/events", ""); !strings.Contains(events, `"reason":"password+totp"`) {
			t.Fatalf("bob's events: %s", events)
		}

		// carol on alice's step-up page: a session of her own.
		p = alice.get("/.auth/sign-in?step_up=1&next=%2Fadmin")
		w = alice.post("/.auth/sign-in", url.Values{"csrf": {p.field("csrf")}, "next": {"/admin"}, "step_up": {"1"}, "username": {"carol"}, "password": {"demo"}})
		if w.status != http.StatusSeeOther || !setsSessionCookie(w) {
			t.Fatalf("carol on alice's step-up page: %d %s", w.status, w.body)
		}
		if id, user, _ := alice.me(); id == aliceID || user != "carol" {
			t.Fatalf("after carol's sign-in: %s %s", id, user)
		}
		_, sessions := g.adminDo("GET", "/session-auth/users/alice/sessions", "")
		if !strings.Contains(sessions, `"id":"`+aliceID+`"`) || !strings.Contains(sessions, `"active":false`) || strings.Contains(sessions, `"active":true`) {
			t.Fatalf("alice's sessions after carol signed in: %s", sessions)
		}
	})
}

// A step-up at another gateway on the same Redis reaches this gateway's
// cache at once: the next request carries the new authenticated_at.
func TestStepUpElsewhereReachesTheCache(t *testing.T) {
	g, _, direct, _ := proxiedSite(t, "cache 1m")
	c := newClient(t, g)
	c.signIn("stella")
	if res := c.do("GET", "/"); res.StatusCode != 200 { // validated at the store, cached
		t.Fatalf("first request: %d", res.StatusCode)
	}
	id := strings.SplitN(c.cookie, ".", 2)[0]
	at := time.Now().Add(5 * time.Second).Truncate(time.Second)
	if _, err := direct.StepUp(context.Background(), id, session.Proof{At: at, Method: "password"}, testPolicy); err != nil {
		t.Fatal(err)
	}
	want := at.UTC().Format(time.RFC3339)
	waitUntil(t, 3*time.Second, func() bool { return c.do("GET", "/").headers["X-Auth-Authenticated-At"] == want })
}
