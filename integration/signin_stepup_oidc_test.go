package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// Past max_age, an OIDC session is sent straight to its provider (the
// only way in) with prompt=login and max_age=0; signing in there again
// keeps the session and cookie, with a new authenticated_at and a step_up
// event. An ID token whose auth_time is older than the step-up (the
// provider did not sign the user in again) is refused with a page in
// words and login_failed, and the session is left as it was. Another user
// at the provider gets a new session. Every store.
func TestStepUpOIDC(t *testing.T) {
	stores(t, func(t *testing.T, storeLine string, _ *redisserver.Server) {
		port := redisserver.FreePort(t)
		o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
		text := oidcSite(port, storeLine, providerBlock("corp", o.issuer, ""))
		text = strings.Replace(text, "\treverse_proxy {UPSTREAM}", "\tsession_require /admin* max_age "+stepUpMaxAge.String()+"\n\treverse_proxy {UPSTREAM}", 1)
		g, _ := loadOIDCCaddy(t, port, text)
		b := newBrowser(t, g.base)

		// A plain sign-in does not ask the provider to sign in again.
		plain, _ := url.Parse(b.get("/.auth/sign-in/corp?next=%2Fadmin").header.Get("Location"))
		if q := plain.Query(); q.Has("prompt") || q.Has("max_age") {
			t.Fatalf("plain sign-in: %s", plain)
		}
		if p, _ := b.oidcSignIn("corp", "alice", "/admin"); p.status != http.StatusSeeOther {
			t.Fatalf("sign-in: %d %s", p.status, p.body)
		}
		id0, _, at0 := b.me()
		time.Sleep(stepUpMaxAge + 100*time.Millisecond)

		p := b.stepUpPage()
		start := "/.auth/sign-in/corp?step_up=1&next=%2Fadmin"
		if p.status != http.StatusSeeOther || p.header.Get("Location") != start {
			t.Fatalf("step-up page of an OIDC session, one provider: %d %q", p.status, p.header.Get("Location"))
		}
		auth, _ := url.Parse(b.get(start).header.Get("Location"))
		if q := auth.Query(); q.Get("prompt") != "login" || q.Get("max_age") != "0" || q.Get("nonce") == "" || q.Get("code_challenge") == "" {
			t.Fatalf("step-up authorization request: %s", auth)
		}

		// The provider answers with an old auth_time: refused.
		o.setTamper(func(c map[string]any) { c["auth_time"] = time.Now().Add(-time.Hour).Unix() })
		p, _ = b.oidcSignInFrom(start, "alice")
		o.setTamper(nil)
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "did not ask you to sign in again") || setsSessionCookie(p) {
			t.Fatalf("stale auth_time: %d %s", p.status, p.body)
		}
		if id, _, at := b.me(); id != id0 || !at.Equal(at0) {
			t.Fatalf("after the refused step-up: %s %v (was %s %v)", id, at, id0, at0)
		}
		if _, events := g.adminDo("GET", "/session-auth/users/alice@example.com/events", ""); !strings.Contains(events, `"type":"login_failed"`) {
			t.Fatalf("no login_failed: %s", events)
		}

		// No auth_time at all: OIDC Core requires it when max_age was asked.
		o.setTamper(func(c map[string]any) { delete(c, "auth_time") })
		p, _ = b.oidcSignInFrom(start, "alice")
		o.setTamper(nil)
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "did not ask you to sign in again") || setsSessionCookie(p) {
			t.Fatalf("no auth_time: %d %s", p.status, p.body)
		}

		p, _ = b.oidcSignInFrom(start, "alice")
		if p.status != http.StatusSeeOther || p.header.Get("Location") != "/admin" || setsSessionCookie(p) {
			t.Fatalf("step-up: %d %q %v %s", p.status, p.header.Get("Location"), p.header.Values("Set-Cookie"), p.body)
		}
		if id, _, at := b.me(); id != id0 || !at.After(at0) {
			t.Fatalf("after the step-up: %s %v (was %s %v)", id, at, id0, at0)
		}
		if p := b.get("/admin"); p.status != http.StatusOK {
			t.Fatalf("/admin after the step-up: %d", p.status)
		}
		_, events := g.adminDo("GET", "/session-auth/users/alice@example.com/events", "")
		if !strings.Contains(events, `"type":"step_up"`) || !strings.Contains(events, `"reason":"oidc:corp"`) {
			t.Fatalf("alice's events: %s", events)
		}

		// An auth_time a little before the step-up started is the two
		// clocks' difference: accepted.
		o.setTamper(func(c map[string]any) { c["auth_time"] = time.Now().Add(-30 * time.Second).Unix() })
		p, _ = b.oidcSignInFrom(start, "alice")
		o.setTamper(nil)
		if p.status != http.StatusSeeOther || setsSessionCookie(p) {
			t.Fatalf("auth_time within the skew: %d %s", p.status, p.body)
		}
		if id, _, _ := b.me(); id != id0 {
			t.Fatalf("after a step-up within the skew: %s (was %s)", id, id0)
		}

		// eve at the provider on alice's step-up: a session of her own.
		p, _ = b.oidcSignInFrom(start, "eve")
		if p.status != http.StatusSeeOther || !setsSessionCookie(p) {
			t.Fatalf("eve on alice's step-up: %d %s", p.status, p.body)
		}
		if id, user, _ := b.me(); id == id0 || user != "eve@other.example" {
			t.Fatalf("after eve's sign-in: %s %s", id, user)
		}
		if _, sessions := g.adminDo("GET", "/session-auth/users/alice@example.com/sessions", ""); strings.Contains(sessions, `"active":true`) {
			t.Fatalf("alice's session still active: %s", sessions)
		}
	})
}
