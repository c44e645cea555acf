package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// Ways to abuse the sign-in that cost the attacker nothing: a cross-site
// page that spends the visitor's login_rate, a client filling the store
// with pending OIDC sign-ins, a TOTP code step finished in another
// browser.

// postPending posts the code step: the CSRF token of csrfFrom (the
// posting browser's own page), a pending value and a code.
func (b *browser) postPending(csrfFrom page, pending, code string, extra ...string) page {
	b.t.Helper()
	form := url.Values{"csrf": {csrfFrom.field("csrf")}, "next": {"/app"}, "pending": {pending}, "code": {code}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	return b.post("/.auth/sign-in", form)
}

// A cross-site page with <img src=".../.auth/callback/corp?state=x&code=y">
// makes the visitor's browser fetch the callback with made-up states.
// They are refused in words, as before, but do not count towards
// login_rate: the visitor then signs in with the password and at the
// provider. They count towards guess_rate: past it the made-up callbacks
// get 429, and still the visitor's own sign-ins (the password, the
// provider's real callback) go through.
func TestCallbackCrossSiteCannotLockOutSignIn(t *testing.T) {
	port := redisserver.FreePort(t)
	o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
	hash, err := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	accounts := "accounts {\n\talice " + string(hash) + "\n}\n"
	text := oidcSite(port, "store memory\nlogin_rate 5 1m\nguess_rate 8 1m", providerBlock("corp", o.issuer, "")+accounts)
	g, _ := loadOIDCCaddy(t, port, text)
	victim := newBrowser(t, g.base)
	image := func() page {
		return victim.get("/.auth/callback/corp?state=x&code=y", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Dest", "image", "Sec-Fetch-Mode", "no-cors", "Referer", "https://evil.example/")
	}
	for i := 0; i < 8; i++ {
		if p := image(); p.status != http.StatusBadRequest || !strings.Contains(p.body, "has expired or was already used") {
			t.Fatalf("made-up callback %d: %d %s", i+1, p.status, p.body)
		}
	}
	for i := 0; i < 3; i++ {
		if p := image(); p.status != http.StatusTooManyRequests || !strings.Contains(p.body, "Too many attempts") {
			t.Fatalf("made-up callback past guess_rate: %d %s", p.status, p.body)
		}
	}
	// A used state and a state bound to another browser: refused, not counted.
	thief := newBrowser(t, g.base)
	start := thief.get("/.auth/sign-in/corp")
	auth, _ := url.Parse(start.header.Get("Location"))
	if p := victim.get("/.auth/callback/corp?code=y&state=" + url.QueryEscape(auth.Query().Get("state"))); p.status == http.StatusOK || setsSessionCookie(p) {
		t.Fatalf("another browser's state: %d", p.status)
	}

	if p := victim.signInForm("/app", "alice", "demo"); p.status != http.StatusSeeOther || !setsSessionCookie(p) {
		t.Fatalf("the victim's own password sign-in after a cross-site page: %d %s", p.status, p.body)
	}
	other := newBrowser(t, g.base)
	if p, _ := other.oidcSignIn("corp", "alice", "/app"); p.status != http.StatusSeeOther || !setsSessionCookie(p) {
		t.Fatalf("a sign-in at the provider from the same address: %d %s", p.status, p.body)
	}
	if p := other.get("/app"); p.status != http.StatusOK {
		t.Fatalf("/app after the provider's sign-in: %d", p.status)
	}
	// Starts store nothing and count towards nothing (the pending sign-in
	// is in the browser's cookie): the sign-ins' own count (1 password, 1
	// callback) is not spent by them, and a password still signs in.
	third := newBrowser(t, g.base)
	for i := 3; i <= 12; i++ {
		if p := third.get("/.auth/sign-in/corp"); p.status != http.StatusSeeOther {
			t.Fatalf("start %d: %d", i, p.status)
		}
	}
	if p := newBrowser(t, g.base).signInForm("/app", "alice", "demo"); p.status != http.StatusSeeOther || !setsSessionCookie(p) {
		t.Fatalf("a password sign-in after many starts: %d %s", p.status, p.body)
	}
}

// A start of a sign-in at a provider writes nothing to the store (its
// pending sign-in is sealed in the browser's binding cookie), so it
// counts towards nothing: twenty starts in a row, the button's, the
// one-provider redirect's and a step-up's, each get a state of their
// own, and a sign-in at the provider completes after them. (Before,
// each start stored a record, bounded only by login_rate per /64: one
// /48 could fill a Redis. TestOIDCStartsLeaveTheStoreAsItWas shows the
// store unchanged by thousands of /64s.)
func TestProviderStartStoresNothing(t *testing.T) {
	port := redisserver.FreePort(t)
	o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
	g, _ := loadOIDCCaddy(t, port, oidcSite(port, "store memory\nlogin_rate 5 1m", providerBlock("corp", o.issuer, "")))
	b := newBrowser(t, g.base)
	states := map[string]bool{}
	for i := 0; i < 20; i++ {
		target := "/.auth/sign-in/corp"
		switch i % 3 {
		case 1:
			target = "/.auth/sign-in" // one provider: a redirect to its start
			if p := b.get(target); p.status != http.StatusSeeOther {
				t.Fatalf("the one-provider redirect: %d", p.status)
			} else {
				target = p.header.Get("Location")
			}
		case 2:
			target = "/.auth/sign-in/corp?step_up=1&next=%2Fadmin"
		}
		p := b.get(target)
		u, err := url.Parse(p.header.Get("Location"))
		if p.status != http.StatusSeeOther || err != nil || u.Query().Get("state") == "" {
			t.Fatalf("start %d: %d %s", i+1, p.status, p.body)
		}
		states[u.Query().Get("state")] = true
	}
	if len(states) != 20 {
		t.Fatalf("states: %d distinct of 20", len(states))
	}
	if p, _ := b.oidcSignIn("corp", "alice", "/app"); p.status != http.StatusSeeOther || b.get("/app").status != http.StatusOK {
		t.Fatalf("a sign-in after twenty starts: %d %s", p.status, p.body)
	}
}

// The TOTP code step belongs to the browser that gave the password (its
// sign-in form cookie): another browser posting the step's pending value
// with its own CSRF token and a current code gets "expired or used" and
// no session, and the step is gone for the victim too (one use). The
// victim's own step works. The same for a step-up's code step.
func TestCodeStepBoundToBrowser(t *testing.T) {
	g := loadCaddy(t, stepUpSite(t, "store memory"), newUpstream(t))
	victim, attacker := newBrowser(t, g.base), newBrowser(t, g.base)
	step := victim.signInForm("/app", "bob", "demo")
	pending := step.field("pending")
	if pending == "" {
		t.Fatalf("no code step: %d %s", step.status, step.body)
	}
	own := attacker.get("/.auth/sign-in")
	p := attacker.postPending(own, pending, currentCode(t, time.Now()))
	if p.status != http.StatusUnauthorized || setsSessionCookie(p) || !strings.Contains(p.body, "That step has expired or was used already.") {
		t.Fatalf("bob's step in another browser: %d %s", p.status, p.body)
	}
	if p := victim.postPending(step, pending, currentCode(t, time.Now())); p.status != http.StatusUnauthorized || setsSessionCookie(p) {
		t.Fatalf("the step after another browser used it: %d", p.status)
	}
	step = victim.signInForm("/app", "bob", "demo")
	if p := victim.codeStep(step, currentCode(t, time.Now())); p.status != http.StatusSeeOther || !setsSessionCookie(p) {
		t.Fatalf("bob's own step: %d %s", p.status, p.body)
	}

	// The step-up's code step, past max_age.
	time.Sleep(stepUpMaxAge + 100*time.Millisecond)
	page := victim.stepUpPage()
	step = victim.post("/.auth/sign-in", url.Values{"csrf": {page.field("csrf")}, "next": {"/admin"}, "step_up": {"1"}, "username": {"bob"}, "password": {"demo"}})
	if step.field("pending") == "" {
		t.Fatalf("the step-up's code step: %d %s", step.status, step.body)
	}
	next := currentCode(t, time.Now().Add(30*time.Second)) // the sign-in's code is used
	p = attacker.postPending(own, step.field("pending"), next, "step_up", "1", "next", "/admin")
	if p.status != http.StatusUnauthorized || setsSessionCookie(p) || !strings.Contains(p.body, "That step has expired or was used already.") {
		t.Fatalf("bob's step-up step in another browser: %d %s", p.status, p.body)
	}
	if p := victim.get("/admin"); p.status != http.StatusSeeOther {
		t.Fatalf("/admin after another browser's try: %d", p.status)
	}
}

// Wrong TOTP codes count per account from every address together: ten
// wrong codes for bob from ten addresses of one /48 (each under its own
// login_rate), then bob's right code from yet another address is refused
// with a page that says so (429, Retry-After), and the admin API shows one
// rate_limited event with reason code. alice, without TOTP, still signs
// in. On all three stores.
func TestWrongCodesCountPerAccountFromEveryAddress(t *testing.T) {
	stores(t, func(t *testing.T, storeLine string, _ *redisserver.Server) {
		g := loadCaddy(t, accountsSite(t, storeLine+"\nlogin_rate 5 1m", ""), newUpstream(t))
		valid := map[string]bool{}
		for _, off := range []time.Duration{-60, -30, 0, 30, 60} {
			valid[currentCode(t, time.Now().Add(off*time.Second))] = true
		}
		wrong := "000000"
		for i := 0; valid[wrong]; i++ {
			wrong = fmt.Sprintf("%06d", i*7919%1000000)
		}
		try := func(i int, code string) page {
			ip := fmt.Sprintf("2001:db8:48:%x::1", i)
			b := newBrowser(t, g.base)
			p := b.get("/.auth/sign-in?next=%2Fapp", "X-Forwarded-For", ip)
			step := b.post("/.auth/sign-in", url.Values{"csrf": {p.field("csrf")}, "next": {"/app"}, "username": {"bob"}, "password": {"demo"}}, "X-Forwarded-For", ip)
			if step.field("pending") == "" {
				t.Fatalf("no code step from %s: %d %s", ip, step.status, step.body)
			}
			return b.post("/.auth/sign-in", url.Values{"csrf": {step.field("csrf")}, "next": {"/app"}, "pending": {step.field("pending")}, "code": {code}}, "X-Forwarded-For", ip)
		}
		for i := 1; i <= 10; i++ {
			if p := try(i, wrong); p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Wrong code") {
				t.Fatalf("wrong code %d: %d %s", i, p.status, p.body)
			}
		}
		p := try(11, currentCode(t, time.Now()))
		if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" || setsSessionCookie(p) ||
			!strings.Contains(p.body, "Too many wrong codes were entered for this account") {
			t.Fatalf("bob's right code after ten wrong ones: %d %q %s", p.status, p.header.Get("Retry-After"), p.body)
		}
		if _, body := g.adminDo("GET", "/session-auth/users/bob/events", ""); strings.Count(body, `"reason":"code"`) != 1 || !strings.Contains(body, `"type":"rate_limited"`) {
			t.Fatalf("bob's events: %s", body)
		}
		if p := newBrowser(t, g.base).signInForm("/app", "alice", "demo"); p.status != http.StatusSeeOther || !setsSessionCookie(p) {
			t.Fatalf("alice: %d %s", p.status, p.body)
		}
	})
}
