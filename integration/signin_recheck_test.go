package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// recheckWait lets a recheck of 1s fall due: the gateway's clock is the
// real one in a loaded Caddy, so the test waits, briefly.
const recheckWait = 1100 * time.Millisecond

// adminSession is a session as the admin API lists it.
type adminSession struct {
	ID        string  `json:"id"`
	Active    bool    `json:"active"`
	EndReason *string `json:"end_reason"`
}

func adminSessions(t *testing.T, g *gateway, user string) []adminSession {
	t.Helper()
	return adminGet[[]adminSession](t, g, "/session-auth/users/"+url.PathEscape(user)+"/sessions")
}

// adminGet reads a JSON answer of the admin API; anything but a 200 with
// JSON of that shape fails the test.
func adminGet[T any](t *testing.T, g *gateway, path string) T {
	t.Helper()
	code, body := g.adminDo("GET", path, "")
	var out T
	if code != http.StatusOK || json.Unmarshal([]byte(body), &out) != nil {
		t.Fatalf("admin GET %s: %d %s", path, code, body)
	}
	return out
}

type adminEvent struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id"`
	Reason    string `json:"reason"`
	Actor     string `json:"actor"`
}

func adminEvents(t *testing.T, g *gateway, user string) []adminEvent {
	t.Helper()
	return adminGet[[]adminEvent](t, g, "/session-auth/users/"+url.PathEscape(user)+"/events")
}

// oidcSignedIn signs alice in at corp on a gateway whose corp provider
// has extra, and answers the browser and the session's id.
func oidcSignedIn(t *testing.T, storeLine, extra string) (*testOP, *gateway, *testUpstream, *browser, string) {
	t.Helper()
	port := redisserver.FreePort(t)
	o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
	g, up := loadOIDCCaddy(t, port, oidcSite(port, storeLine, providerBlock("corp", o.issuer, extra)))
	b := newBrowser(t, g.base)
	if p, _ := b.oidcSignIn("corp", "alice", "/app"); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", p.status, p.body)
	}
	h := b.upstreamSees("/app")
	if h["X-Auth-User"] != "alice@example.com" || h["X-Auth-Session"] == "" {
		t.Fatalf("upstream saw %v", h)
	}
	return o, g, up, b, h["X-Auth-Session"]
}

// The provider refuses the refresh (the user was disabled or signed out
// there): at the next request after recheck, the session ends with
// end_reason idp, the request does not reach the upstream, and the
// browser is sent to sign in again.
func TestOIDCRecheckEndsRefusedSession(t *testing.T) {
	stores(t, func(t *testing.T, storeLine string, srv *redisserver.Server) {
		recheckRefused(t, storeLine)
		if srv != nil {
			// The in-process cache serves the session without a store
			// round trip: the recheck falls due all the same.
			t.Run("cache", func(t *testing.T) { recheckRefused(t, redisStoreLine(srv)+"\ncache 1m") })
		}
	})
}

func recheckRefused(t *testing.T, storeLine string) {
	o, g, up, b, sid := oidcSignedIn(t, storeLine, "recheck 1s")
	api := newBrowser(t, g.base) // a second session, used by an API client
	if p, _ := api.oidcSignIn("corp", "alice", "/app"); p.status != http.StatusSeeOther {
		t.Fatalf("second sign-in: %d %s", p.status, p.body)
	}
	o.store.refuseRefresh.Store(true)
	time.Sleep(recheckWait)
	before := up.count("/app")
	p := b.get("/app")
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), "/.auth/sign-in?next=%2Fapp") ||
		!strings.Contains(p.header.Get("Location"), "session_ended=idp") {
		t.Fatalf("after the refusal: %d %q", p.status, p.header.Get("Location"))
	}
	if up.count("/app") != before {
		t.Fatal("a request the provider refused reached the upstream")
	}
	if o.store.refreshAsked.Load() == 0 {
		t.Fatal("the provider was never asked")
	}
	var ended bool
	for _, s := range adminSessions(t, g, "alice@example.com") {
		if s.ID == sid {
			ended = !s.Active && s.EndReason != nil && *s.EndReason == "idp"
		}
	}
	if !ended {
		t.Fatalf("session not ended with idp: %+v", adminSessions(t, g, "alice@example.com"))
	}
	var event bool
	for _, e := range adminEvents(t, g, "alice@example.com") {
		event = event || (e.Type == "revoke" && e.SessionID == sid && e.Reason == "idp" && e.Actor == "idp")
	}
	if !event {
		t.Fatalf("no revoke event with reason and actor idp: %+v", adminEvents(t, g, "alice@example.com"))
	}
	// An API client: 401 JSON, not forwarded.
	if p := api.get("/api", "Accept", "application/json"); p.status != http.StatusUnauthorized ||
		!strings.Contains(p.body, `"error":"unauthenticated"`) || up.count("/api") != 0 {
		t.Fatalf("API client after the refusal: %d %s", p.status, p.body)
	}
	for _, s := range adminSessions(t, g, "alice@example.com") {
		if s.Active {
			t.Fatalf("a session outlived the refusal: %+v", s)
		}
	}
}

// A provider that fails (503) keeps the session: the request goes on,
// and once the provider answers again, it is asked again.
func TestOIDCRecheckKeepsSessionWhenProviderDown(t *testing.T) {
	o, g, _, b, sid := oidcSignedIn(t, "store memory", "recheck 1s")
	o.tokenDown.Store(true)
	time.Sleep(recheckWait)
	if h := b.upstreamSees("/app"); h["X-Auth-User"] != "alice@example.com" {
		t.Fatalf("with the provider down: %v", h)
	}
	for _, s := range adminSessions(t, g, "alice@example.com") {
		if s.ID == sid && !s.Active {
			t.Fatalf("session ended while the provider was down: %+v", s)
		}
	}
	asked := o.store.refreshAsked.Load()
	o.tokenDown.Store(false)
	o.store.refuseRefresh.Store(true) // so that the test sees it asked again
	time.Sleep(recheckWait)           // the provider's pause (at most recheck) is over
	if p := b.get("/app"); p.status != http.StatusSeeOther || !strings.Contains(p.header.Get("Location"), "session_ended=idp") {
		t.Fatalf("the provider back (and refusing): %d %q", p.status, p.header.Get("Location"))
	}
	if o.store.refreshAsked.Load() <= asked {
		t.Fatal("the provider was not asked again once it answered")
	}
}

// Each recheck spends the refresh token the last one stored: the
// provider rotates it (the example provider deletes the old one), so a
// recheck that used a stale token would be refused and end the session.
// Concurrent requests when a recheck is due ask the provider once.
func TestOIDCRecheckRotatesRefreshToken(t *testing.T) {
	stores(t, func(t *testing.T, storeLine string, _ *redisserver.Server) {
		o, g, _, b, sid := oidcSignedIn(t, storeLine, "recheck 1s")
		start := o.store.refreshAsked.Load()
		for i := 1; i <= 2; i++ {
			time.Sleep(recheckWait)
			if h := b.upstreamSees("/app"); h["X-Auth-Session"] != sid {
				t.Fatalf("recheck %d: %v", i, h)
			}
			if n := o.store.refreshAsked.Load() - start; n != int32(i) {
				t.Fatalf("after recheck %d the provider was asked %d times", i, n)
			}
		}
		time.Sleep(recheckWait)
		for _, c := range b.getAll(slices.Repeat([]string{g.base + "/app"}, 8)...) {
			if c != http.StatusOK {
				t.Fatalf("a concurrent request during the recheck: %d", c)
			}
		}
		if n := o.store.refreshAsked.Load() - start; n != 3 {
			t.Fatalf("8 concurrent requests asked the provider %d times in all, want 3", n-2)
		}
		for _, s := range adminSessions(t, g, "alice@example.com") {
			if s.ID == sid && !s.Active {
				t.Fatalf("session ended: %+v", s)
			}
		}
	})
}

// pass_access_token: the upstream receives the provider's access token
// (the provider's userinfo endpoint accepts it), never a client's, and
// a refreshed one once it comes close to expiring. No answer of the
// gateway shows it.
func TestOIDCPassAccessToken(t *testing.T) {
	stores(t, func(t *testing.T, storeLine string, _ *redisserver.Server) {
		port := redisserver.FreePort(t)
		o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
		g, _ := loadOIDCCaddy(t, port, oidcSite(port, storeLine, providerBlock("corp", o.issuer, "pass_access_token")))
		b := newBrowser(t, g.base)
		if p, _ := b.oidcSignIn("corp", "alice", "/app"); p.status != http.StatusSeeOther {
			t.Fatalf("sign-in: %d %s", p.status, p.body)
		}
		h := b.upstreamSees("/app")
		first := h["X-Auth-Access-Token"]
		if first == "" || !opAccepts(t, o, first) {
			t.Fatalf("upstream saw %v", h)
		}
		// A client's own copies are stripped, in any spelling.
		req, _ := http.NewRequest("GET", g.base+"/app", nil)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("X-Auth-Access-Token", "forged")
		req.Header["X_Auth_Access_Token"] = []string{"forged2"}
		res, err := b.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || strings.Contains(string(raw), "forged") || !strings.Contains(string(raw), first) {
			t.Fatalf("with a client's token: %d %s", res.StatusCode, raw)
		}
		// Never in what the gateway answers.
		for _, path := range []string{"/.auth/me", "/.auth/sessions"} {
			if p := b.get(path, "Accept", "application/json"); p.status != http.StatusOK || strings.Contains(p.body, first) {
				t.Fatalf("%s: %d shows the token: %v", path, p.status, strings.Contains(p.body, first))
			}
		}

		// Tokens that live 31 s are within the 30 s margin a second later:
		// the next request after that forwards a refreshed one.
		o.expiresIn.Store(31)
		b2 := newBrowser(t, g.base)
		if p, _ := b2.oidcSignIn("corp", "alice", "/app"); p.status != http.StatusSeeOther {
			t.Fatalf("second sign-in: %d %s", p.status, p.body)
		}
		time.Sleep(recheckWait)
		asked := o.store.refreshAsked.Load()
		h = b2.upstreamSees("/app")
		second := h["X-Auth-Access-Token"]
		if o.store.refreshAsked.Load() != asked+1 || second == "" || second == first || !opAccepts(t, o, second) {
			t.Fatalf("after expiry: asked %d→%d, token %q (valid=%v)", asked, o.store.refreshAsked.Load(), second, second != "" && opAccepts(t, o, second))
		}
		time.Sleep(recheckWait)
		if third := b2.upstreamSees("/app")["X-Auth-Access-Token"]; third == second || !opAccepts(t, o, third) || opAccepts(t, o, second) {
			t.Fatalf("refreshed again: %q after %q", third, second)
		}
	})
}

// opAccepts asks the provider's userinfo endpoint whether token is a
// live access token of alice's.
func opAccepts(t *testing.T, o *testOP, token string) bool {
	t.Helper()
	res, err := http.Get(o.issuer + ".well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc struct {
		UserInfo string `json:"userinfo_endpoint"`
	}
	err = json.NewDecoder(res.Body).Decode(&disc)
	res.Body.Close()
	if err != nil || disc.UserInfo == "" {
		t.Fatalf("discovery: %v", err)
	}
	req, _ := http.NewRequest("GET", disc.UserInfo, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var ui struct {
		Sub string `json:"sub"`
	}
	return res.StatusCode == http.StatusOK && json.NewDecoder(res.Body).Decode(&ui) == nil && ui.Sub == "id-alice"
}

// Two gateways (two handlers, each with its own in-process
// de-duplication) share a Redis store: when a recheck falls due,
// concurrent requests through both spend the rotating refresh token
// once, since the store lets one of them claim the check.
func TestOIDCRecheckOnceAcrossGateways(t *testing.T) {
	srv := redisserver.Start(t)
	portA, portB := redisserver.FreePort(t), redisserver.FreePort(t)
	o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", portA))
	one := oidcSite(portA, redisStoreLine(srv), providerBlock("corp", o.issuer, "recheck 1s"))
	siteA := one[strings.Index(one, "http://127.0.0.1:"):]
	g, up := loadOIDCCaddy(t, portA, one+strings.Replace(siteA, fmt.Sprint(portA), fmt.Sprint(portB), 1))
	b := newBrowser(t, g.base)
	if p, _ := b.oidcSignIn("corp", "alice", "/app"); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", p.status, p.body)
	}
	baseB := fmt.Sprintf("http://127.0.0.1:%d", portB)
	for _, base := range []string{g.base, baseB} { // the cookie is good at both
		if p := b.get(base+"/app", "Accept", "application/json"); p.status != http.StatusOK {
			t.Fatalf("%s: %d %s", base, p.status, p.body)
		}
	}
	for round := 1; round <= 2; round++ {
		time.Sleep(recheckWait)
		start := o.store.refreshAsked.Load()
		targets := slices.Repeat([]string{g.base + "/app", baseB + "/app"}, 8)
		for _, c := range b.getAll(targets...) {
			if c != http.StatusOK {
				t.Fatalf("round %d: a request got %d", round, c)
			}
		}
		if n := o.store.refreshAsked.Load() - start; n != 1 {
			t.Fatalf("round %d: the provider was asked %d times", round, n)
		}
	}
	if up.count("/app") < 34 {
		t.Fatalf("upstream got %d requests", up.count("/app"))
	}
	for _, s := range adminSessions(t, g, "alice@example.com") {
		if !s.Active {
			t.Fatalf("session ended: %+v", s)
		}
	}
}

// With logout_at_provider beside recheck, the ID token the logout hands
// the provider as a hint survives the refreshes.
func TestOIDCLogoutAtProviderAfterRecheck(t *testing.T) {
	o, g, _, b, _ := oidcSignedIn(t, "store memory", "recheck 1s\nlogout_at_provider")
	time.Sleep(recheckWait)
	asked := o.store.refreshAsked.Load()
	b.upstreamSees("/app")
	if o.store.refreshAsked.Load() != asked+1 {
		t.Fatal("no recheck before the logout")
	}
	p := b.get("/.auth/logout?next=%2Fbye", "Sec-Fetch-Site", "same-origin")
	to, err := url.Parse(p.header.Get("Location"))
	if p.status != http.StatusSeeOther || err != nil || strings.Count(to.Query().Get("id_token_hint"), ".") != 2 {
		t.Fatalf("logout: %d %q", p.status, p.header.Get("Location"))
	}
	if back := b.get(to.String()); back.status != http.StatusFound || back.header.Get("Location") != g.base+"/bye" {
		t.Fatalf("the provider's end_session: %d %q %s", back.status, back.header.Get("Location"), back.body)
	}
}

// getAll requests every target at once with the browser's cookies, as
// an API client, and answers the statuses (0 for a request that failed).
func (b *browser) getAll(targets ...string) []int {
	codes := make([]int, len(targets))
	var wg sync.WaitGroup
	for i, target := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", target, nil)
			req.Header.Set("Accept", "application/json")
			res, err := b.http.Do(req)
			if err != nil {
				b.t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			codes[i] = res.StatusCode
		}()
	}
	wg.Wait()
	return codes
}
