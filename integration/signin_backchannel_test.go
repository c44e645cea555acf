package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// logoutClaims is a valid back-channel logout token's claim set for the
// test provider's client, naming sub and/or sid.
func (o *testOP) logoutClaims(sub, sid string) map[string]any {
	c := map[string]any{
		"iss": o.issuer, "aud": "gateway", "iat": time.Now().Unix(), "exp": time.Now().Add(2 * time.Minute).Unix(),
		"jti":    randomID(),
		"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}},
	}
	if sub != "" {
		c["sub"] = sub
	}
	if sid != "" {
		c["sid"] = sid
	}
	return c
}

// postLogout sends a logout token to the gateway as the provider would:
// server to server, no cookie, from another origin (the endpoint is
// exempt from the cross-site rule).
func postLogout(t *testing.T, g *gateway, provider, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", g.base+"/.auth/backchannel-logout/"+provider, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://op.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(raw)
}

// The provider's back-channel logout ends the sessions it names and only
// those; anything but a valid, fresh, first-seen logout token of that
// provider is a 400 that ends nothing.
func TestOIDCBackchannelLogout(t *testing.T) {
	stores(t, func(t *testing.T, storeLine string, _ *redisserver.Server) {
		port := redisserver.FreePort(t)
		o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
		g, _ := loadOIDCCaddy(t, port, oidcSite(port, storeLine, providerBlock("corp", o.issuer, "")))

		// alice in two provider sessions, and eve.
		signIn := func(user, sid string) *browser {
			o.setTamper(func(c map[string]any) {
				if sid != "" {
					c["sid"] = sid
				}
			})
			defer o.setTamper(nil)
			b := newBrowser(t, g.base)
			if p, _ := b.oidcSignIn("corp", user, "/app"); p.status != http.StatusSeeOther {
				t.Fatalf("sign-in of %s: %d %s", user, p.status, p.body)
			}
			return b
		}
		alice1, alice2, eve := signIn("alice", "op-sid-1"), signIn("alice", "op-sid-2"), signIn("eve", "op-sid-3")
		alive := func(b *browser) bool {
			t.Helper()
			return b.get("/app").status == http.StatusOK
		}
		form := func(claims map[string]any) string {
			return url.Values{"logout_token": {signJWT(o.store.current(), claims, "logout+jwt")}}.Encode()
		}

		// Refused, each with a 400 and nothing ended.
		other := newOPKey(t, "key-1") // the provider's kid, not its key
		noEvent := o.logoutClaims("id-alice", "")
		delete(noEvent, "events")
		withNonce := o.logoutClaims("id-alice", "")
		withNonce["nonce"] = "n"
		wrongAud := o.logoutClaims("id-alice", "")
		wrongAud["aud"] = "someone-else"
		old := o.logoutClaims("id-alice", "")
		old["iat"] = time.Now().Add(-time.Hour).Unix()
		otherIss := o.logoutClaims("id-alice", "")
		otherIss["iss"] = "http://127.0.0.1:1/"
		neither := o.logoutClaims("", "")
		noJTI := o.logoutClaims("id-alice", "")
		delete(noJTI, "jti")
		idToken := o.logoutClaims("id-alice", "")
		idToken["events"] = nil
		for name, body := range map[string]string{
			"forged signature":    url.Values{"logout_token": {signJWT(other, o.logoutClaims("id-alice", ""), "logout+jwt")}}.Encode(),
			"no events claim":     form(noEvent),
			"a nonce":             form(withNonce),
			"another audience":    form(wrongAud),
			"an hour old":         form(old),
			"another issuer":      form(otherIss),
			"neither sub nor sid": form(neither),
			"no jti":              form(noJTI),
			"null events":         form(idToken),
			"no token":            "",
			"garbage":             "logout_token=not.a.jwt",
			"two tokens":          form(o.logoutClaims("id-alice", "")) + "&" + form(o.logoutClaims("id-alice", "")),
		} {
			if code, body := postLogout(t, g, "corp", body); code != http.StatusBadRequest || !strings.Contains(body, "invalid_logout_token") {
				t.Errorf("%s: %d %s", name, code, body)
			}
		}
		if code, _ := postLogout(t, g, "nobody", form(o.logoutClaims("id-alice", ""))); code != http.StatusBadRequest {
			t.Errorf("an unknown provider: %d", code)
		}
		req, _ := http.NewRequest("GET", g.base+"/.auth/backchannel-logout/corp", nil)
		if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusBadRequest || res.Header.Get("Allow") != "POST" {
			t.Errorf("GET: %v %v", res, err)
		} else {
			res.Body.Close()
		}
		if !alive(alice1) || !alive(alice2) || !alive(eve) {
			t.Fatal("a refused logout token ended a session")
		}

		// sid and sub: that provider session alone.
		token := form(o.logoutClaims("id-alice", "op-sid-1"))
		if code, body := postLogout(t, g, "corp", token); code != http.StatusOK {
			t.Fatalf("logout of op-sid-1: %d %s", code, body)
		}
		if alive(alice1) || !alive(alice2) || !alive(eve) {
			t.Fatalf("after op-sid-1's logout: alice1 %v alice2 %v eve %v", alive(alice1), alive(alice2), alive(eve))
		}
		// The same token again is a replay.
		if code, _ := postLogout(t, g, "corp", token); code != http.StatusBadRequest {
			t.Fatalf("a replayed logout token: %d", code)
		}

		// sub alone: every session of that subject.
		alice3 := signIn("alice", "")
		if code, body := postLogout(t, g, "corp", form(o.logoutClaims("id-alice", ""))); code != http.StatusOK {
			t.Fatalf("logout of id-alice: %d %s", code, body)
		}
		if alive(alice2) || alive(alice3) || !alive(eve) {
			t.Fatal("the subject's logout did not end exactly alice's sessions")
		}

		// sid alone.
		if code, body := postLogout(t, g, "corp", form(o.logoutClaims("", "op-sid-3"))); code != http.StatusOK {
			t.Fatalf("logout of op-sid-3: %d %s", code, body)
		}
		if alive(eve) {
			t.Fatal("eve's session outlived its provider session's logout")
		}

		// A logout for nobody signed in here is still a success.
		if code, _ := postLogout(t, g, "corp", form(o.logoutClaims("id-nobody", ""))); code != http.StatusOK {
			t.Fatalf("a logout of no session: %d", code)
		}

		code, body := g.adminDo("GET", "/session-auth/users/alice@example.com/sessions", "")
		if code != 200 || strings.Count(body, `"end_reason":"revoked"`) != 3 {
			t.Fatalf("alice's sessions: %d %s", code, body)
		}
		code, body = g.adminDo("GET", "/session-auth/users/alice@example.com/events", "")
		if code != 200 || strings.Count(body, `"actor":"idp"`) != 3 {
			t.Fatalf("alice's events: %d %s", code, body)
		}
	})
}

// Forged logout tokens count towards guess_rate: a flood cannot make the
// gateway fetch the provider's keys for every one.
func TestOIDCBackchannelLogoutForgeriesAreLimited(t *testing.T) {
	port := redisserver.FreePort(t)
	o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
	g, _ := loadOIDCCaddy(t, port, oidcSite(port, "store memory\nguess_rate 3 1m", providerBlock("corp", o.issuer, "")))
	forged := url.Values{"logout_token": {signJWT(newOPKey(t, "key-1"), o.logoutClaims("id-alice", ""), "logout+jwt")}}.Encode()
	var codes []int
	for range 5 {
		code, _ := postLogout(t, g, "corp", forged)
		codes = append(codes, code)
	}
	if fmt.Sprint(codes) != "[400 400 400 429 429]" {
		t.Fatalf("forged logout tokens answered %v", codes)
	}
}

// A logout token the gateway cannot check for a failure of its own (the
// provider's discovery, the store) is a 503 the provider may retry,
// never a 400 that blames the token.
func TestOIDCBackchannelLogoutOutages(t *testing.T) {
	srv := redisserver.Start(t)
	port := redisserver.FreePort(t)
	o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
	g, _ := loadOIDCCaddy(t, port, oidcSite(port, redisStoreLine(srv), providerBlock("corp", o.issuer, "")))
	valid := func() string {
		return url.Values{"logout_token": {signJWT(o.store.current(), o.logoutClaims("id-alice", ""), "logout+jwt")}}.Encode()
	}
	// The store stopped: the provider's keys are fetched, the jti cannot
	// be recorded.
	srv.Stop()
	if code, body := postLogout(t, g, "corp", valid()); code != http.StatusServiceUnavailable {
		t.Fatalf("with the store stopped: %d %s", code, body)
	}
	// A gateway that never reached the provider, which is down.
	port2 := redisserver.FreePort(t)
	g2, _ := loadOIDCCaddy(t, port2, oidcSite(port2, "store memory", providerBlock("corp", o.issuer, "")))
	token := valid()
	_ = o.srv.Close()
	if code, body := postLogout(t, g2, "corp", token); code != http.StatusServiceUnavailable || !strings.Contains(body, "provider_unavailable") {
		t.Fatalf("with the provider down: %d %s", code, body)
	}
}
