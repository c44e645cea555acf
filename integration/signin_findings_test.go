package integration

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// signInWithoutOffline signs in at provider as user with offline_access
// taken out of the authorization request, as any user can do in the
// address bar: the provider then issues no refresh token.
func (b *browser) signInWithoutOffline(provider, user string) page {
	b.t.Helper()
	start := b.get("/.auth/sign-in/" + provider + "?next=%2Fapp")
	u, err := url.Parse(start.header.Get("Location"))
	if err != nil || start.status != http.StatusSeeOther {
		b.t.Fatalf("start: %d %q", start.status, start.header.Get("Location"))
	}
	q := u.Query()
	var kept []string
	for _, s := range strings.Fields(q.Get("scope")) {
		if s != "offline_access" {
			kept = append(kept, s)
		}
	}
	q.Set("scope", strings.Join(kept, " "))
	u.RawQuery = q.Encode()
	p, _ := b.oidcSignInFrom(u.String(), user)
	return p
}

// With recheck, a sign-in that brings no refresh token (the user took
// offline_access out of the request) is refused: its session could never
// be checked again, and it used to pause the provider's rechecks for
// everyone. (Found by an attack: eve kept rechecks off for all users.)
func TestOIDCRecheckNeedsARefreshToken(t *testing.T) {
	port := redisserver.FreePort(t)
	o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
	g, _ := loadOIDCCaddy(t, port, oidcSite(port, "store memory", providerBlock("corp", o.issuer, "recheck 1s")))
	eve := newBrowser(t, g.base)
	p := eve.signInWithoutOffline("corp", "eve")
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "lasting access") || setsSessionCookie(p) {
		t.Fatalf("a sign-in without a refresh token: %d %s", p.status, p.body)
	}
	if s := eve.get("/app").status; s != http.StatusSeeOther {
		t.Fatalf("eve got a session: %d", s)
	}
	// alice, signed in properly, is still ended at once when the provider
	// refuses her, whatever eve does.
	alice := newBrowser(t, g.base)
	if p, _ := alice.oidcSignIn("corp", "alice", "/app"); p.status != http.StatusSeeOther {
		t.Fatalf("alice: %d %s", p.status, p.body)
	}
	o.store.refuseRefresh.Store(true)
	time.Sleep(recheckWait)
	eve.signInWithoutOffline("corp", "eve")
	if s := alice.get("/app").status; s != http.StatusSeeOther {
		t.Fatalf("alice, refused by the provider: %d", s)
	}
}

// A plain sign-in at a provider with single sign-on answers without
// asking: the session's authenticated_at is the provider's auth_time, so
// session_require max_age still asks for a step-up. (Found by an attack:
// /.auth/sign-in/corp?next=/admin passed max_age.)
func TestOIDCSignInKeepsTheProvidersAuthTime(t *testing.T) {
	port := redisserver.FreePort(t)
	o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
	text := strings.Replace(oidcSite(port, "store memory", providerBlock("corp", o.issuer, "")),
		"\treverse_proxy {UPSTREAM}", "\tsession_require /admin* max_age 10m\n\treverse_proxy {UPSTREAM}", 1)
	g, _ := loadOIDCCaddy(t, port, text)
	b := newBrowser(t, g.base)
	hourAgo := time.Now().Add(-time.Hour).Unix()
	o.setTamper(func(c map[string]any) { c["auth_time"] = hourAgo })
	p, _ := b.oidcSignIn("corp", "alice", "/admin")
	o.setTamper(nil)
	if p.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", p.status, p.body)
	}
	if _, _, at := b.me(); at.Unix() != hourAgo {
		t.Fatalf("authenticated_at %v, the provider said %v", at, time.Unix(hourAgo, 0).UTC())
	}
	if got := b.get("/admin"); got.status != http.StatusSeeOther || !strings.Contains(got.header.Get("Location"), "step_up=1") {
		t.Fatalf("/admin after a sign-in an hour old at the provider: %d %q", got.status, got.header.Get("Location"))
	}
}

// makeToken creates an API token from the browser's session, as its
// sessions page does, and answers a function that reports what a request
// with it gets.
func (b *browser) makeToken(name string) func() int {
	b.t.Helper()
	csrf := b.get("/.auth/me", "Accept", "application/json").header.Get("X-CSRF-Token")
	req, _ := http.NewRequest("POST", b.base+"/.auth/tokens", strings.NewReader(`{"name":"`+name+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-CSRF-Token", csrf)
	res, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	var tok tokenJSON
	if res.StatusCode != http.StatusCreated || json.NewDecoder(res.Body).Decode(&tok) != nil {
		b.t.Fatalf("token: %d", res.StatusCode)
	}
	return func() int {
		req, _ := http.NewRequest("GET", b.base+"/app", nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		req.Header.Set("Accept", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
}

// An API token made by a provider's session ends with that session at
// the provider: a back-channel logout of it (or of the user), and the
// provider refusing that session's refresh. (Found by an attack: tokens
// outlived the provider ending the user.)
func TestOIDCTokensEndWithTheirProviderSession(t *testing.T) {
	port := redisserver.FreePort(t)
	o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
	g, _ := loadOIDCCaddy(t, port, oidcSite(port, "store memory\napi_tokens max_lifetime 30d", providerBlock("corp", o.issuer, "recheck 1s")))
	signIn := func(sid string) *browser {
		o.setTamper(func(c map[string]any) { c["sid"] = sid })
		defer o.setTamper(nil)
		b := newBrowser(t, g.base)
		if p, _ := b.oidcSignIn("corp", "alice", "/app"); p.status != http.StatusSeeOther {
			t.Fatalf("sign-in: %d %s", p.status, p.body)
		}
		return b
	}
	first, second := signIn("op-sid-1"), signIn("op-sid-2")
	tokenOfFirst, tokenOfSecond := first.makeToken("first"), second.makeToken("second")
	if tokenOfFirst() != 200 || tokenOfSecond() != 200 {
		t.Fatal("tokens do not work")
	}

	// The provider signs op-sid-1 out: its session and its token end.
	form := url.Values{"logout_token": {signJWT(o.store.current(), o.logoutClaims("id-alice", "op-sid-1"), "logout+jwt")}}.Encode()
	if code, body := postLogout(t, g, "corp", form); code != 200 {
		t.Fatalf("back-channel: %d %s", code, body)
	}
	if c := tokenOfFirst(); c != http.StatusUnauthorized {
		t.Fatalf("the token of the provider session signed out: %d", c)
	}
	if c := tokenOfSecond(); c != 200 {
		t.Fatalf("the token of the other provider session: %d", c)
	}

	// The provider refuses the second session's refresh: its token ends
	// when the session is checked.
	o.store.refuseRefresh.Store(true)
	time.Sleep(recheckWait)
	if s := second.get("/app").status; s != http.StatusSeeOther {
		t.Fatalf("the refused session: %d", s)
	}
	if c := tokenOfSecond(); c != http.StatusUnauthorized {
		t.Fatalf("the token of the refused session: %d", c)
	}
}

// idTokenSID is the sid claim of a JWT, read without checking it (the
// provider already did).
func idTokenSID(t *testing.T, raw string) any {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c["sid"]
}

// A step-up at a provider gives the kept session the provider's new
// tokens: logout_at_provider's hint names the provider session of the
// step-up. (Found by an attack: the first sign-in's ID token was kept.)
func TestOIDCStepUpTakesTheNewTokens(t *testing.T) {
	port := redisserver.FreePort(t)
	o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
	text := strings.Replace(oidcSite(port, "store memory", providerBlock("corp", o.issuer, "logout_at_provider")),
		"\treverse_proxy {UPSTREAM}", "\tsession_require /admin* max_age "+stepUpMaxAge.String()+"\n\treverse_proxy {UPSTREAM}", 1)
	g, _ := loadOIDCCaddy(t, port, text)
	b := newBrowser(t, g.base)
	o.setTamper(func(c map[string]any) { c["sid"] = "op-sid-old" })
	p, _ := b.oidcSignIn("corp", "alice", "/app")
	o.setTamper(nil)
	if p.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", p.status, p.body)
	}
	id0, _, _ := b.me()
	time.Sleep(stepUpMaxAge + 100*time.Millisecond)
	o.setTamper(func(c map[string]any) { c["sid"] = "op-sid-new" })
	p, _ = b.oidcSignInFrom("/.auth/sign-in/corp?step_up=1&next=%2Fadmin", "alice")
	o.setTamper(nil)
	if p.status != http.StatusSeeOther || setsSessionCookie(p) {
		t.Fatalf("step-up: %d %s", p.status, p.body)
	}
	if id, _, _ := b.me(); id != id0 {
		t.Fatal("the step-up made a new session")
	}
	to, _ := url.Parse(b.get("/.auth/logout?next=%2Fbye", "Sec-Fetch-Site", "same-origin").header.Get("Location"))
	if sid := idTokenSID(t, to.Query().Get("id_token_hint")); sid != "op-sid-new" {
		t.Fatalf("after a step-up into op-sid-new, the logout hint names %v", sid)
	}
}
